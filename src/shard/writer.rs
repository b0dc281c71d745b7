//! Group commit for one partition. Frames queue up while a chunk is being written; when the
//! write completes, everything queued becomes the next chunk: compressed once, written once,
//! made durable once, and only then are all of its frames acknowledged. A frame is atomic: its
//! messages all land in one chunk.

use std::cell::{Cell, OnceCell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use crate::cluster::leadership::PartitionFence;
use crate::rt;
use crate::stats::{ShardMetrics, TopicMetrics};
use crate::storage::fs::BrokerFs;
use crate::storage::{
    AppendInfo, LogChunk, LogConfig, Part, PartitionLog, RecordBatch, TailBudget,
};
use crate::wire::produce::ProduceLayout;

use super::error::ProduceError;
use super::msg::{FrameLayout, ProduceAck, ProduceFrame, ProduceReply};
use super::notify::LocalNotify;
use super::open_files::OpenFiles;
use super::readahead::ReadAhead;

mod fence;
mod in_flight;
mod open;
mod pipeline;
#[cfg(test)]
mod tests;

use open::{CloseFlight, OpenFlight};

/// A frame waiting for its chunk.
struct Pending {
    frame: ProduceFrame,
    reply: ProduceReply,
}

/// The frames of one chunk, handed to storage as record pieces taken straight from the frame
/// bodies: for each message, its frame's 8-byte timestamp, then its `len u32 | body` bytes;
/// a producer-compressed frame's payload is passed on as it is.
struct FrameBatch {
    frames: Vec<Pending>,
    records: u32,
    /// Bytes of the records uncompressed, compressed frames' included (the chunk's raw size).
    uncompressed_len: usize,
    /// Bytes of the records the writer compresses (plain frames only).
    plain_len: usize,
    /// Bytes and number of producer-compressed payloads.
    compressed: (usize, usize),
    /// When its compression started (`rt::now_us`), and how long it took: for the stage
    /// histograms and `--trace-slow-acks`.
    encode_started_us: i64,
    compress_us: u64,
}

impl FrameBatch {
    fn new(frames: Vec<Pending>) -> FrameBatch {
        let (mut records, mut uncompressed_len, mut plain_len) = (0, 0, 0);
        let mut compressed = (0, 0);
        for p in &frames {
            records += p.frame.record_count();
            uncompressed_len += p.frame.raw_len();
            match &p.frame.layout {
                FrameLayout::Plain(_) => plain_len += p.frame.raw_len(),
                FrameLayout::Compressed { layout, .. } => {
                    compressed.0 += layout.payload(&p.frame.body).len();
                    compressed.1 += 1;
                }
            }
        }
        FrameBatch {
            frames,
            records,
            uncompressed_len,
            plain_len,
            compressed,
            encode_started_us: 0,
            compress_us: 0,
        }
    }
}

/// Calls `f` with a plain frame's record pieces: per message its timestamp, then `len | body`.
fn plain_pieces(frame: &ProduceFrame, layout: &ProduceLayout, f: &mut dyn FnMut(&[u8])) {
    let ts = frame.timestamp_us().to_be_bytes();
    let mut msgs = layout.view(&frame.body).iter();
    while let Some(m) = msgs.next_with_prefix() {
        f(&ts);
        f(m);
    }
}

impl RecordBatch for FrameBatch {
    fn record_count(&self) -> u32 {
        self.records
    }

    fn raw_len(&self) -> usize {
        self.plain_len
    }

    fn max_timestamp_us(&self) -> i64 {
        // One timestamp per frame: a few comparisons per chunk.
        self.frames
            .iter()
            .map(|p| p.frame.timestamp_us())
            .max()
            .unwrap_or(i64::MIN)
    }

    fn for_each_piece(&self, f: &mut dyn FnMut(&[u8])) {
        for p in &self.frames {
            if let FrameLayout::Plain(layout) = &p.frame.layout {
                plain_pieces(&p.frame, layout, f);
            }
        }
    }

    fn compressed_len(&self) -> (usize, usize) {
        self.compressed
    }

    fn for_each_part(&self, f: &mut dyn FnMut(Part<'_>)) {
        for p in &self.frames {
            match &p.frame.layout {
                FrameLayout::Plain(layout) => {
                    plain_pieces(&p.frame, layout, &mut |piece| f(Part::Records(piece)))
                }
                FrameLayout::Compressed { layout, .. } => {
                    f(Part::Compressed(layout.payload(&p.frame.body)))
                }
            }
        }
    }
}

/// A compressed chunk and the log it goes to, or why there is none.
type Encoded = Result<(Rc<PartitionLog>, LogChunk), ProduceError>;

/// The bytes a frame adds to a chunk before compression.
fn raw_len(frame: &ProduceFrame) -> usize {
    frame.raw_len()
}

/// `--trace-slow-acks`: one line for a chunk whose oldest frame waited longer than `limit_us`
/// from its hand-over to the writer to now (its acknowledgement), split into the stages.
fn trace_if_slow(partition: u32, batch: &FrameBatch, info: &AppendInfo, limit_us: u64) {
    let now = rt::now_us();
    let oldest = batch
        .frames
        .iter()
        .map(|p| p.frame.received_us)
        .min()
        .unwrap_or(now);
    let total_us = now.saturating_sub(oldest).max(0) as u64;
    if total_us <= limit_us {
        return;
    }
    let queued_us = batch.encode_started_us.saturating_sub(oldest).max(0) as u64;
    tracing::info!(
        target: "shardlog::trace",
        partition,
        offset = info.start_offset,
        frames = batch.frames.len(),
        records = batch.records,
        raw_bytes = batch.uncompressed_len,
        stored_bytes = info.chunk_len,
        total_us,
        queued_us,
        compress_us = batch.compress_us,
        write_us = info.write_us,
        fdatasync_us = info.fdatasync_us.unwrap_or(0),
        // Between the compression's end and the write's start (the previous chunk's write
        // still in flight), and between the write's end and now (the task waiting to run).
        other_us = total_us
            .saturating_sub(queued_us + batch.compress_us + info.write_us + info.fdatasync_us.unwrap_or(0)),
        "slow acknowledgement"
    );
}

/// What a partition's writer shares with the other partitions of its shard.
#[derive(Clone, Default)]
pub struct ShardShared {
    /// The shard's latency histograms.
    pub metrics: Rc<ShardMetrics>,
    /// The shard's open files, bounded by `--max-open-files`.
    pub files: Rc<OpenFiles>,
    /// The shard's hot-tail memory (`--hot-tail`), shared by all its partitions.
    pub tail_budget: Rc<TailBudget>,
    /// The file system the partitions' logs live on.
    pub fs: BrokerFs,
    /// `--trace-slow-acks` in microseconds: chunks slower than this are logged.
    pub trace_slow_acks_us: Option<u64>,
    /// `--chunk-writes-in-flight`: chunk writes a partition may have in flight at once (`0`
    /// is taken as 1).
    pub chunk_writes_in_flight: usize,
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
    /// The last close of the log, which the next open waits for.
    closing: RefCell<Option<Rc<CloseFlight>>>,
    /// The shard's open files, bounded by `--max-open-files`.
    files: Rc<OpenFiles>,
    /// The shard's hot-tail memory, shared by all its partitions.
    tail_budget: Rc<TailBudget>,
    /// The file system its log lives on (a test may put faults under it).
    fs: BrokerFs,
    /// When the log was last used, in the shard's use order (see [`OpenFiles`]).
    last_used: Cell<u64>,
    /// Segments and bytes on disk when the log was last closed (for metrics while closed).
    closed_stats: Cell<(u64, u64)>,
    queue: RefCell<Vec<Pending>>,
    /// Signalled when a frame is queued, for a writer waiting on its writes in flight.
    queued: LocalNotify,
    running: Cell<bool>,
    /// `--chunk-writes-in-flight`.
    writes_in_flight: usize,
    /// Set by graceful shutdown: frames submitted after it are refused, so nothing is
    /// appended after the clean-shutdown marker.
    closed: Cell<bool>,
    /// Set (to the topic's name) when the topic is deleted: frames, reads and opens are
    /// refused from then on, and frames not yet acknowledged are failed (see `fence`).
    deleted: OnceCell<String>,
    /// Signalled each time a chunk becomes durable, for readers tailing the partition.
    pub appended: LocalNotify,
    /// Signalled when the writer task has nothing left to write.
    idle: LocalNotify,
    /// The next range a consumer draining this partition from disk will ask for.
    pub read_ahead: Rc<ReadAhead>,
    /// The topic's counters on this shard, and the shard's latency histograms.
    metrics: Rc<TopicMetrics>,
    shard_metrics: Rc<ShardMetrics>,
    /// `--trace-slow-acks`, in microseconds.
    trace_slow_acks_us: Option<u64>,
    /// Cluster mode: whether this broker may write the partition now (lease, leader, epoch),
    /// asked before a frame is stored and before it is acknowledged. `None` on a single host,
    /// whose produce path is then one branch on this field.
    fence: Option<Arc<PartitionFence>>,
}

impl PartitionWriter {
    pub fn new(
        partition: u32,
        dir: PathBuf,
        config: LogConfig,
        max_chunk_raw: usize,
        metrics: Rc<TopicMetrics>,
        shared: ShardShared,
    ) -> Self {
        let ShardShared {
            metrics: shard_metrics,
            files,
            tail_budget,
            fs,
            trace_slow_acks_us,
            chunk_writes_in_flight,
        } = shared;
        PartitionWriter {
            partition,
            dir,
            config,
            max_chunk_raw,
            log: RefCell::new(None),
            opening: RefCell::new(None),
            closing: RefCell::new(None),
            files,
            tail_budget,
            fs,
            last_used: Cell::new(0),
            closed_stats: Cell::new((0, 0)),
            queue: RefCell::new(Vec::new()),
            queued: LocalNotify::default(),
            running: Cell::new(false),
            writes_in_flight: chunk_writes_in_flight.max(1),
            closed: Cell::new(false),
            deleted: OnceCell::new(),
            appended: LocalNotify::default(),
            idle: LocalNotify::default(),
            read_ahead: Rc::default(),
            metrics,
            shard_metrics,
            trace_slow_acks_us,
            fence: None,
        }
    }

    /// In cluster mode: the partition's write fence (see `cluster::leadership`).
    pub fn fenced(mut self, fence: Option<Arc<PartitionFence>>) -> Self {
        self.fence = fence;
        self
    }

    /// Cluster mode: refuses a frame this broker may not write now (nothing stored).
    fn admit(&self, frame: &ProduceFrame) -> Result<(), ProduceError> {
        match &self.fence {
            None => Ok(()),
            Some(fence) => Ok(fence.admit(frame.leader_epoch)?),
        }
    }

    /// Queues a frame; its reply is sent once the chunk holding it is durable.
    pub fn submit(self: &Rc<Self>, frame: ProduceFrame, reply: ProduceReply) {
        if let Some(block) = crate::failpoint::hit("writer.submit") {
            // Blocks the shard's thread, as a task that never yields would (tests/stall_report.rs).
            std::thread::sleep(block);
        }
        if let Err(e) = self.check_not_deleted() {
            let _ = reply.send(Err(e.into()));
            return;
        }
        if self.closed.get() {
            let _ = reply.send(Err(ProduceError::ShuttingDown));
            return;
        }
        if let Err(e) = self.admit(&frame) {
            let _ = reply.send(Err(e));
            return;
        }
        self.queue.borrow_mut().push(Pending { frame, reply });
        if !self.running.replace(true) {
            rt::spawn_detached(self.clone().run());
        } else {
            self.queued.notify();
        }
    }

    /// Takes the next chunk's frames off the queue: everything queued, up to `chunk_raw_cap` (`pipeline.rs`).
    fn take_batch(&self, free_slots: usize) -> Option<FrameBatch> {
        let mut queue = self.queue.borrow_mut();
        if self.fence.is_some() {
            // Frames that waited while the lease or the leadership went: not written.
            for p in std::mem::take(&mut *queue) {
                match self.admit(&p.frame) {
                    Ok(()) => queue.push(p),
                    Err(e) => {
                        let _ = p.reply.send(Err(e));
                    }
                }
            }
        }
        if queue.is_empty() {
            return None;
        }
        let mut raw = 0;
        let mut n = 0;
        let cap = self.chunk_raw_cap(&queue, free_slots);
        for p in queue.iter() {
            let len = raw_len(&p.frame);
            if n > 0 && raw + len > cap {
                break;
            }
            raw += len;
            n += 1;
        }
        let frames: Vec<Pending> = queue.drain(..n).collect();
        Some(FrameBatch::new(frames))
    }

    /// Takes the next chunk's frames off the queue and compresses them (opening the log first
    /// if needed); `None` when nothing is queued.
    async fn take_and_encode(self: &Rc<Self>, free_slots: usize) -> Option<(FrameBatch, Encoded)> {
        let mut batch = self.take_batch(free_slots)?;
        if let Err(e) = self.check_not_deleted() {
            return Some((batch, Err(e.into())));
        }
        let encoded = match self.open().await {
            Ok(log) => {
                let started = rt::now_us();
                for p in &batch.frames {
                    let queued = started.saturating_sub(p.frame.received_us).max(0);
                    self.shard_metrics.produce_queue.record_us(queued as u64);
                }
                let t = std::time::Instant::now();
                let chunk = log.encode(&batch);
                let compress_us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.shard_metrics.chunk_compress.record_us(compress_us);
                batch.encode_started_us = started;
                batch.compress_us = compress_us;
                chunk.map(|chunk| (log, chunk)).map_err(ProduceError::from)
            }
            Err(e) => Err(ProduceError::Storage(e)),
        };
        Some((batch, encoded))
    }

    /// Records a written chunk and answers its frames (or fails them all).
    fn answer(&self, batch: FrameBatch, result: Result<AppendInfo, ProduceError>) {
        // Written, but the topic was deleted meanwhile: its files are going away, so the
        // frames must not be acknowledged.
        let result = result.and_then(|info| {
            self.check_not_deleted()?;
            Ok(info)
        });
        match result {
            Ok(info) => {
                self.metrics.chunk_written(
                    u64::from(info.record_count),
                    batch.uncompressed_len as u64,
                    u64::from(info.payload_len),
                    info.chunk_len,
                );
                self.shard_metrics.chunk_write.record_us(info.write_us);
                if let Some(us) = info.fdatasync_us {
                    self.shard_metrics.fsync.record_us(us);
                }
                self.appended.notify();
                if let Some(limit) = self.trace_slow_acks_us {
                    trace_if_slow(self.partition, &batch, &info, limit);
                }
                let mut offset = info.start_offset;
                for p in batch.frames {
                    let count = p.frame.record_count();
                    // Cluster mode: the lease and leadership must still hold now that the
                    // chunk is durable; if not, the client hears the outcome is unknown.
                    let confirmed = match &self.fence {
                        None => Ok(()),
                        Some(fence) => fence.confirm(p.frame.leader_epoch),
                    };
                    let _ = p.reply.send(match confirmed {
                        Ok(()) => Ok(ProduceAck {
                            partition: self.partition,
                            offset,
                            count,
                        }),
                        Err(e) => Err(e.into()),
                    });
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
