//! The data plane's errors, each with a typed cause and its [`ErrorClass`].
//!
//! A storage failure is shared (`Arc`): one failed chunk answers every frame it held.

use std::sync::Arc;

use thiserror::Error;

use crate::error::{Classify, ErrorClass};
use crate::storage::StorageError;
use crate::wire::WireError;

/// A request that could not reach the shard owning its partition, or was not answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouteError {
    #[error("shard {0} is not reachable")]
    Unreachable(usize),
    #[error("shard {0} dropped the request")]
    Dropped(usize),
    #[error("the partition's writer went away before answering")]
    WriterGone,
    #[error("shard {shard} does not own partition {partition} of '{topic}'")]
    NotOwned {
        shard: usize,
        topic: String,
        partition: u32,
    },
}

impl Classify for RouteError {
    /// Retryable: in a single broker these happen only while shards stop.
    fn class(&self) -> ErrorClass {
        ErrorClass::Unavailable
    }
}

/// A topic that could not be created or loaded.
#[derive(Debug, Clone, Error)]
pub enum TopicError {
    /// Its layout could not be made durable.
    #[error("cannot create topic '{topic}': {source}")]
    Persist {
        topic: String,
        #[source]
        source: Arc<StorageError>,
    },
    /// Shard 0, which creates topics, could not be asked.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The topic does not exist (a read, a describe or a delete never creates one).
    #[error("topic '{topic}' does not exist")]
    NotFound { topic: String },
    /// The topic does not exist and `--auto-create-topics` is off: only an explicit create
    /// (`POST /v1/topics/{name}`) makes one.
    #[error("topic '{topic}' does not exist (--auto-create-topics is off; create it first)")]
    NotCreated { topic: String },
    /// The broker already holds `--max-topics` topics.
    #[error("cannot create topic '{topic}': the broker holds {limit} topics, its --max-topics")]
    LimitReached { topic: String, limit: usize },
    /// The topic was deleted while the request was on its way (or held it, as a framed
    /// connection holds the topic its STARTUP named). Nothing of the request was stored.
    #[error("topic '{topic}' was deleted")]
    Deleted { topic: String },
    /// The topic is being deleted; it can be created again once that is done.
    #[error("topic '{topic}' is being deleted")]
    Deleting { topic: String },
    /// Its directory could not be renamed away (nothing was deleted on disk).
    #[error("cannot delete topic '{topic}': {source}")]
    Bury {
        topic: String,
        #[source]
        source: Arc<StorageError>,
    },
    /// Cluster mode: the topic's layout could not be found in etcd, created there, or opened
    /// on this broker with it.
    #[error("topic '{topic}': {source}")]
    Cluster {
        topic: String,
        #[source]
        source: Arc<crate::cluster::ClusterError>,
    },
    /// An explicit create asked for a partition count the broker cannot lay out.
    #[error("cannot create topic '{topic}' with {partitions} partitions: {why}")]
    BadPartitions {
        topic: String,
        partitions: u32,
        why: &'static str,
    },
}

impl Classify for TopicError {
    fn class(&self) -> ErrorClass {
        match self {
            TopicError::Persist { source, .. } => source.class(),
            TopicError::Route(e) => e.class(),
            TopicError::NotFound { .. }
            | TopicError::NotCreated { .. }
            | TopicError::Deleted { .. } => ErrorClass::NotFound,
            TopicError::Deleting { .. } => ErrorClass::Unavailable,
            TopicError::Bury { source, .. } => source.class(),
            TopicError::LimitReached { .. } => ErrorClass::LimitReached,
            TopicError::BadPartitions { .. } => ErrorClass::Invalid,
            TopicError::Cluster { source, .. } => source.class(),
        }
    }
}

