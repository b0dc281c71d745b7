//! Opening a partition's log: single-flight, abandoned and failed opens, closing when idle.

use std::path::PathBuf;
use std::rc::Rc;

use super::*;
use crate::rt;
use crate::storage::{Durability, LogConfig};

fn writer(dir: PathBuf) -> Rc<PartitionWriter> {
    writer_with(dir, OpenFiles::new(64))
}

fn writer_with(dir: PathBuf, files: Rc<OpenFiles>) -> Rc<PartitionWriter> {
    let config = LogConfig {
        segment_size: 1 << 20,
        durability: Durability::Write,
        zstd_level: 1,
        retention_age: None,
        retention_bytes: None,
        tail_bytes: 1 << 16,
        reclaim_step: LogConfig::RECLAIM_STEP,
    };
    Rc::new(PartitionWriter::new(
        0,
        dir,
        config,
        1 << 20,
        Rc::default(),
        ShardShared {
            files,
            tail_budget: crate::storage::TailBudget::new(1 << 16),
            ..ShardShared::default()
        },
    ))
}

/// Many first opens of a new partition at once: one open, the same log for all, no
/// "file exists" for the losers.
#[test]
fn concurrent_first_opens_share_one_open() {
    rt::block_on(async {
        let tmp = tempfile::TempDir::new().unwrap();
        let w = writer(tmp.path().join("p0"));
        std::fs::create_dir_all(tmp.path().join("p0")).unwrap();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let w = w.clone();
                rt::spawn(async move { w.open().await })
            })
            .collect();
        let mut logs = Vec::new();
        for t in tasks {
            logs.push(t.await.expect("open failed"));
        }
        assert!(logs.iter().all(|l| Rc::ptr_eq(l, &logs[0])));
        assert!(Rc::ptr_eq(&w.log().unwrap(), &logs[0]));
        assert!(w.opening.borrow().is_none());
        // The fast path hands out the same log.
        assert!(Rc::ptr_eq(&w.open().await.unwrap(), &logs[0]));
    });
}

/// A caller that gives up does not cancel the open for the others.
#[test]
fn an_abandoned_open_still_completes_for_the_others() {
    rt::block_on(async {
        let tmp = tempfile::TempDir::new().unwrap();
        std::fs::create_dir_all(tmp.path().join("p0")).unwrap();
        let w = writer(tmp.path().join("p0"));
        let first = rt::spawn({
            let w = w.clone();
            async move { w.open().await }
        });
        let second = rt::spawn({
            let w = w.clone();
            async move { w.open().await }
        });
        rt::next_io_turn().await;
        drop(first);
        let log = second.await.expect("open failed");
        assert!(Rc::ptr_eq(&w.log().unwrap(), &log));
    });
}

