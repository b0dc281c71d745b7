//! Messages that travel between shards over the mesh. Everything here is `Send`; replies go
//! back in a one-shot carried by the request.

use bytes::Bytes;
use futures_channel::oneshot;

use crate::ring::TopicLayout;
use crate::wire::produce::ProduceLayout;

use super::ProduceError;

/// A validated PRODUCE frame on its way to its partition: the frame body (a slice of the
/// connection's read buffer, never copied) and where its parts are.
#[derive(Debug, Clone)]
pub struct ProduceFrame {
    pub body: Bytes,
    pub layout: ProduceLayout,
    /// When the broker read the frame (μs since the epoch): the records' timestamp when the
    /// frame carries none.
    pub received_us: i64,
}

impl ProduceFrame {
    /// The timestamp stored with this frame's records.
    pub fn timestamp_us(&self) -> i64 {
        self.layout.timestamp.unwrap_or(self.received_us)
    }

    pub fn record_count(&self) -> u32 {
        self.layout.count
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

/// A request from one shard to another.
pub enum ShardMsg {
    /// Append a frame to a partition the receiving shard owns.
    Produce {
        topic: String,
        layout: TopicLayout,
        partition: u32,
        frame: ProduceFrame,
        reply: ProduceReply,
    },
    /// Read a partition the receiving shard owns (see [`super::read`]).
    Read {
        topic: String,
        layout: TopicLayout,
        partition: u32,
        offset: i64,
        max_bytes: usize,
        wait: Option<std::time::Duration>,
        reply: super::read::ReadReply,
    },
    /// Sent to shard 0, which hosts the consumer-group coordinator.
    Consumer(crate::consumer::msg::CoordinatorRequest),
    /// Sent to shard 0, which owns topic creation: the topic's layout, creating it if new.
    GetOrCreateTopic {
        topic: String,
        reply: oneshot::Sender<Result<TopicLayout, String>>,
    },
    /// A connection another shard accepted, for this shard to serve (see
    /// [`crate::server::balance`]).
    Adopt(crate::server::balance::Handover),
    /// A scrape: the receiving shard's metrics (see [`crate::metrics`]).
    Metrics {
        reply: oneshot::Sender<crate::metrics::MetricsSnapshot>,
    },
}