/// Why a topic could not be described (admin API). Describing never creates a topic.
#[derive(Debug, Clone, Error)]
pub enum DescribeError {
    /// A partition's log could not be opened to read its offsets.
    #[error("storage: {0}")]
    Storage(Arc<StorageError>),
    /// A shard could not be asked.
    #[error("routing: {0}")]
    Route(#[from] RouteError),
    /// No such topic (whatever `--auto-create-topics` says), or it was deleted while it was
    /// being described.
    #[error(transparent)]
    Topic(#[from] TopicError),
}

impl Classify for DescribeError {
    fn class(&self) -> ErrorClass {
        match self {
            DescribeError::Storage(e) => e.class(),
            DescribeError::Route(e) => e.class(),
            DescribeError::Topic(e) => e.class(),
        }
    }
}

/// Why a frame was not acknowledged. Nothing of it is acknowledged; for `Storage` whether it
/// reached the disk is unknown until recovery settles it.
#[derive(Debug, Clone, Error)]
pub enum ProduceError {
    /// The partition's log failed (e.g. an fsync error) and refuses writes.
    #[error("storage: {0}")]
    Storage(Arc<StorageError>),
    /// The frame could not reach its partition's shard.
    #[error("routing: {0}")]
    Route(#[from] RouteError),
    /// The topic could not be created or loaded (its messages name the topic).
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The data filesystem has less free space than `--min-free-space`; retrying later may
    /// succeed. Nothing of the request was stored.
    #[error("disk nearly full: {free} bytes free, below --min-free-space ({min}); retry later")]
    DiskFull { free: u64, min: u64 },
    /// The broker is shutting down and takes no new writes. Nothing of the request was stored.
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// Messages given one by one (gRPC, REST) that cannot be framed as one PRODUCE body.
    #[error("cannot frame the messages: {0}")]
    Frame(WireError),
    /// A producer-compressed frame whose payload is not what it declares (nothing stored).
    #[error(transparent)]
    Compressed(#[from] crate::wire::produce_compressed::CompressedError),
    /// Cluster mode: the partition's write fence refused the frame (no lease, not its leader
    /// at the epoch it was routed with) or its acknowledgement (lost while writing).
    #[error(transparent)]
    Fenced(#[from] crate::cluster::leadership::FenceError),
}

impl From<StorageError> for ProduceError {
    fn from(e: StorageError) -> Self {
        ProduceError::Storage(Arc::new(e))
    }
}

impl Classify for ProduceError {
    fn class(&self) -> ErrorClass {
        match self {
            ProduceError::Storage(e) => e.class(),
            ProduceError::Route(e) => e.class(),
            ProduceError::Topic(e) => e.class(),
            ProduceError::DiskFull { .. } => ErrorClass::ResourceExhausted,
            ProduceError::ShuttingDown => ErrorClass::Unavailable,
            ProduceError::Frame(_) | ProduceError::Compressed(_) => ErrorClass::Invalid,
            ProduceError::Fenced(e) => e.class(),
        }
    }
}

/// Why a read failed.
#[derive(Debug, Clone, Error)]
pub enum ReadError {
    #[error(
        "offset {requested} is no longer available; the earliest available offset is {earliest}"
    )]
    OutOfRange { requested: i64, earliest: i64 },
    #[error("partition {partition} does not exist (the topic has {partitions})")]
    NoSuchPartition { partition: u32, partitions: u32 },
    #[error("storage: {0}")]
    Storage(Arc<StorageError>),
    #[error("routing: {0}")]
    Route(#[from] RouteError),
    /// The topic was deleted (a read waiting at the end of a partition ends with this).
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// Cluster mode: the partition's leader is down, unknown, or this broker is cut off.
    #[error(transparent)]
    Leader(#[from] crate::cluster::forward::ForwardError),
    /// Cluster mode: the read at the partition's leader failed.
    #[error(transparent)]
    Remote(#[from] crate::cluster::remote_read::RemoteReadError),
    /// Cluster mode: a read of this broker's own copy (never forwarded) of a partition that
    /// another broker leads.
    #[error(
        "broker {broker} does not lead partition {partition} of '{topic}' (broker {leader} \
         does); nothing was read"
    )]
    NotLeader {
        broker: u32,
        topic: String,
        partition: u32,
        leader: u32,
    },
}

impl From<StorageError> for ReadError {
    fn from(e: StorageError) -> Self {
        ReadError::Storage(Arc::new(e))
    }
}

impl Classify for ReadError {
    fn class(&self) -> ErrorClass {
        match self {
            ReadError::OutOfRange { .. } => ErrorClass::OutOfRange,
            ReadError::NoSuchPartition { .. } => ErrorClass::NotFound,
            ReadError::Storage(e) => e.class(),
            ReadError::Route(e) => e.class(),
            ReadError::Topic(e) => e.class(),
            ReadError::Leader(e) => e.class(),
            ReadError::Remote(e) => e.class(),
            ReadError::NotLeader { .. } => ErrorClass::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_failure_keeps_its_class_through_every_layer() {
        let io = StorageError::Failed {
            reason: "fdatasync: EIO".into(),
            disk_full: false,
        };
        let p = ProduceError::from(io);
        assert_eq!(p.class(), ErrorClass::Storage);
        let ProduceError::Storage(shared) = p else {
            panic!("{p:?}")
        };
        assert_eq!(ReadError::Storage(shared).class(), ErrorClass::Storage);
        let t = TopicError::Route(RouteError::Unreachable(0));
        assert_eq!(ProduceError::from(t).class(), ErrorClass::Unavailable);
        let full = ProduceError::DiskFull { free: 1, min: 2 };
        assert_eq!(full.class(), ErrorClass::ResourceExhausted);
        assert!(full.to_string().contains("--min-free-space"));
        let many = TopicError::LimitReached {
            topic: "t".into(),
            limit: 3,
        };
        assert_eq!(ProduceError::from(many).class(), ErrorClass::LimitReached);
        let missing = TopicError::NotFound { topic: "t".into() };
        assert_eq!(ProduceError::from(missing).class(), ErrorClass::NotFound);
    }

    #[test]
    fn a_full_disk_is_resource_exhausted_not_a_storage_failure() {
        let enospc = StorageError::Io {
            op: "write",
            path: "p".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(enospc.class(), ErrorClass::ResourceExhausted);
        let failed = StorageError::Failed {
            reason: "write: ENOSPC".into(),
            disk_full: true,
        };
        let p = ProduceError::from(failed);
        assert_eq!(p.class(), ErrorClass::ResourceExhausted);
        let eio = StorageError::Io {
            op: "write",
            path: "p".into(),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        };
        assert_eq!(eio.class(), ErrorClass::Storage);
    }
}