/// A failed open fails its waiters and is not kept: a later open tries again.
#[test]
fn a_failed_open_is_shared_then_retried() {
    rt::block_on(async {
        let tmp = tempfile::TempDir::new().unwrap();
        // A file where the partition's directory should be: the open fails.
        let dir = tmp.path().join("p0");
        std::fs::write(&dir, b"x").unwrap();
        let w = writer(dir.clone());
        let spawn_open = || {
            let w = w.clone();
            rt::spawn(async move { w.open().await })
        };
        let (a, b) = (spawn_open(), spawn_open());
        let (a, b) = (a.await, b.await);
        assert!(a.is_err() && b.is_err(), "the open should fail");
        assert!(w.opening.borrow().is_none());
        assert!(w.log().is_none());
        std::fs::remove_file(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        w.open().await.expect("retry failed");
    });
}

/// A log closes only when nothing holds it, and reopens with everything it had.
#[test]
fn an_idle_log_closes_and_reopens_with_its_data() {
    rt::block_on(async {
        let tmp = tempfile::TempDir::new().unwrap();
        let w = writer(tmp.path().join("p0"));
        let log = w.open().await.unwrap();
        let mut batch = crate::storage::RecordBuf::default();
        batch.push(7, b"kept");
        log.append(&batch).await.unwrap();
        assert!(!w.close_if_idle(), "a reader holds the log");
        drop(log);
        assert!(w.is_idle());
        assert!(w.close_if_idle());
        assert!(w.log().is_none());
        assert_eq!(w.open_files(), 0);
        assert_eq!(w.disk_stats(), (1, 4096), "remembered while closed");
        // The reopen waits for the close, then finds the record.
        let log = w.open().await.unwrap();
        assert_eq!(log.next_offset(), 1);
        let records = log.read_all_records().await.unwrap();
        assert_eq!(records, vec![(0, 7, b"kept".to_vec())]);
        w.wait_closed().await;
    });
}

/// Past the bound, the least recently used idle logs close; the ones in use stay open.
#[test]
fn the_least_recently_used_idle_logs_close_past_the_bound() {
    rt::block_on(async {
        let tmp = tempfile::TempDir::new().unwrap();
        let files = OpenFiles::new(16);
        let writers: Vec<_> = (0..12)
            .map(|i| writer_with(tmp.path().join(format!("p{i}")), files.clone()))
            .collect();
        // Writer 0 stays in use (a reader holds its log) the whole time.
        let held = writers[0].open().await.unwrap();
        for w in &writers[1..] {
            w.open().await.unwrap();
            // Each log holds its segment and the index being written.
            assert!(files.files() <= 16 + 2, "{} files", files.files());
        }
        assert!(files.closed() > 0);
        assert!(writers[0].log().is_some(), "in use: never closed");
        assert!(writers[11].log().is_some(), "just opened: kept");
        assert!(writers[1].log().is_none(), "least recently used: closed");
        // Using an old one again reopens it and makes it recent.
        writers[1].open().await.unwrap();
        assert!(writers[1].log().is_some());
        files.make_room(None);
        assert!(files.files() <= 16, "{} files", files.files());
        drop(held);
        for w in &writers {
            w.wait_closed().await;
        }
    });
}

/// Every frame's wait in the queue and every chunk's compression land in the shard's stage
/// histograms (what `--trace-slow-acks` and `/metrics` explain a tail with).
#[test]
fn frames_and_chunks_are_timed_by_stage() {
    use crate::wire::produce::{encode_produce_body, ProduceLayout};
    rt::block_on(async {
        let tmp = tempfile::TempDir::new().unwrap();
        let w = writer(tmp.path().join("p0"));
        let mut acks = Vec::new();
        for i in 0..5u8 {
            let mut body = Vec::new();
            let msg = [i; 100];
            encode_produce_body(None, b"", [&msg[..], &msg[..]], &mut body);
            let layout = ProduceLayout::parse(&body, false).unwrap();
            let (tx, rx) = futures_channel::oneshot::channel();
            w.submit(
                ProduceFrame {
                    body: bytes::Bytes::from(body),
                    layout: layout.into(),
                    received_us: rt::now_us(),
                    leader_epoch: 0,
                },
                tx,
            );
            acks.push(rx);
        }
        let mut next = 0;
        for rx in acks {
            let ack = rx.await.unwrap().unwrap();
            assert_eq!(ack.offset, next);
            next += 2;
        }
        let queued = w.shard_metrics.produce_queue.snapshot();
        let compress = w.shard_metrics.chunk_compress.snapshot();
        let written = w.shard_metrics.chunk_write.snapshot();
        assert_eq!(queued.count(), 5, "one queue time per frame");
        assert!(compress.count() >= 1, "at least one chunk compressed");
        assert_eq!(
            compress.count(),
            written.count(),
            "one compression per chunk written"
        );
    });
}

/// With several chunk writes in flight, frames arriving in waves while earlier chunks are on
/// the device, across segment rolls: every frame is acknowledged, in offset order, with dense
/// offsets, and the log holds exactly them.
#[test]
fn chunk_writes_in_flight_acknowledge_in_offset_order_across_rolls() {
    use crate::wire::produce::{encode_produce_body, ProduceLayout};
    use rand::{Rng, SeedableRng};
    rt::block_on(async {
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = tmp.path().join("p0");
        let config = LogConfig {
            // A few chunks per segment: rolls happen while frames keep arriving.
            segment_size: 32 << 10,
            durability: Durability::Fsync,
            zstd_level: 1,
            retention_age: None,
            retention_bytes: None,
            tail_bytes: 1 << 16,
            reclaim_step: LogConfig::RECLAIM_STEP,
        };
        let w = Rc::new(PartitionWriter::new(
            0,
            dir.clone(),
            config,
            // One frame per chunk: many chunks, several in flight.
            8 << 10,
            Rc::default(),
            ShardShared {
                files: OpenFiles::new(64),
                tail_budget: crate::storage::TailBudget::new(1 << 16),
                chunk_writes_in_flight: 4,
                ..ShardShared::default()
            },
        ));
        let mut r = rand::rngs::StdRng::seed_from_u64(21);
        let mut acks = Vec::new();
        let mut sent = Vec::new();
        for wave in 0..12 {
            for _ in 0..3 {
                let msg: Vec<u8> = (0..6000).map(|_| r.gen()).collect();
                let mut body = Vec::new();
                encode_produce_body(None, b"", [&msg[..]], &mut body);
                let layout = ProduceLayout::parse(&body, false).unwrap();
                let (tx, rx) = futures_channel::oneshot::channel();
                let frame = ProduceFrame {
                    body: bytes::Bytes::from(body),
                    layout: layout.into(),
                    received_us: rt::now_us(),
                    leader_epoch: 0,
                };
                w.submit(frame, tx);
                acks.push(rx);
                sent.push(msg);
            }
            if wave % 3 != 2 {
                // Let the writes go to the device; the next wave arrives while they are there.
                rt::next_io_turn().await;
            }
        }
        for (i, rx) in acks.into_iter().enumerate() {
            let ack = rx.await.unwrap().unwrap();
            assert_eq!((ack.offset, ack.count), (i as i64, 1), "frame {i}");
        }
        w.wait_idle().await;
        let log = w.open().await.unwrap();
        assert_eq!(log.next_offset(), sent.len() as i64);
        assert!(log.segment_count() > 2, "{} segments", log.segment_count());
        let records = log.read_all_records().await.unwrap();
        let bodies: Vec<Vec<u8>> = records.into_iter().map(|r| r.2).collect();
        assert_eq!(bodies, sent);
    });
}
