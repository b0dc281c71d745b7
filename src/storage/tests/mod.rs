//! Partition log tests on real O_DIRECT files in temporary directories.

use std::time::{Duration, SystemTime};

use tempfile::TempDir;

use super::chunk::ALIGNMENT;
use super::testing::{batch, config, files, fill, records_of, rng, FaultyFs};
use super::*;
use crate::rt::block_on;
use crate::rt::dma::DmaFs;

#[test]
fn hot_tail_serves_what_the_disk_holds() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("p");
        let cfg = LogConfig {
            tail_bytes: 64 << 10,
            ..config(1 << 20)
        };
        let (log, _) = PartitionLog::open(&dir, cfg).await.unwrap();
        let mut r = rng(7);
        let batches: Vec<_> = (0..40).map(|i| batch(&mut r, i, 20, 200, true)).collect();
        fill(&log, &batches).await;
        assert!(log.hot_tail_bytes() > 0 && log.hot_tail_bytes() <= 64 << 10);
        // The newest chunks come from memory; they are byte for byte the chunks on disk.
        let (disk, _) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        let from = log.next_offset() - 50;
        let hot = log.read(from, 1 << 20).await.unwrap();
        let cold = disk.read(from, 1 << 20).await.unwrap();
        assert!(!hot.is_empty());
        assert_eq!(hot, cold);
        // Older offsets, evicted from the tail, are read from the disk.
        let old = log.read(0, 1 << 20).await.unwrap();
        assert_eq!(old[0].start_offset, 0);
        assert_eq!(old, disk.read(0, 1 << 20).await.unwrap());
    });
}

#[test]
fn clean_close_skips_the_payload_check_once() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("p");
        let (log, _) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        let mut r = rng(3);
        let batches: Vec<_> = (0..5).map(|i| batch(&mut r, i, 10, 100, false)).collect();
        let all = fill(&log, &batches).await;
        log.close_clean().await.unwrap();
        drop(log);
        assert!(dir.join("clean").exists());
        let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        assert!(report.clean_shutdown, "{report:?}");
        assert!(!dir.join("clean").exists(), "the marker is used once");
        assert_eq!(report.next_offset, 50);
        assert_eq!(log.read_all_records().await.unwrap(), all);
        // After a crash (no close_clean) the next open does the full check again.
        log.append(&batch(&mut r, 9, 3, 10, false)).await.unwrap();
        drop(log);
        let (_, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        assert!(!report.clean_shutdown);
        assert_eq!(report.chunks_verified, 6);
    });
}

#[test]
fn append_read_reopen() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("topic/1_0_0");
        let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        assert_eq!((report.segments, report.next_offset), (1, 0));
        let mut r = rng(1);
        let batches: Vec<_> = (0..20)
            .map(|i| batch(&mut r, i * 100, 1 + (i as u32 * 7) % 30, 50, i % 3 == 0))
            .collect();
        let all = fill(&log, &batches).await;
        assert_eq!(log.read_all_records().await.unwrap(), all);
        // A read from the middle of a chunk starts with that chunk.
        let mid = all[all.len() / 2].0;
        let chunks = log.read(mid, 1).await.unwrap();
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].start_offset <= mid && mid < chunks[0].end_offset());
        assert!(log
            .read(log.next_offset(), 1 << 20)
            .await
            .unwrap()
            .is_empty());
        log.close().await.unwrap();
        assert_eq!(files(&dir, ".log"), vec!["00000000000000000000.log"]);

        let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        assert_eq!(report.chunks_verified, 20);
        assert_eq!(report.next_offset, all.last().unwrap().0 + 1);
        assert_eq!(
            (
                report.torn_bytes_cut,
                report.corrupt_chunks,
                report.index_rebuilt
            ),
            (0, 0, 0)
        );
        assert_eq!(log.read_all_records().await.unwrap(), all);
        let more = batch(&mut r, 0, 3, 10, false);
        let at = log.next_offset();
        log.append(&more).await.unwrap();
        let mut all = all;
        all.extend(records_of(at, &more));
        assert_eq!(log.read_all_records().await.unwrap(), all);
    });
}

