//! Recovery tests (`recovery.rs`, through [`PartitionLog::open`]) on real O_DIRECT files:
//! torn tails, corruption, lost indexes.

use std::path::Path;

use rand::Rng;
use tempfile::TempDir;

use crate::rt::block_on;
use crate::storage::chunk::{ChunkError, ChunkHeader, ALIGNMENT, HEADER_LEN};
use crate::storage::testing::{batch, config, files, fill, records_of, rng, Records};
use crate::storage::{index_file_name, log_file_name, PartitionLog, StorageError};

/// Writes 4 small chunks and a last chunk of several blocks; returns the records of each
/// chunk, the last chunk's position, its unpadded and padded lengths.
async fn five_chunks(dir: &Path) -> (Vec<Records>, u64, u64, u64) {
    let (log, _) = PartitionLog::open(dir, config(1 << 20)).await.unwrap();
    let mut r = rng(3);
    let mut per_chunk = Vec::new();
    let mut pos = 0;
    let mut last = (0, 0, 0);
    for i in 0..5 {
        let b = batch(&mut r, i * 10, 4, if i == 4 { 2500 } else { 100 }, i == 4);
        let at = log.next_offset();
        let info = log.append(&b).await.unwrap();
        last = (
            pos,
            HEADER_LEN as u64 + u64::from(info.payload_len),
            info.chunk_len,
        );
        pos += info.chunk_len;
        per_chunk.push(records_of(at, &b));
    }
    log.close().await.unwrap();
    (per_chunk, last.0, last.1, last.2)
}

#[test]
fn truncation_anywhere_in_the_last_chunk_keeps_exactly_the_complete_chunks() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let orig = tmp.path().join("orig");
        let (chunks, last_pos, unpadded, padded) = five_chunks(&orig).await;
        assert!(padded >= 3 * ALIGNMENT && unpadded % ALIGNMENT != 0);
        let seg = log_file_name(0);
        let bytes = std::fs::read(orig.join(&seg)).unwrap();
        let index = std::fs::read(orig.join(index_file_name(0))).unwrap();
        assert_eq!(bytes.len() as u64, last_pos + padded);
        let four: Records = chunks[..4].concat();
        let five: Records = chunks.concat();
        // Every byte of the header and around the payload's end, a dense sample elsewhere.
        let mut cuts: Vec<u64> = (0..padded).step_by(61).collect();
        cuts.extend(0..HEADER_LEN as u64 + 2);
        cuts.extend(unpadded - 3..unpadded + 3);
        cuts.extend([padded - 1, ALIGNMENT, 2 * ALIGNMENT]);
        for (n, cut) in cuts.into_iter().enumerate() {
            let dir = tmp.path().join(format!("cut{n}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join(&seg), &bytes[..(last_pos + cut) as usize]).unwrap();
            std::fs::write(dir.join(index_file_name(0)), &index).unwrap();
            let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            let complete = cut >= unpadded;
            let want = if complete { &five } else { &four };
            let ctx = format!("cut at {cut} of the last chunk ({unpadded} unpadded)");
            assert_eq!(report.next_offset, want.last().unwrap().0 + 1, "{ctx}");
            assert_eq!(report.corrupt_chunks, 0, "{ctx}");
            assert_eq!(
                report.torn_bytes_cut,
                if complete { 0 } else { cut },
                "{ctx}"
            );
            let len = std::fs::metadata(dir.join(&seg)).unwrap().len();
            assert_eq!(len, last_pos + if complete { padded } else { 0 }, "{ctx}");
            assert_eq!(&log.read_all_records().await.unwrap(), want, "{ctx}");
            let extra = batch(&mut rng(cut), 0, 2, 30, false);
            let info = log.append(&extra).await.unwrap();
            assert_eq!(info.start_offset, report.next_offset, "{ctx}");
            let mut want = want.clone();
            want.extend(records_of(info.start_offset, &extra));
            assert_eq!(log.read_all_records().await.unwrap(), want, "{ctx}");
            log.close().await.unwrap();
            // The repaired file reopens cleanly.
            let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            assert_eq!(
                (report.torn_bytes_cut, report.corrupt_chunks),
                (0, 0),
                "{ctx}"
            );
            assert_eq!(log.read_all_records().await.unwrap(), want, "{ctx}");
            drop(log);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    });
}

