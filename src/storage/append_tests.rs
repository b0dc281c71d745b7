//! Tests of the write path (`append.rs`) on real O_DIRECT files in temporary directories:
//! rolling segments, write and fdatasync faults failing the log, and appends in two halves
//! (`encode`, then `write_chunk`) as the shard's writer pipelines them, the next chunk
//! compressed while the previous one is written.

use tempfile::TempDir;

use crate::rt::block_on;
use crate::rt::fs::RealFs;
use crate::storage::chunk::ALIGNMENT;
use crate::storage::testing::{batch, config, files, fill, records_of, rng, FaultyFs};
use crate::storage::{index_file_name, PartitionLog, StorageError};

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
            let fs = FaultyFs::new(RealFs {
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
            // The refused chunk was cut off its segment (even where it was whole on disk, as
            // after the failed fdatasync): reopening finds the log as it was before it.
            assert_eq!(faults.truncates().len(), 1, "{fault}: one cut");
            let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            let got = log.read_all_records().await.unwrap();
            assert_eq!(report.next_offset, 15, "{fault}");
            assert_eq!(got, all);
            log.append(&next).await.unwrap();
        }
    });
}

#[test]
fn a_chunk_encoded_during_a_write_is_numbered_after_it_even_across_a_roll() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("p");
        // ~40 KiB incompressible chunks in 64 KiB segments: every second write rolls.
        let cfg = config(16 * ALIGNMENT);
        let (log, _) = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
        let mut r = rng(31);
        let batches: Vec<_> = (0..9).map(|i| batch(&mut r, i, 40, 1000, true)).collect();
        let mut all = Vec::new();
        let mut pending = log.encode(&batches[0]).unwrap();
        for (i, b) in batches.iter().enumerate().skip(1) {
            let next = log.encode(b).unwrap();
            assert_eq!(next.start_offset(), pending.start_offset() + 40);
            let at = pending.start_offset();
            let info = log.write_chunk(pending).await.unwrap();
            assert_eq!((info.start_offset, info.record_count), (at, 40));
            all.extend(records_of(at, &batches[i - 1]));
            pending = next;
        }
        let at = pending.start_offset();
        log.write_chunk(pending).await.unwrap();
        all.extend(records_of(at, &batches[8]));
        assert_eq!(log.next_offset(), 360);
        assert!(log.segment_count() >= 4, "the writes rolled segments");
        assert_eq!(log.read_all_records().await.unwrap(), all);
        // With nothing encoded ahead, the next chunk is numbered from the log again.
        assert_eq!(log.encode(&batches[0]).unwrap().start_offset(), 360);
        drop(log);
        let (log, report) = PartitionLog::open(&dir, cfg).await.unwrap();
        assert_eq!((report.next_offset, report.corrupt_chunks), (360, 0));
        assert_eq!(log.read_all_records().await.unwrap(), all);
    });
}

#[test]
fn after_a_failed_write_the_chunk_encoded_behind_it_is_refused() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let fs = FaultyFs::new(RealFs {
            durable_writes: true,
        });
        let faults = fs.faults.clone();
        let (log, _) = PartitionLog::open_with(fs, tmp.path(), config(1 << 20))
            .await
            .unwrap();
        let mut r = rng(32);
        let all = fill(&log, &[batch(&mut r, 0, 10, 100, false)]).await;
        let first = log.encode(&batch(&mut r, 1, 10, 100, false)).unwrap();
        let second = log.encode(&batch(&mut r, 2, 10, 100, false)).unwrap();
        faults.fail_write(1);
        let writes = faults.writes();
        assert!(matches!(
            log.write_chunk(first).await,
            Err(StorageError::Failed { .. })
        ));
        // Numbered after a chunk that never became durable: never written, never acknowledged.
        assert!(matches!(
            log.write_chunk(second).await,
            Err(StorageError::Failed { .. })
        ));
        assert_eq!(
            faults.writes(),
            writes + 1,
            "the second chunk was not written"
        );
        assert_eq!(log.next_offset(), 10);
        assert_eq!(log.read_all_records().await.unwrap(), all);
    });
}

#[test]
fn a_chunk_written_out_of_order_is_refused_and_the_log_goes_on() {
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let (log, _) = PartitionLog::open(tmp.path(), config(1 << 20))
            .await
            .unwrap();
        let mut r = rng(33);
        let (a, b) = (
            batch(&mut r, 0, 5, 100, false),
            batch(&mut r, 1, 7, 100, false),
        );
        let first = log.encode(&a).unwrap();
        let second = log.encode(&b).unwrap();
        drop(first); // never written
        match log.write_chunk(second).await {
            Err(StorageError::OutOfOrder { chunk: 5, next: 0 }) => {}
            other => panic!("expected OutOfOrder, got {other:?}"),
        }
        assert_eq!(log.failure(), None);
        // The log numbers from its end again.
        let all = fill(&log, &[b]).await;
        assert_eq!(all[0].0, 0);
        assert_eq!(log.read_all_records().await.unwrap(), all);
    });
}

/// Index writes that fail are only logged: appends go on, and the entries are taken again by
/// the next flush once writes work, so the next open finds the index whole.
#[test]
fn a_failed_index_write_is_logged_and_the_next_flush_writes_its_entries() {
    use crate::storage::index::{ENTRY_LEN, FLUSH_EVERY};
    block_on(async {
        let tmp = TempDir::new().unwrap();
        let fs = FaultyFs::new(RealFs {
            durable_writes: true,
        });
        let faults = fs.faults.clone();
        let (log, _) = PartitionLog::open_with(fs, tmp.path(), config(1 << 20))
            .await
            .unwrap();
        let mut r = rng(34);
        faults.fail_buffered(true);
        let n = FLUSH_EVERY as i64 + 1;
        let batches: Vec<_> = (0..n).map(|i| batch(&mut r, i, 1, 10, false)).collect();
        let mut all = fill(&log, &batches).await;
        assert!(
            faults.buffered_failures() > 0,
            "an index flush was due, and failed"
        );
        assert_eq!(
            log.failure(),
            None,
            "a failed index write does not fail the log"
        );
        faults.fail_buffered(false);
        all.extend(fill(&log, &[batch(&mut r, n, 1, 10, false)]).await);
        let index = tmp.path().join(index_file_name(0));
        let len = std::fs::metadata(&index).unwrap().len() as usize;
        assert_eq!(
            len,
            (n as usize + 1) * ENTRY_LEN,
            "every entry, the failed ones too"
        );
        drop(log);
        let (log, report) = PartitionLog::open(tmp.path(), config(1 << 20))
            .await
            .unwrap();
        assert_eq!(report.index_rebuilt, 0, "{report:?}");
        assert_eq!(log.read_all_records().await.unwrap(), all);
    });
}
