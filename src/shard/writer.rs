//! Group commit for one partition. Frames queue up while a chunk is being written; when the
//! write completes, everything queued becomes the next chunk: compressed once, written once,
//! made durable once, and only then are all of its frames acknowledged. A frame is atomic: its
//! messages all land in one chunk.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;

use futures_lite::future;

use crate::rt;
use crate::stats::{ShardMetrics, TopicMetrics};
use crate::storage::{AppendInfo, LogChunk, LogConfig, PartitionLog, RecordBatch, StorageError};

use super::error::ProduceError;
use super::msg::{ProduceAck, ProduceFrame, ProduceReply};
use super::notify::LocalNotify;
use super::readahead::ReadAhead;

/// A frame waiting for its chunk.
struct Pending {
    frame: ProduceFrame,
    reply: ProduceReply,
}

/// The frames of one chunk, handed to storage as record pieces taken straight from the frame
/// bodies: for each message, its frame's 8-byte timestamp, then its `len u32 | body` bytes.
struct FrameBatch {
    frames: Vec<Pending>,
    records: u32,
    raw_len: usize,
}

impl RecordBatch for FrameBatch {
    fn record_count(&self) -> u32 {
        self.records
    }

    fn raw_len(&self) -> usize {
        self.raw_len
    }

    fn for_each_piece(&self, f: &mut dyn FnMut(&[u8])) {
        for p in &self.frames {
            let ts = p.frame.timestamp_us().to_be_bytes();
            let body = p.frame.layout.view(&p.frame.body);
            let mut msgs = body.iter();
            while let Some(m) = msgs.next_with_prefix() {
                f(&ts);
                f(m);
            }
        }
    }
}

/// A compressed chunk and the log it goes to, or why there is none.
type Encoded = Result<(Rc<PartitionLog>, LogChunk), ProduceError>;

/// Which of a chunk's write and the next chunk's compression finished first.
enum First {
    Written(Result<AppendInfo, ProduceError>),
    Encoded(Option<(FrameBatch, Encoded)>),
}

/// The bytes a frame adds to a chunk before compression.
fn raw_len(frame: &ProduceFrame) -> usize {
    let msgs = frame.body.len() - frame.layout.messages_start;
    msgs + 8 * frame.layout.count as usize
}

/// What opening a partition's log gives.
type OpenResult = Result<Rc<PartitionLog>, Arc<StorageError>>;

/// An open of a partition's log in progress: every caller that finds the log not open yet
/// waits for this one open instead of running its own (single-flight).
#[derive(Default)]
struct OpenFlight {
    /// The open's result, once it has finished.
    result: RefCell<Option<OpenResult>>,
    /// Signalled when `result` is set.
    done: LocalNotify,
}

/// The writer of one partition, owned by the partition's shard.
pub struct PartitionWriter {
    pub partition: u32,
    dir: PathBuf,
    config: LogConfig,
    /// Upper bound on a chunk's uncompressed size (a single larger frame still goes alone).
    max_chunk_raw: usize,
    log: RefCell<Option<Rc<PartitionLog>>>,
    /// The open in progress, while the log is not open yet.
    opening: RefCell<Option<Rc<OpenFlight>>>,
    queue: RefCell<Vec<Pending>>,
    running: Cell<bool>,
    /// Set by graceful shutdown: frames submitted after it are refused, so nothing is
    /// appended after the clean-shutdown marker.
    closed: Cell<bool>,
    /// Signalled each time a chunk becomes durable, for readers tailing the partition.
    pub appended: LocalNotify,
    /// Signalled when the writer task has nothing left to write.
    idle: LocalNotify,
    /// The next range a consumer draining this partition from disk will ask for.
    pub read_ahead: Rc<ReadAhead>,
    /// The topic's counters on this shard, and the shard's latency histograms.
    metrics: Rc<TopicMetrics>,
    shard_metrics: Rc<ShardMetrics>,
}

