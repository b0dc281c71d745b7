//! Several chunk writes in flight (`in_flight.rs`), on the power-loss simulator under the fault
//! injector: writes completing out of order are published in order, each after an fdatasync
//! issued after its own write; a fault on a middle one refuses it and every later one and cuts
//! the file there; a power cut with several in flight, and a roll behind them, keep every
//! acknowledged record exactly once.

use std::path::Path;

use futures_util::future::join_all;

use crate::rt::block_on;
use crate::storage::sim::{CutPolicy, SimFs};
use crate::storage::testing::{batch, config, fill, records_of, rng, FaultyFs, Records};
use crate::storage::{PartitionLog, PlacedChunk, RecordBuf, StorageError};

type Fs = FaultyFs<SimFs>;

const DIR: &str = "/data/t/p0";

async fn open(fs: &Fs, segment_size: u64) -> PartitionLog<Fs> {
    let (log, _) = PartitionLog::open_with(fs.clone(), Path::new(DIR), config(segment_size))
        .await
        .unwrap();
    log
}

/// Encodes and places every batch, none written yet.
async fn place(log: &PartitionLog<Fs>, batches: &[RecordBuf]) -> Vec<PlacedChunk<Fs>> {
    let mut placed = Vec::new();
    for b in batches {
        let chunk = log.encode(b).unwrap();
        placed.push(log.begin_write(chunk).await.unwrap());
    }
    placed
}

