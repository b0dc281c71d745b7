//! Statistics every core keeps for itself, on the hot path: counters and latency histograms in
//! shard-local `Cell`s (no locks, no atomics, no allocation), and the plain-data snapshot a
//! scrape reads them into. A leaf: the data plane and the servers count here; `metrics/`
//! gathers the snapshots and encodes them (see `docs/metrics.md` for the list).
//!
//! A shard's [`ShardMetrics`] hangs off its `Shard`; each topic's [`TopicMetrics`] (one per
//! shard and topic) sits in the shard's `TopicState` and in each of its partition writers, so
//! counting never looks a topic up by name. Producers are counted per frame and per chunk,
//! never per message.
//!
//! - [`histogram`]: the fixed-bucket latency histogram.
//! - [`snapshot`]: the plain-data snapshot and its merge.

pub mod histogram;
pub mod snapshot;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

pub use histogram::{Histogram, HistogramSnapshot};
pub use snapshot::{GroupStats, LagSample, MetricsSnapshot, ShardSnapshot, TopicSnapshot};

use crate::storage::RecoveryReport;
use crate::wire::{ErrorCode, OpCode};

/// Adds `n` to a counter cell.
#[inline]
fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// Framed request types, counted when a frame with that opcode arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    Produce,
    Startup,
    Heartbeat,
    Register,
    Poll,
    Commit,
    Goodbye,
    Fetch,
}

impl RequestType {
    pub const ALL: [RequestType; 8] = [
        RequestType::Produce,
        RequestType::Startup,
        RequestType::Heartbeat,
        RequestType::Register,
        RequestType::Poll,
        RequestType::Commit,
        RequestType::Goodbye,
        RequestType::Fetch,
    ];

    /// The request type of a client opcode (`None` for response opcodes).
    pub fn of(op: OpCode) -> Option<RequestType> {
        Some(match op {
            OpCode::Produce => RequestType::Produce,
            OpCode::Startup => RequestType::Startup,
            OpCode::Heartbeat => RequestType::Heartbeat,
            OpCode::Register => RequestType::Register,
            OpCode::Poll => RequestType::Poll,
            OpCode::Commit => RequestType::Commit,
            OpCode::Goodbye => RequestType::Goodbye,
            OpCode::Fetch => RequestType::Fetch,
            // Broker-to-broker group operations are counted by the broker that took the
            // consumer's request.
            OpCode::Ready
            | OpCode::Error
            | OpCode::ProduceResponse
            | OpCode::PollResponse
            | OpCode::Group
            | OpCode::GroupAnswer => return None,
        })
    }

    /// The `type` label value.
    pub fn name(self) -> &'static str {
        match self {
            RequestType::Produce => "produce",
            RequestType::Startup => "startup",
            RequestType::Heartbeat => "heartbeat",
            RequestType::Register => "register",
            RequestType::Poll => "poll",
            RequestType::Commit => "commit",
            RequestType::Goodbye => "goodbye",
            RequestType::Fetch => "fetch",
        }
    }
}

/// Frame results: slot 0 is `ok`, slot `1 + code` is ERROR with that code.
pub const FRAME_RESULTS: usize = 1 + ErrorCode::COUNT;

/// The `result` label value of frame-result slot `i`.
pub fn frame_result_name(i: usize) -> &'static str {
    match i {
        0 => "ok",
        _ => ErrorCode::from_u8((i - 1) as u8).map_or("unknown", ErrorCode::name),
    }
}

/// The transport a request came by (the `protocol` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Framed,
    /// REST, over HTTP/1.1 or HTTP/2.
    Http,
    Grpc,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Framed, Protocol::Http, Protocol::Grpc];

    /// The `protocol` label value.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Framed => "framed",
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

/// Requests counted per protocol (in [`Protocol::ALL`] order), per type (in
/// [`RequestType::ALL`] order).
pub type RequestCounts = [[u64; RequestType::ALL.len()]; Protocol::ALL.len()];

/// Counts a server's open connections on a shard when called (at scrape time).
pub type OpenConnections = Rc<dyn Fn() -> usize>;

