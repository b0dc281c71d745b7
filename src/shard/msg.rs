//! The data plane's messages between shards, over the mesh. Everything here is `Send`; replies
//! go back in a one-shot carried by the request. Only the data plane has typed messages
//! (produce, read, topic creation); control work travels as a [`ControlTask`] closure.

use std::rc::Rc;

use bytes::Bytes;
use futures_channel::oneshot;

use crate::ring::TopicLayout;
use crate::storage::StoredChunk;
use crate::wire::produce::ProduceLayout;
use crate::wire::produce_compressed::{CompressedLayout, Verified};

use super::error::{ProduceError, ReadError, TopicError};
use super::Shard;

/// A validated PRODUCE frame on its way to its partition: the frame body (a slice of the
/// connection's read buffer, never copied) and where its parts are.
#[derive(Debug, Clone)]
pub struct ProduceFrame {
    pub body: Bytes,
    pub layout: FrameLayout,
    /// When the broker read the frame (μs since the epoch): the records' timestamp when the
    /// frame carries none.
    pub received_us: i64,
    /// Cluster mode: the leader epoch the frame was routed with, which the partition's write
    /// fence checks (see `cluster::leadership`). 0 on a single host, where nothing checks it.
    pub leader_epoch: u64,
}

/// How a frame's records sit in its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameLayout {
    /// The seed's form: `len u32 | msg` runs, stamped with one timestamp and compressed into
    /// the chunk by the partition's writer.
    Plain(ProduceLayout),
    /// Flag `0x08`: the records already compressed by the producer (zstd frames in the chunk
    /// payload format), checked on arrival and stored as they came.
    Compressed {
        layout: CompressedLayout,
        verified: Verified,
    },
}

impl From<ProduceLayout> for FrameLayout {
    fn from(l: ProduceLayout) -> FrameLayout {
        FrameLayout::Plain(l)
    }
}

impl ProduceFrame {
    /// The timestamp stored with this frame's records (for a compressed frame, the newest of
    /// the producer's own).
    pub fn timestamp_us(&self) -> i64 {
        match &self.layout {
            FrameLayout::Plain(l) => l.timestamp.unwrap_or(self.received_us),
            FrameLayout::Compressed { verified, .. } => verified.max_timestamp_us,
        }
    }

    pub fn record_count(&self) -> u32 {
        match &self.layout {
            FrameLayout::Plain(l) => l.count,
            FrameLayout::Compressed { layout, .. } => layout.count,
        }
    }

    /// The bytes the frame's records take uncompressed (record headers included): what it
    /// adds to a chunk's raw size.
    pub fn raw_len(&self) -> usize {
        match &self.layout {
            FrameLayout::Plain(l) => self.body.len() - l.messages_start + 8 * l.count as usize,
            FrameLayout::Compressed { verified, .. } => verified.raw_len,
        }
    }
}

/// Where an acknowledged frame landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    pub partition: u32,
    /// Offset of the frame's first message.
    pub offset: i64,
    pub count: u32,
}

pub type ProduceReply = oneshot::Sender<Result<ProduceAck, ProduceError>>;

/// Chunks read from a partition, and its bounds at the time of the read.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    /// Whole chunks; the first may start before the requested offset.
    pub chunks: Vec<StoredChunk>,
    /// Earliest offset still available (retention moves it forward).
    pub start_offset: i64,
    /// One past the last durable offset.
    pub end_offset: i64,
}

pub type ReadReply = oneshot::Sender<Result<ReadResult, ReadError>>;

/// Control work run on another core against its shard (see [`super::control`]). It runs
/// inside the mesh's receive loop, so it must not wait: work that waits is spawned (as
/// `Shard::submit_to` does).
pub type ControlTask = Box<dyn FnOnce(&Rc<Shard>) + Send>;

/// A request from one shard to another.
pub enum ShardMsg {
    /// Append a frame to a partition the receiving shard owns.
    Produce {
        topic: String,
        layout: TopicLayout,
        incarnation: u64,
        partition: u32,
        frame: ProduceFrame,
        reply: ProduceReply,
    },
    /// Read a partition the receiving shard owns (see [`super::read`]).
    Read {
        topic: String,
        layout: TopicLayout,
        incarnation: u64,
        partition: u32,
        offset: i64,
        max_bytes: usize,
        wait: Option<std::time::Duration>,
        reply: ReadReply,
    },
    /// Sent to shard 0, which owns topic creation: the topic's layout, creating it with
    /// `create` if it is new (`None`: only look it up); in cluster mode with the etcd
    /// revision of the layout it was created from (see `topics::persist`).
    GetOrCreateTopic {
        topic: String,
        create: Option<TopicLayout>,
        cluster_revision: Option<i64>,
        reply: oneshot::Sender<Result<super::catalog::Found, TopicError>>,
    },
    /// Control work to run on the receiving core (see [`super::control`]).
    Run(ControlTask),
}