/// `(kind, position)` of the simulator's ops after `from`: segment writes and fdatasyncs.
fn writes_and_syncs(fs: &Fs, from: u64) -> Vec<String> {
    fs.inner.op_log()[from as usize..]
        .iter()
        .filter_map(|op| {
            if op.starts_with("fdatasync") {
                Some("sync".to_string())
            } else if op.starts_with("write") {
                op.split(' ').nth(3).map(|p| format!("write {p}"))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn writes_completing_out_of_order_are_published_in_order() {
    block_on(async {
        let fs = FaultyFs::new(SimFs::new());
        let log = open(&fs, 1 << 20).await;
        let mut r = rng(11);
        let batches: Vec<_> = (0..4)
            .map(|i| batch(&mut r, i * 10, 5, 3000, true))
            .collect();
        let placed = place(&log, &batches).await;
        let from = fs.inner.op_count();
        // The last placed reaches the disk first.
        fs.faults.delay_writes(&[9, 6, 3, 0]);
        let written = join_all(placed.into_iter().map(|p| log.write_placed(p))).await;
        // Each write is followed by its own fdatasync, issued after it completed; the writes
        // reached the disk last placed first.
        let ops = writes_and_syncs(&fs, from);
        assert_eq!(ops.len(), 8, "{ops:?}");
        let positions: Vec<u64> = ops
            .chunks(2)
            .map(|pair| {
                assert_eq!(pair[1], "sync", "{ops:?}");
                pair[0].trim_start_matches("write @").parse().unwrap()
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] > w[1]), "{ops:?}");
        assert_eq!(
            log.next_offset(),
            0,
            "nothing is visible before it is finished"
        );
        let mut all = Records::new();
        for (i, w) in written.into_iter().enumerate() {
            let info = log.finish_write(w).await.unwrap();
            assert_eq!(info.start_offset, 5 * i as i64);
            assert_eq!(log.next_offset(), 5 * (i as i64 + 1), "published in order");
            all.extend(records_of(info.start_offset, &batches[i]));
            assert_eq!(log.read_all_records().await.unwrap(), all, "no gap");
        }
        drop(log);
        let (log, report) =
            PartitionLog::open_with(fs.inner.clone(), Path::new(DIR), config(1 << 20))
                .await
                .unwrap();
        assert_eq!((report.next_offset, report.corrupt_chunks), (20, 0));
        assert_eq!(log.read_all_records().await.unwrap(), all);
    });
}

#[test]
fn a_fault_on_a_middle_write_refuses_it_and_every_later_chunk() {
    block_on(async {
        // With O_DSYNC writes the third chunk's outcome is a success of its own: only the
        // failure before it refuses it.
        for (fault, durable_writes) in [("write", false), ("fdatasync", false), ("write", true)] {
            let fs = FaultyFs::new(SimFs::new().with_durable_writes(durable_writes));
            let log = open(&fs, 1 << 20).await;
            let mut r = rng(12);
            let first: Vec<_> = (0..2).map(|i| batch(&mut r, i, 5, 3000, true)).collect();
            let mut acked = fill(&log, &first).await;
            let batches: Vec<_> = (0..3)
                .map(|i| batch(&mut r, 10 + i, 5, 3000, true))
                .collect();
            let placed = place(&log, &batches).await;
            match fault {
                "write" => fs.faults.fail_write(2),
                _ => fs.faults.fail_sync(2),
            }
            // The first is durable before the second fails; the third, still in flight then,
            // succeeds after.
            fs.faults.delay_writes(&[0, 20, 40]);
            let written = join_all(placed.into_iter().map(|p| log.write_placed(p))).await;
            let mut written = written.into_iter();
            let info = log.finish_write(written.next().unwrap()).await.unwrap();
            acked.extend(records_of(info.start_offset, &batches[0]));
            let cut_at = log.disk_bytes();
            let err = log.finish_write(written.next().unwrap()).await.unwrap_err();
            assert!(matches!(err, StorageError::Failed { .. }), "{fault}: {err}");
            assert!(err.to_string().contains(fault), "{fault}: {err}");
            assert!(
                fs.faults.truncates().is_empty(),
                "{fault}: cut while a write was still in flight"
            );
            // Its own write and sync went well, but it comes after the failed one.
            let err = log.finish_write(written.next().unwrap()).await.unwrap_err();
            assert!(matches!(err, StorageError::Failed { .. }), "{fault}: {err}");
            assert_eq!(fs.faults.truncates(), vec![cut_at], "{fault}");
            assert_eq!(log.next_offset(), 15, "{fault}");
            assert!(
                log.append(&batches[0]).await.is_err(),
                "{fault}: still failed"
            );
            assert_eq!(log.read_all_records().await.unwrap(), acked, "{fault}");
            drop(log);
            // Recovery finds exactly the published chunks: nothing after the cut.
            let (log, report) =
                PartitionLog::open_with(fs.inner.clone(), Path::new(DIR), config(1 << 20))
                    .await
                    .unwrap();
            assert_eq!(
                (report.next_offset, report.corrupt_chunks),
                (15, 0),
                "{fault}"
            );
            assert_eq!(log.read_all_records().await.unwrap(), acked, "{fault}");
        }
    });
}

/// Every image a power cut between `from` and the end of `fs`'s ops can leave: recovered
/// records in increasing offsets (none twice), each acknowledged one (`acked`: the op count
/// at its acknowledgement, its records) present as written. Returns the recovered offsets of
/// each image.
async fn check_power_cuts(
    fs: &Fs,
    from: u64,
    acked: &[(u64, Records)],
    segment: u64,
) -> Vec<Vec<i64>> {
    let mut images = Vec::new();
    for at in from..=fs.inner.op_count() {
        let policies = [CutPolicy::SyncedOnly, CutPolicy::AllWritten]
            .into_iter()
            .chain((0..6).map(|s| CutPolicy::RandomSubset(at * 100 + s)));
        for policy in policies {
            let image = fs.inner.power_cut(at, policy);
            let (log, _) = PartitionLog::open_with(image, Path::new(DIR), config(segment))
                .await
                .unwrap();
            let got = log.read_all_records().await.unwrap();
            let offsets: Vec<i64> = got.iter().map(|r| r.0).collect();
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "cut at {at} ({policy:?}): {offsets:?}"
            );
            assert!(offsets.iter().all(|o| *o < log.next_offset()));
            for (acked_at, records) in acked.iter().filter(|(a, _)| *a <= at) {
                for rec in records {
                    assert!(
                        got.contains(rec),
                        "cut at {at} ({policy:?}): record {} acknowledged at op {acked_at} lost",
                        rec.0
                    );
                }
            }
            images.push(offsets);
        }
    }
    images
}

#[test]
fn a_power_cut_with_several_writes_in_flight_keeps_every_acknowledged_record() {
    block_on(async {
        let fs = FaultyFs::new(SimFs::new());
        let log = open(&fs, 1 << 20).await;
        let mut r = rng(13);
        let first: Vec<_> = (0..2).map(|i| batch(&mut r, i, 4, 2000, true)).collect();
        let mut acked = vec![(fs.inner.op_count(), fill(&log, &first).await)];
        acked[0].0 = fs.inner.op_count();
        let from = fs.inner.op_count();
        let batches: Vec<_> = (0..4)
            .map(|i| batch(&mut r, 10 + i, 4, 2000, true))
            .collect();
        let placed = place(&log, &batches).await;
        fs.faults.delay_writes(&[5, 0, 7, 2]);
        let written = join_all(placed.into_iter().map(|p| log.write_placed(p))).await;
        for (w, b) in written.into_iter().zip(&batches) {
            let info = log.finish_write(w).await.unwrap();
            acked.push((fs.inner.op_count(), records_of(info.start_offset, b)));
        }
        drop(log);
        check_power_cuts(&fs, from, &acked, 1 << 20).await;
    });
}

#[test]
fn a_roll_waits_for_the_writes_in_flight() {
    block_on(async {
        // Three one-block chunks fill a segment.
        let segment = 3 * 4096;
        let fs = FaultyFs::new(SimFs::new());
        let log = open(&fs, segment).await;
        let mut r = rng(14);
        let batches: Vec<_> = (0..5).map(|i| batch(&mut r, i, 1, 3000, true)).collect();
        let from = fs.inner.op_count();
        let placed = place(&log, &batches[..3]).await;
        let fourth = log.encode(&batches[3]).unwrap();
        assert!(log.needs_roll(&fourth));
        let err = log.begin_write(fourth).await.err().unwrap();
        assert!(
            matches!(err, StorageError::RollInFlight { in_flight: 3 }),
            "{err}"
        );
        fs.faults.delay_writes(&[4, 2, 0]);
        let written = join_all(placed.into_iter().map(|p| log.write_placed(p))).await;
        let mut acked = Vec::new();
        for (w, b) in written.into_iter().zip(&batches) {
            let info = log.finish_write(w).await.unwrap();
            acked.push((fs.inner.op_count(), records_of(info.start_offset, b)));
        }
        // Nothing in flight: the refused chunk is numbered again and rolls the segment.
        for b in &batches[3..] {
            let chunk = log.encode(b).unwrap();
            assert_eq!(chunk.start_offset(), log.next_offset());
            let info = log.write_chunk(chunk).await.unwrap();
            acked.push((fs.inner.op_count(), records_of(info.start_offset, b)));
        }
        assert_eq!(log.segment_count(), 2);
        drop(log);
        // No image holds a record of the new segment without all of the old one's.
        for offsets in check_power_cuts(&fs, from, &acked, segment).await {
            if offsets.iter().any(|o| *o >= 3) {
                assert_eq!(offsets[..3], [0, 1, 2], "{offsets:?}");
            }
        }
    });
}