/// Flips one byte of the segment at `pos`.
fn flip(path: &Path, pos: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[pos as usize] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

#[test]
fn corruption_in_the_middle_is_skipped_not_served() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        for (case, in_header) in [(0, false), (1, true)] {
            let dir = tmp.path().join(format!("case{case}"));
            let (chunks, ..) = five_chunks(&dir).await;
            // Chunks 0-3 are one block each: chunk 2 starts at 2 blocks.
            let at = 2 * ALIGNMENT + if in_header { 7 } else { HEADER_LEN as u64 + 20 };
            flip(&dir.join(log_file_name(0)), at);
            let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            assert_eq!(report.corrupt_chunks, 1, "case {case}");
            assert_eq!(report.torn_bytes_cut, 0);
            assert_eq!(report.index_rebuilt, 1);
            let want: Records = [&chunks[..2], &chunks[3..]].concat().concat();
            assert_eq!(log.read_all_records().await.unwrap(), want);
            assert_eq!(report.next_offset, 20);
            // An offset inside the hole reads from the next good chunk.
            let got = log.read(chunks[2][1].0, 1).await.unwrap();
            assert_eq!(got[0].start_offset, chunks[3][0].0);
            let info = log
                .append(&batch(&mut rng(9), 0, 1, 5, false))
                .await
                .unwrap();
            assert_eq!(info.start_offset, 20);
            log.close().await.unwrap();
            let (_log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            assert_eq!((report.corrupt_chunks, report.next_offset), (1, 21));
        }
    });
}

#[test]
fn missing_or_garbage_index_is_rebuilt() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().to_path_buf();
        let (log, _) = PartitionLog::open(&dir, config(2 * ALIGNMENT))
            .await
            .unwrap();
        let mut r = rng(4);
        let batches: Vec<_> = (0..9).map(|i| batch(&mut r, i, 2, 900, true)).collect();
        let all = fill(&log, &batches).await;
        log.close().await.unwrap();
        let indexes = files(&dir, ".index");
        assert!(indexes.len() >= 4);
        let mut garbage = vec![0u8; 100];
        r.fill(&mut garbage[..]);
        for (round, content) in [None, Some(garbage), Some(vec![0u8; 35])]
            .into_iter()
            .enumerate()
        {
            for name in &indexes {
                match &content {
                    None => std::fs::remove_file(dir.join(name)).unwrap(),
                    Some(c) => std::fs::write(dir.join(name), c).unwrap(),
                }
            }
            let (log, report) = PartitionLog::open(&dir, config(2 * ALIGNMENT))
                .await
                .unwrap();
            assert_eq!(report.index_rebuilt, indexes.len() as u64, "round {round}");
            assert_eq!(report.corrupt_chunks, 0);
            assert_eq!(log.read_all_records().await.unwrap(), all);
            log.close().await.unwrap();
            let (_, report) = PartitionLog::open(&dir, config(2 * ALIGNMENT))
                .await
                .unwrap();
            assert_eq!(report.index_rebuilt, 0, "round {round}");
        }
    });
}

#[test]
fn bad_header_in_a_closed_segment() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().to_path_buf();
        let (log, _) = PartitionLog::open(&dir, config(3 * ALIGNMENT))
            .await
            .unwrap();
        let mut r = rng(10);
        let batches: Vec<_> = (0..7).map(|i| batch(&mut r, i, 2, 100, false)).collect();
        let all = fill(&log, &batches).await;
        log.close().await.unwrap();
        assert_eq!(files(&dir, ".log").len(), 3);
        flip(&dir.join(log_file_name(0)), ALIGNMENT + 9);
        let without_chunk_1: Records = [&all[..2], &all[4..]].concat();
        // With its index, the closed segment is trusted up to its last chunk: reads skip it.
        let (log, report) = PartitionLog::open(&dir, config(3 * ALIGNMENT))
            .await
            .unwrap();
        assert_eq!(report.corrupt_chunks, 0);
        assert_eq!(log.read_all_records().await.unwrap(), without_chunk_1);
        assert_eq!(log.read_skipped_chunks(), 1);
        log.close().await.unwrap();
        // Without it, the head-CRC walk finds the bad chunk and the hole.
        std::fs::remove_file(dir.join(index_file_name(0))).unwrap();
        let (log, report) = PartitionLog::open(&dir, config(3 * ALIGNMENT))
            .await
            .unwrap();
        assert_eq!((report.corrupt_chunks, report.index_rebuilt), (1, 1));
        assert_eq!(log.read_all_records().await.unwrap(), without_chunk_1);
        assert_eq!(log.read_skipped_chunks(), 0);
        assert_eq!(report.next_offset, 14);
    });
}