/// One shard's own counters, histograms and per-shard gauges' sources.
#[derive(Default)]
pub struct ShardMetrics {
    /// Framed responses by result (see [`FRAME_RESULTS`]).
    frames: [Cell<u64>; FRAME_RESULTS],
    /// Requests by [`Protocol`] and [`RequestType`].
    requests: [[Cell<u64>; RequestType::ALL.len()]; Protocol::ALL.len()],
    /// Writing one chunk (the O_DIRECT write), per chunk.
    pub chunk_write: Histogram,
    /// `fdatasync` after a chunk write (durability `fsync` only), per chunk.
    pub fsync: Histogram,
    /// A produce request (framed PRODUCE frame, REST request, gRPC frame of values) read to
    /// its acknowledgement (or error) answered, per request.
    pub ack: Histogram,
    /// A poll (framed POLL, REST poll) read to its response queued, per poll.
    pub poll: Histogram,
    /// A produce frame handed to its partition's writer to its chunk's compression starting
    /// (waiting behind the chunk being written), per frame: with `chunk_compress`,
    /// `chunk_write` and `ack`, where an acknowledgement's time went.
    pub produce_queue: Histogram,
    /// Compressing one chunk (zstd, on the shard's core), per chunk.
    pub chunk_compress: Histogram,
    /// Each server's open-connection count on this shard, read at scrape time.
    servers: RefCell<Vec<(&'static str, OpenConnections)>>,
}

impl ShardMetrics {
    /// A framed response that is not an ERROR (READY, PRODUCE_RESPONSE, POLL_RESPONSE).
    #[inline]
    pub fn frame_ok(&self) {
        add(&self.frames[0], 1);
    }

    /// A framed ERROR response.
    #[inline]
    pub fn frame_error(&self, code: ErrorCode) {
        add(&self.frames[1 + code as usize], 1);
    }

    /// A request of type `t` by `protocol`.
    #[inline]
    pub fn request(&self, protocol: Protocol, t: RequestType) {
        add(&self.requests[protocol as usize][t as usize], 1);
    }

    /// Lets scrapes report a server's open connections on this shard, as `open()` counts
    /// them at scrape time.
    pub fn track_connections(&self, server: &'static str, open: OpenConnections) {
        self.servers.borrow_mut().push((server, open));
    }

    /// Open connections now, per server name.
    pub(crate) fn open_connections(&self) -> Vec<(&'static str, u64)> {
        self.servers
            .borrow()
            .iter()
            .map(|(name, open)| (*name, open() as u64))
            .collect()
    }

    pub(crate) fn frames(&self) -> [u64; FRAME_RESULTS] {
        std::array::from_fn(|i| self.frames[i].get())
    }

    pub(crate) fn requests(&self) -> RequestCounts {
        std::array::from_fn(|p| std::array::from_fn(|t| self.requests[p][t].get()))
    }
}

impl std::fmt::Debug for ShardMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardMetrics")
            .field("frames", &self.frames())
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

/// One topic's counters on one shard. Produce-side counters are kept by the shard that owns
/// the partitions (its writers), consume-side ones by the shard that served the poll.
#[derive(Debug, Default)]
pub struct TopicMetrics {
    messages_in: Cell<u64>,
    raw_bytes_in: Cell<u64>,
    compressed_bytes_in: Cell<u64>,
    chunk_bytes_written: Cell<u64>,
    chunks_written: Cell<u64>,
    append_errors: Cell<u64>,
    messages_out: Cell<u64>,
    bytes_out: Cell<u64>,
    retention_segments: Cell<u64>,
    retention_bytes: Cell<u64>,
    recovery: RecoveryCounters,
}

#[derive(Debug, Default)]
struct RecoveryCounters {
    partitions: Cell<u64>,
    chunks_verified: Cell<u64>,
    torn_tails: Cell<u64>,
    torn_bytes: Cell<u64>,
    chunks_cut: Cell<u64>,
    corrupt_chunks: Cell<u64>,
    indexes_rebuilt: Cell<u64>,
}

impl TopicMetrics {
    /// A chunk made durable: `records` messages of `raw` bytes before compression, `payload`
    /// compressed bytes, `chunk` bytes in the file (header and padding included).
    #[inline]
    pub fn chunk_written(&self, records: u64, raw: u64, payload: u64, chunk: u64) {
        add(&self.messages_in, records);
        add(&self.raw_bytes_in, raw);
        add(&self.compressed_bytes_in, payload);
        add(&self.chunk_bytes_written, chunk);
        add(&self.chunks_written, 1);
    }

    /// A chunk that could not be appended.
    #[inline]
    pub fn append_failed(&self) {
        add(&self.append_errors, 1);
    }

    /// Messages and (compressed) bytes handed to a consumer by a poll.
    #[inline]
    pub fn polled(&self, messages: u64, bytes: u64) {
        add(&self.messages_out, messages);
        add(&self.bytes_out, bytes);
    }