impl PartitionWriter {
    pub fn new(
        partition: u32,
        dir: PathBuf,
        config: LogConfig,
        max_chunk_raw: usize,
        metrics: Rc<TopicMetrics>,
        shard_metrics: Rc<ShardMetrics>,
    ) -> Self {
        PartitionWriter {
            partition,
            dir,
            config,
            max_chunk_raw,
            log: RefCell::new(None),
            opening: RefCell::new(None),
            queue: RefCell::new(Vec::new()),
            running: Cell::new(false),
            closed: Cell::new(false),
            appended: LocalNotify::default(),
            idle: LocalNotify::default(),
            read_ahead: Rc::default(),
            metrics,
            shard_metrics,
        }
    }

    /// Opens (and recovers) the partition's log if it is not open yet.
    ///
    /// Single-flight: however many requests race for a partition that is not open, its log is
    /// opened (and recovered) once; every racer gets that open's log, or its error. The open
    /// runs in its own task, so a caller that gives up (a closed connection) does not cancel it
    /// for the others. A failed open is not kept: the next caller tries again. Recovery thus
    /// never runs against a log a writer holds: once a log is open, it is never opened again.
    pub async fn open(&self) -> OpenResult {
        if let Some(log) = self.log.borrow().as_ref() {
            return Ok(log.clone());
        }
        let flight = self
            .opening
            .borrow_mut()
            .get_or_insert_with(|| self.start_open())
            .clone();
        loop {
            // Registered before the check, so a result set in between still wakes us.
            let done = flight.done.notified();
            let result = flight.result.borrow().clone();
            if let Some(result) = result {
                return self.finish_open(&flight, result);
            }
            done.await;
        }
    }

    /// Starts the one open of the log, in a task of its own.
    fn start_open(&self) -> Rc<OpenFlight> {
        let flight = Rc::new(OpenFlight::default());
        let dir = self.dir.clone();
        let config = self.config.clone();
        let metrics = self.metrics.clone();
        let f = flight.clone();
        rt::spawn_detached(async move {
            let result = match PartitionLog::open(dir.clone(), config).await {
                Ok((log, report)) => {
                    tracing::info!(dir = %dir.display(), ?report, "partition recovered");
                    metrics.recovered(&report);
                    Ok(Rc::new(log))
                }
                Err(e) => Err(Arc::new(e)),
            };
            *f.result.borrow_mut() = Some(result);
            f.done.notify();
        });
        flight
    }

    /// Installs a finished open's log (the first of its waiters to wake does it) and ends the
    /// flight, so a failed open can be retried by the next caller.
    fn finish_open(&self, flight: &Rc<OpenFlight>, result: OpenResult) -> OpenResult {
        {
            let mut opening = self.opening.borrow_mut();
            if opening.as_ref().is_some_and(|f| Rc::ptr_eq(f, flight)) {
                *opening = None;
            }
        }
        let log = result?;
        Ok(self.log.borrow_mut().get_or_insert(log).clone())
    }

    /// The open log, if any.
    pub fn log(&self) -> Option<Rc<PartitionLog>> {
        self.log.borrow().clone()
    }

    /// Queues a frame; its reply is sent once the chunk holding it is durable.
    pub fn submit(self: &Rc<Self>, frame: ProduceFrame, reply: ProduceReply) {
        crate::failpoint::hit("writer.submit");
        if self.closed.get() {
            let _ = reply.send(Err(ProduceError::ShuttingDown));
            return;
        }
        self.queue.borrow_mut().push(Pending { frame, reply });
        if !self.running.replace(true) {
            rt::spawn_detached(self.clone().run());
        }
    }