#[test]
fn a_crash_leaves_preallocated_space_that_recovery_keeps() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("p");
        let (log, _) = PartitionLog::open(&dir, config(4 << 20)).await.unwrap();
        let mut r = rng(11);
        let batches: Vec<_> = (0..6).map(|i| batch(&mut r, i, 10, 100, false)).collect();
        let all = fill(&log, &batches).await;
        let seg = dir.join(log_file_name(0));
        let on_disk = std::fs::metadata(&seg).unwrap().len();
        assert!(
            on_disk > 6 * ALIGNMENT,
            "space is preallocated ahead ({on_disk} bytes)"
        );
        drop(log); // a crash: no close
        let (log, report) = PartitionLog::open(&dir, config(4 << 20)).await.unwrap();
        assert_eq!(report.next_offset, 60);
        assert_eq!(
            (report.torn_bytes_cut, report.corrupt_chunks),
            (0, 0),
            "{report:?}"
        );
        assert_eq!(log.read_all_records().await.unwrap(), all);
        // Appends go on after the last chunk, into the preallocated space.
        let more = batch(&mut r, 99, 5, 10, false);
        log.append(&more).await.unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), on_disk);
        log.close().await.unwrap();
        let closed = std::fs::metadata(&seg).unwrap().len();
        assert!(
            closed < on_disk && closed.is_multiple_of(ALIGNMENT),
            "close gives the space back"
        );
    });
}

/// Appends `n` chunks of 4 small records (one block each), then drops the log without closing
/// it (a crash: the segment keeps its preallocated space). Returns the records of each chunk.
async fn one_block_chunks(dir: &Path, n: i64) -> Vec<Records> {
    let (log, _) = PartitionLog::open(dir, config(1 << 20)).await.unwrap();
    let mut r = rng(21);
    let mut per_chunk = Vec::new();
    for i in 0..n {
        let b = batch(&mut r, i * 10, 4, 100, false);
        let info = log.append(&b).await.unwrap();
        assert_eq!(info.chunk_len, ALIGNMENT);
        per_chunk.push(records_of(info.start_offset, &b));
    }
    drop(log);
    per_chunk
}

/// Rewrites the file at `path` through `f`.
fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

/// Rewrites the header of the chunk in `block` with another start offset (and a valid CRC).
fn renumber(block: &mut [u8], start: i64) {
    let h = ChunkHeader::parse(block).unwrap().unwrap();
    let mut hb = [0u8; HEADER_LEN];
    ChunkHeader::new(h.length, start, h.record_count).encode(&mut hb);
    block[..HEADER_LEN].copy_from_slice(&hb);
}

/// Offsets strictly increase.
fn assert_increasing(records: &Records) {
    for w in records.windows(2) {
        assert!(w[0].0 < w[1].0, "offset {} then {}", w[0].0, w[1].0);
    }
}

const A: usize = ALIGNMENT as usize;

#[test]
fn a_zeroed_block_in_the_tail_is_a_hole_and_nothing_old_comes_back() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("p");
        let chunks = one_block_chunks(&dir, 6).await;
        let seg = dir.join(log_file_name(0));
        edit(&seg, |b| b[2 * A..3 * A].fill(0));
        let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        // The chunks after the zeroed one continue the log: kept, the zeroed one is a hole.
        assert_eq!(report.next_offset, 24, "{report:?}");
        assert_eq!(report.corrupt_chunks, 1, "{report:?}");
        assert_eq!((report.torn_bytes_cut, report.chunks_cut), (0, 0));
        let mut want: Records = [&chunks[..2], &chunks[3..]].concat().concat();
        assert_eq!(log.read_all_records().await.unwrap(), want);
        let mut r = rng(22);
        for i in 0..2 {
            let b = batch(&mut r, 1000 + i, 3, 50, false);
            let info = log.append(&b).await.unwrap();
            assert_eq!(info.start_offset, 24 + 3 * i);
            want.extend(records_of(info.start_offset, &b));
        }
        drop(log); // a crash
        let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        let got = log.read_all_records().await.unwrap();
        // Every record keeps the offset it was acknowledged at; nothing old after the new.
        assert_eq!(got, want);
        assert_increasing(&got);
        assert_eq!((report.next_offset, report.corrupt_chunks), (30, 1));
    });
}

#[test]
fn stale_chunks_after_the_end_are_cut_before_the_first_append() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("p");
        let chunks = one_block_chunks(&dir, 6).await;
        let seg = dir.join(log_file_name(0));
        // Past the end (zeros from block 6), a stale copy of chunk 1: offsets 4..8 again.
        let mut len = 0;
        edit(&seg, |b| {
            let stale = b[A..2 * A].to_vec();
            b[8 * A..9 * A].copy_from_slice(&stale);
            len = b.len() as u64;
        });
        assert!(len > 9 * ALIGNMENT);
        let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        assert_eq!(report.next_offset, 24, "{report:?}");
        assert_eq!(report.corrupt_chunks, 0, "{report:?}");
        assert_eq!(report.torn_bytes_cut, len - 6 * ALIGNMENT, "{report:?}");
        assert_eq!(report.chunks_cut, 1, "{report:?}");
        // Cut (and synced) before anything is appended.
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), 6 * ALIGNMENT);
        let mut want: Records = chunks.concat();
        assert_eq!(log.read_all_records().await.unwrap(), want);
        let b = batch(&mut rng(23), 500, 3, 50, false);
        let info = log.append(&b).await.unwrap();
        assert_eq!(info.start_offset, 24);
        want.extend(records_of(24, &b));
        assert!(
            std::fs::metadata(&seg).unwrap().len() > 7 * ALIGNMENT,
            "the append preallocates again"
        );
        drop(log); // a crash
        let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        let got = log.read_all_records().await.unwrap();
        assert_eq!(got, want);
        assert_increasing(&got);
        assert_eq!(
            (report.next_offset, report.torn_bytes_cut, report.chunks_cut),
            (27, 0, 0)
        );
    });
}