    /// Segments deleted by retention.
    pub fn retention_deleted(&self, segments: u64, bytes: u64) {
        add(&self.retention_segments, segments);
        add(&self.retention_bytes, bytes);
    }

    /// What recovery found when a partition was opened.
    pub fn recovered(&self, r: &RecoveryReport) {
        let c = &self.recovery;
        add(&c.partitions, 1);
        add(&c.chunks_verified, r.chunks_verified);
        add(&c.torn_tails, u64::from(r.torn_bytes_cut > 0));
        add(&c.torn_bytes, r.torn_bytes_cut);
        add(&c.chunks_cut, r.chunks_cut);
        add(&c.corrupt_chunks, r.corrupt_chunks);
        add(&c.indexes_rebuilt, r.index_rebuilt);
    }

    /// The counters as plain data (gauges left at zero for the caller to fill in).
    pub fn snapshot(&self, topic: &str) -> TopicSnapshot {
        let c = &self.recovery;
        TopicSnapshot {
            topic: topic.to_string(),
            messages_in: self.messages_in.get(),
            raw_bytes_in: self.raw_bytes_in.get(),
            compressed_bytes_in: self.compressed_bytes_in.get(),
            chunk_bytes_written: self.chunk_bytes_written.get(),
            chunks_written: self.chunks_written.get(),
            append_errors: self.append_errors.get(),
            messages_out: self.messages_out.get(),
            bytes_out: self.bytes_out.get(),
            retention_segments_deleted: self.retention_segments.get(),
            retention_bytes_deleted: self.retention_bytes.get(),
            partitions_recovered: c.partitions.get(),
            recovery_chunks_verified: c.chunks_verified.get(),
            recovery_torn_tails: c.torn_tails.get(),
            recovery_torn_bytes: c.torn_bytes.get(),
            recovery_chunks_cut: c.chunks_cut.get(),
            recovery_corrupt_chunks: c.corrupt_chunks.get(),
            recovery_indexes_rebuilt: c.indexes_rebuilt.get(),
            ..TopicSnapshot::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_results_cover_every_error_code() {
        assert_eq!(frame_result_name(0), "ok");
        for code in 0..=255u8 {
            if let Some(c) = ErrorCode::from_u8(code) {
                assert!(1 + (c as usize) < FRAME_RESULTS);
                assert_eq!(frame_result_name(1 + c as usize), c.name());
            }
        }
        let m = ShardMetrics::default();
        m.frame_ok();
        m.frame_error(ErrorCode::UnknownConsumer);
        m.request(Protocol::Framed, RequestType::Goodbye);
        m.request(Protocol::Grpc, RequestType::Produce);
        assert_eq!(m.frames()[0], 1);
        assert_eq!(m.frames()[8], 1);
        assert_eq!(m.requests()[0][6], 1);
        assert_eq!(m.requests()[2][0], 1);
        assert_eq!(m.requests().iter().flatten().sum::<u64>(), 2);
        for (i, t) in RequestType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
        for (i, p) in Protocol::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
    }

    #[test]
    fn topic_counters() {
        let t = TopicMetrics::default();
        t.chunk_written(10, 1000, 300, 4096);
        t.chunk_written(5, 500, 200, 4096);
        t.polled(7, 300);
        t.retention_deleted(2, 8192);
        t.recovered(&RecoveryReport {
            chunks_verified: 4,
            torn_bytes_cut: 100,
            chunks_cut: 3,
            corrupt_chunks: 1,
            index_rebuilt: 1,
            ..RecoveryReport::default()
        });
        t.recovered(&RecoveryReport::default());
        let s = t.snapshot("orders");
        assert_eq!(s.topic, "orders");
        assert_eq!((s.messages_in, s.raw_bytes_in), (15, 1500));
        assert_eq!((s.compressed_bytes_in, s.chunk_bytes_written), (500, 8192));
        assert_eq!(s.chunks_written, 2);
        assert_eq!((s.messages_out, s.bytes_out), (7, 300));
        assert_eq!(
            (s.retention_segments_deleted, s.retention_bytes_deleted),
            (2, 8192)
        );
        assert_eq!(s.partitions_recovered, 2);
        assert_eq!((s.recovery_torn_tails, s.recovery_torn_bytes), (1, 100));
        assert_eq!(s.recovery_chunks_cut, 3);
        assert_eq!(s.recovery_chunks_verified, 4);
        assert_eq!(
            (s.recovery_corrupt_chunks, s.recovery_indexes_rebuilt),
            (1, 1)
        );
    }
}