    /// Takes the next chunk's frames off the queue: everything queued, up to `max_chunk_raw`.
    fn take_batch(&self) -> Option<FrameBatch> {
        let mut queue = self.queue.borrow_mut();
        if queue.is_empty() {
            return None;
        }
        let mut raw = 0;
        let mut n = 0;
        for p in queue.iter() {
            let len = raw_len(&p.frame);
            if n > 0 && raw + len > self.max_chunk_raw {
                break;
            }
            raw += len;
            n += 1;
        }
        let frames: Vec<Pending> = queue.drain(..n).collect();
        let records = frames.iter().map(|p| p.frame.record_count()).sum();
        Some(FrameBatch {
            frames,
            records,
            raw_len: raw,
        })
    }

    /// Takes the next chunk's frames off the queue and compresses them (opening the log first
    /// if needed); `None` when nothing is queued.
    async fn take_and_encode(&self) -> Option<(FrameBatch, Encoded)> {
        let batch = self.take_batch()?;
        let encoded = match self.open().await {
            Ok(log) => log
                .encode(&batch)
                .map(|chunk| (log, chunk))
                .map_err(ProduceError::from),
            Err(e) => Err(ProduceError::Storage(e)),
        };
        Some((batch, encoded))
    }

    /// Writes chunks until the queue is empty. While one chunk is being written, the frames
    /// queued meanwhile are compressed into the next, so the device and the CPU work at the
    /// same time; chunks are still written, and acknowledged, one after the other in order.
    async fn run(self: Rc<Self>) {
        let mut next = None;
        loop {
            let current = match next.take() {
                Some(c) => Some(c),
                None => self.take_and_encode().await,
            };
            let Some((batch, encoded)) = current else {
                break;
            };
            let mut write = pin!(async {
                let (log, chunk) = encoded?;
                log.write_chunk(chunk).await.map_err(ProduceError::from)
            });
            let mut encode_next = pin!(async {
                // Let the executor hand the write to the kernel before compressing.
                rt::next_io_turn().await;
                self.take_and_encode().await
            });
            // Answer the frames as soon as their chunk is durable, even if the next chunk is
            // still being compressed.
            let first = future::or(async { First::Written(write.as_mut().await) }, async {
                First::Encoded(encode_next.as_mut().await)
            })
            .await;
            match first {
                First::Written(result) => {
                    self.answer(batch, result);
                    next = encode_next.await;
                }
                First::Encoded(following) => {
                    next = following;
                    self.answer(batch, write.await);
                }
            }
            // Compression ran on this core; let connections and other partitions have it.
            rt::yield_if_needed().await;
        }
        self.running.set(false);
        self.idle.notify();
    }

    /// Records a written chunk and answers its frames (or fails them all).
    fn answer(&self, batch: FrameBatch, result: Result<AppendInfo, ProduceError>) {
        match result {
            Ok(info) => {
                self.metrics.chunk_written(
                    u64::from(info.record_count),
                    batch.raw_len as u64,
                    u64::from(info.payload_len),
                    info.chunk_len,
                );
                self.shard_metrics.chunk_write.record_us(info.write_us);
                if let Some(us) = info.fdatasync_us {
                    self.shard_metrics.fsync.record_us(us);
                }
                self.appended.notify();
                let mut offset = info.start_offset;
                for p in batch.frames {
                    let count = p.frame.record_count();
                    let _ = p.reply.send(Ok(ProduceAck {
                        partition: self.partition,
                        offset,
                        count,
                    }));
                    offset += count as i64;
                }
            }
            Err(e) => {
                self.metrics.append_failed();
                tracing::error!(partition = self.partition, error = %e, "append failed");
                for p in batch.frames {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Waits until every queued frame has been written (or failed).
    pub async fn wait_idle(&self) {
        while self.running.get() {
            self.idle.notified().await;
        }
    }

    /// Graceful shutdown: refuses frames from now on, then waits until those already queued
    /// are durable (or failed). After this the log can be closed cleanly.
    pub async fn stop_appends(&self) {
        self.closed.set(true);
        self.wait_idle().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Durability;

    fn writer(dir: PathBuf) -> Rc<PartitionWriter> {
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
            Rc::default(),
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
}