#[test]
fn a_clean_marker_that_does_not_match_gets_the_full_check() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let batches: Vec<_> = (0..6)
            .map(|i| batch(&mut rng(24), i, 4, 100, false))
            .collect();
        // The same five chunks in both logs; the second also has a sixth.
        let clean_dir = tmp.path().join("clean");
        let (log, _) = PartitionLog::open(&clean_dir, config(1 << 20))
            .await
            .unwrap();
        let five = fill(&log, &batches[..5]).await;
        log.close_clean().await.unwrap();
        drop(log);
        let other = tmp.path().join("other");
        let (log, _) = PartitionLog::open(&other, config(1 << 20)).await.unwrap();
        fill(&log, &batches).await;
        log.close().await.unwrap();
        // After the clean stop, the sixth chunk is appended with its header valid (it
        // continues the log) and its payload damaged.
        let mut sixth = std::fs::read(other.join(log_file_name(0))).unwrap()[5 * A..6 * A].to_vec();
        sixth[HEADER_LEN + 20] ^= 0x40;
        let seg = clean_dir.join(log_file_name(0));
        edit(&seg, |b| {
            assert_eq!(b.len(), 5 * A);
            b.extend_from_slice(&sixth);
        });
        let (log, report) = PartitionLog::open(&clean_dir, config(1 << 20))
            .await
            .unwrap();
        assert!(!report.clean_shutdown, "{report:?}");
        assert_eq!(report.next_offset, 20, "{report:?}");
        assert_eq!((report.torn_bytes_cut, report.chunks_cut), (ALIGNMENT, 1));
        assert_eq!(report.chunks_verified, 5);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), 5 * ALIGNMENT);
        assert_eq!(log.read_all_records().await.unwrap(), five);
        let info = log.append(&batches[5]).await.unwrap();
        assert_eq!(info.start_offset, 20);
    });
}

#[test]
fn offsets_near_the_largest_do_not_overflow() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        // Chunk 3 claims offsets from i64::MAX, after a damaged chunk 2.
        let dir = tmp.path().join("max");
        let chunks = one_block_chunks(&dir, 4).await;
        let seg = dir.join(log_file_name(0));
        edit(&seg, |b| {
            b[2 * A + 7] ^= 0x40;
            renumber(&mut b[3 * A..4 * A], i64::MAX);
        });
        let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        assert_eq!(report.next_offset, 8, "{report:?}");
        assert_eq!(report.chunks_cut, 1, "{report:?}");
        assert_eq!(log.read_all_records().await.unwrap(), chunks[..2].concat());
        let info = log
            .append(&batch(&mut rng(25), 0, 2, 10, false))
            .await
            .unwrap();
        assert_eq!(info.start_offset, 8);
        drop(log);

        // A chunk that fits just below the largest offset is a hole, and the log then refuses
        // a batch that would not fit, with a typed error, and stays usable.
        let dir = tmp.path().join("near");
        one_block_chunks(&dir, 4).await;
        let seg = dir.join(log_file_name(0));
        edit(&seg, |b| {
            b[2 * A + 7] ^= 0x40;
            renumber(&mut b[3 * A..4 * A], i64::MAX - 5);
        });
        let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        assert_eq!(report.next_offset, i64::MAX - 1, "{report:?}");
        assert_eq!(report.corrupt_chunks, 1, "{report:?}");
        let err = log
            .append(&batch(&mut rng(26), 0, 2, 10, false))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::Chunk(ChunkError::OffsetOverflow { start, count: 2 })
                    if start == i64::MAX - 1
            ),
            "{err}"
        );
        assert_eq!(log.failure(), None);
        let info = log
            .append(&batch(&mut rng(27), 0, 1, 10, false))
            .await
            .unwrap();
        assert_eq!(info.start_offset, i64::MAX - 1);
        assert_eq!(log.next_offset(), i64::MAX);
        assert!(log
            .append(&batch(&mut rng(28), 0, 1, 10, false))
            .await
            .is_err());
    });
}