#[test]
fn segments_roll_and_reads_cross_them() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().to_path_buf();
        let (log, _) = PartitionLog::open(&dir, config(3 * ALIGNMENT))
            .await
            .unwrap();
        let mut r = rng(2);
        // ~1 block per chunk, and one chunk bigger than a segment.
        let mut batches: Vec<_> = (0..12).map(|i| batch(&mut r, i, 3, 1000, true)).collect();
        batches.insert(5, batch(&mut r, 0, 4, 4000, true));
        let all = fill(&log, &batches).await;
        log.close().await.unwrap();
        let logs = files(&dir, ".log");
        assert!(logs.len() >= 5, "{logs:?}");
        // Only the segment holding the big chunk alone is bigger than segment_size.
        let big = logs
            .iter()
            .filter(|n| std::fs::metadata(dir.join(n)).unwrap().len() > 3 * ALIGNMENT)
            .count();
        assert_eq!(big, 1);
        let (log, report) = PartitionLog::open(&dir, config(3 * ALIGNMENT))
            .await
            .unwrap();
        assert_eq!(report.segments, logs.len());
        assert_eq!(log.read_all_records().await.unwrap(), all);
        // Small budgets: one chunk per read, across segment boundaries.
        let (mut from, mut n) = (0, 0);
        while let Some(c) = log.read(from, 1).await.unwrap().first() {
            assert_eq!(c.start_offset, from);
            from = c.end_offset();
            n += 1;
        }
        assert_eq!((n, from), (13, log.next_offset()));
        // A big budget spans segments.
        let chunks = log.read(0, 1 << 20).await.unwrap();
        assert_eq!(chunks.len(), 13);
    });
}

#[test]
fn fsync_and_write_faults_fail_the_log() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        for fault in ["fdatasync", "short write", "write"] {
            let dir = tmp.path().join(fault.replace(' ', "_"));
            // Plain files: writes then fdatasyncs, so both can be made to fail.
            let fs = FaultyFs::new(DmaFs {
                durable_writes: false,
            });
            let faults = fs.faults.clone();
            let (log, _) = PartitionLog::open_with(fs, &dir, config(1 << 20))
                .await
                .unwrap();
            let mut r = rng(5);
            let batches: Vec<_> = (0..3).map(|i| batch(&mut r, i, 5, 3000, true)).collect();
            let all = fill(&log, &batches).await;
            match fault {
                "fdatasync" => faults.fail_sync(1),
                "short write" => faults.short_write(1),
                _ => faults.fail_write(1),
            }
            let next = batch(&mut r, 0, 5, 3000, true);
            let err = log.append(&next).await.unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StorageError::Failed { .. }), "{fault}: {msg}");
            assert!(
                msg.contains(fault) && msg.contains("not acknowledged"),
                "{msg}"
            );
            assert_eq!(log.next_offset(), 15);
            let again = log.append(&next).await.unwrap_err().to_string();
            assert_eq!(again, msg, "later appends give the first reason");
            assert!(log.failure().is_some());
            assert_eq!(log.read_all_records().await.unwrap(), all);
            log.close().await.unwrap();
            // Reopening recovers: the unacknowledged chunk is kept only if it is whole.
            let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            let got = log.read_all_records().await.unwrap();
            match fault {
                "fdatasync" => assert_eq!(report.next_offset, 20),
                "short write" => {
                    assert_eq!((report.next_offset, report.torn_bytes_cut > 0), (15, true))
                }
                _ => assert_eq!(report.next_offset, 15),
            }
            assert_eq!(got[..15], all[..]);
            log.append(&next).await.unwrap();
        }
    });
}

#[test]
fn retention_by_bytes_and_by_age_removes_old_segments_only() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut cfg = config(2 * ALIGNMENT);
        cfg.retention_bytes = Some(5 * ALIGNMENT);
        let (log, _) = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
        let mut r = rng(6);
        let batches: Vec<_> = (0..10).map(|i| batch(&mut r, i, 2, 900, true)).collect();
        let all = fill(&log, &batches).await;
        let before = files(&dir, ".log").len();
        assert_eq!(before, 5);
        let rep = log.enforce_retention(SystemTime::now()).await.unwrap();
        assert_eq!(
            (rep.segments_removed, rep.bytes_removed),
            (3, 6 * ALIGNMENT)
        );
        assert_eq!(rep.start_offset, 12);
        assert_eq!(log.start_offset(), 12);
        assert_eq!(files(&dir, ".log").len(), 2);
        assert_eq!(files(&dir, ".index").len(), 2);
        assert!(matches!(
            log.read(0, 1 << 20).await,
            Err(StorageError::OffsetBeforeStart {
                requested: 0,
                start: 12
            })
        ));
        assert_eq!(log.read_all_records().await.unwrap(), all[12..]);
        log.close().await.unwrap();

        cfg.retention_bytes = None;
        cfg.retention_age = Some(Duration::from_secs(3600));
        let (log, report) = PartitionLog::open(&dir, cfg).await.unwrap();
        assert_eq!(log.start_offset(), 12);
        assert_eq!(report.next_offset, 20);
        let now = SystemTime::now();
        assert_eq!(
            log.enforce_retention(now).await.unwrap().segments_removed,
            0
        );
        let later = now + Duration::from_secs(7200);
        let rep = log.enforce_retention(later).await.unwrap();
        assert_eq!((rep.segments_removed, rep.start_offset), (1, 16));
        // The active segment stays, and appends go on.
        assert_eq!(
            log.enforce_retention(later).await.unwrap().segments_removed,
            0
        );
        log.append(&batch(&mut r, 0, 1, 1, false)).await.unwrap();
        assert_eq!(log.read_all_records().await.unwrap().len(), 5);
    });
}

#[test]
fn reads_skip_a_chunk_whose_header_goes_bad_on_disk() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().to_path_buf();
        let (log, _) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
        let mut r = rng(7);
        let batches: Vec<_> = (0..3).map(|i| batch(&mut r, i, 2, 100, false)).collect();
        let all = fill(&log, &batches).await;
        // Chunk 1 (one block each) loses a header bit while the log is open.
        let path = dir.join(log_file_name(0));
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(&[0xff], ALIGNMENT + 3).unwrap();
            f.sync_all().unwrap();
        }
        let got = log.read_all_records().await.unwrap();
        assert_eq!(got, [&all[..2], &all[4..]].concat());
        assert_eq!(log.read_skipped_chunks(), 1);
    });
}

#[test]
fn reads_run_while_an_append_is_in_flight() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let (log, _) = PartitionLog::open(tmp.path(), config(2 * ALIGNMENT))
            .await
            .unwrap();
        let mut r = rng(8);
        let first = batch(&mut r, 0, 3, 1000, true);
        log.append(&first).await.unwrap();
        for i in 0..10 {
            let b = batch(&mut r, i, 3, 1000, true);
            let (appended, read) =
                futures_lite::future::zip(log.append(&b), log.read(0, 1 << 20)).await;
            let appended = appended.unwrap();
            let read = read.unwrap();
            // The read sees durable chunks only: never the one being appended.
            assert!(read.last().unwrap().end_offset() <= appended.start_offset);
            let _ = log.enforce_retention(SystemTime::now()).await.unwrap();
        }
        assert_eq!(log.read_all_records().await.unwrap().len(), 33);
    });
}

#[test]
fn retention_gives_a_removed_segment_back_in_steps() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().to_path_buf();
        let fs = FaultyFs::new(DmaFs {
            durable_writes: true,
        });
        let faults = fs.faults.clone();
        let mut cfg = config(64 * ALIGNMENT);
        cfg.reclaim_step = 16 * ALIGNMENT;
        let (log, _) = PartitionLog::open_with(fs.clone(), &dir, cfg.clone())
            .await
            .unwrap();
        let mut r = rng(9);
        // About 60 KiB of incompressible records per chunk: a segment holds 4 of them.
        let batches: Vec<_> = (0..12).map(|i| batch(&mut r, i, 60, 1000, true)).collect();
        let all = fill(&log, &batches).await;
        log.close().await.unwrap();
        let segments = files(&dir, ".log");
        assert!(segments.len() >= 3, "{segments:?}");
        let sizes: Vec<u64> = segments
            .iter()
            .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
            .collect();

        // Over the limit by exactly the oldest segment.
        cfg.retention_bytes = Some(sizes[1..].iter().sum());
        let (log, _) = PartitionLog::open_with(fs, &dir, cfg).await.unwrap();
        let before = faults.truncates().len();
        let rep = log.enforce_retention(SystemTime::now()).await.unwrap();
        assert_eq!(rep.segments_removed, 1);
        let expect: Vec<u64> = (1..)
            .map_while(|k| sizes[0].checked_sub(k * 16 * ALIGNMENT))
            .take_while(|&s| s > 0)
            .collect();
        assert!(!expect.is_empty());
        assert_eq!(faults.truncates()[before..], expect, "one step at a time");
        assert!(!dir.join(&segments[0]).exists());
        let start = log.start_offset() as usize;
        assert!(start > 0);
        assert_eq!(log.read_all_records().await.unwrap(), all[start..]);
    });
}
