//! Consumers: groups and assignment, durable committed offsets, and polls that hand out
//! stored chunks without re-encoding them (see `docs/consumers.md`).
//!
//! All group state lives on one coordinator, on shard 0, reached with `Shard::submit_to`; consumer
//! operations are rare next to produces. The data of a poll never detours through it: the
//! coordinator answers with the partitions and offsets to read, the shard serving the client
//! reads them itself (in parallel, each from its owning shard), assembles the response, and
//! tells the coordinator which positions it returned so the next poll commits them.
//!
//! - [`assign`]: spreading a group's partitions over its consumers (pure).
//! - [`group`]: membership, positions and commits (pure state machine).
//! - [`offsets`]: the durable offsets files.
//! - [`poll`]: assembling a poll response from stored chunks (pure).
//! - [`coordinator`]: the coordinator on shard 0, reached with `Shard::submit_to`.
//! - [`fetch`]: reading a poll's partitions on the serving shard, with long-poll waiting.
//! - [`api`]: the operations transports call (register, poll, commit, goodbye).
//! - [`coordinated`]: cluster mode: the operations passed to the group's coordinator broker.
//! - [`describe`]: groups for the admin API: members, assignments, committed offsets, lag.
//! - [`topic_delete`]: deleting a topic: on every shard, then in every group.

pub mod api;
pub mod assign;
pub mod coordinated;
pub mod coordinator;
pub mod describe;
pub mod fetch;
pub mod group;
pub mod offsets;
pub mod poll;
pub mod topic_delete;

use std::sync::Arc;

use thiserror::Error;

use crate::error::{Classify, ErrorClass};
use crate::shard::{ReadError, RouteError, TopicError};
use crate::storage::StorageError;

pub use coordinator::Coordinator;

/// Why a consumer operation failed.
#[derive(Debug, Clone, Error)]
pub enum ConsumerError {
    /// The consumer id is not registered (never was, said goodbye, or timed out).
    #[error("consumer '{0}' is not registered (register it first; consumers silent for longer than the consumer timeout are dropped)")]
    UnknownConsumer(String),
    /// A topic could not be created or loaded (its messages name the topic).
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// Reading a partition failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The coordinator's shard could not be reached.
    #[error("routing: {0}")]
    Route(#[from] RouteError),
    /// Retention kept removing the segments a poll was about to read.
    #[error("partition {partition} of '{topic}' kept moving its start offset; retry")]
    StartMoving { topic: String, partition: u32 },
    /// Committed offsets could not be made durable.
    #[error("offsets: {0}")]
    Offsets(Arc<StorageError>),
    /// Cluster mode: committed offsets could not be read from or written to etcd.
    #[error("offsets in the cluster: {0}")]
    Cluster(Arc<crate::cluster::ClusterError>),
    /// The broker already has `--max-groups` groups with live members.
    #[error("the broker already has {max} consumer groups with live members (--max-groups); retry once one has emptied")]
    TooManyGroups { max: usize },
    /// The group already has `--max-consumers-per-group` live members.
    #[error("group '{group}' already has {max} live consumers (--max-consumers-per-group); retry once one has left")]
    TooManyConsumers { group: String, max: usize },
    /// The broker already has `--max-consumers` live consumers.
    #[error(
        "the broker already has {max} live consumers (--max-consumers); retry once one has left"
    )]
    TooManyConsumersInAll { max: usize },
    /// A REGISTER named more topics than `--max-topics-per-consumer`.
    #[error("a consumer may subscribe to at most {max} topics (--max-topics-per-consumer); {count} were named")]
    TooManyTopics { count: usize, max: usize },
    /// An explicit commit named a partition not assigned to the consumer (it may have moved
    /// in a rebalance: poll again).
    #[error("partition {partition} of '{topic}' is not assigned to consumer '{consumer}' (a rebalance may have moved it; poll again)")]
    NotAssigned {
        consumer: String,
        topic: String,
        partition: u32,
    },
    /// An explicit commit named an offset past what the consumer was given.
    #[error("offset {offset} of partition {partition} of '{topic}' is past what consumer '{consumer}' was given ({given})")]
    PastDelivered {
        consumer: String,
        topic: String,
        partition: u32,
        offset: i64,
        given: i64,
    },
    /// An explicit commit named a partition that does not exist (a token, range index or
    /// generation that is not the topic's).
    #[error("'{topic}' has no partition (token {token}, range {range_index}, generation {gen})")]
    NoSuchPartition {
        topic: String,
        token: i64,
        range_index: u8,
        gen: u32,
    },
    /// A reset of a group that has live members.
    #[error("group '{group}' has {members} live members; offsets are reset only while a group has none (stop its consumers first)")]
    GroupActive { group: String, members: usize },
    /// The admin API named a group with neither members nor committed offsets.
    #[error("no consumer group '{0}' (no members, no committed offsets)")]
    NoSuchGroup(String),
    /// Cluster mode: the group's coordinator broker could not be asked, or refused.
    #[error(transparent)]
    Coordination(Box<crate::cluster::group_link::GroupLinkError>),
    /// Cluster mode: the group's coordinator changed since the consumer registered (a broker
    /// went down or came up); the consumer registers again.
    #[error("consumer '{consumer}' is not registered at the coordinator of group '{group}' (it moved to another broker); register again")]
    CoordinatorMoved { consumer: String, group: String },
    /// The shard that should host the coordinator has none (a start-up bug).
    #[error("shard {0} hosts no consumer coordinator")]
    NoCoordinator(usize),
}

impl Classify for ConsumerError {
    fn class(&self) -> ErrorClass {
        match self {
            ConsumerError::UnknownConsumer(_) | ConsumerError::CoordinatorMoved { .. } => {
                ErrorClass::UnknownConsumer
            }
            ConsumerError::Coordination(e) => e.class(),
            ConsumerError::Topic(e) => e.class(),
            ConsumerError::Read(e) => e.class(),
            ConsumerError::Route(e) => e.class(),
            ConsumerError::StartMoving { .. } | ConsumerError::GroupActive { .. } => {
                ErrorClass::Unavailable
            }
            ConsumerError::Offsets(e) => e.class(),
            ConsumerError::Cluster(e) => e.class(),
            ConsumerError::NoCoordinator(_) => ErrorClass::Internal,
            ConsumerError::NotAssigned { .. } | ConsumerError::PastDelivered { .. } => {
                ErrorClass::Invalid
            }
            ConsumerError::NoSuchPartition { .. } | ConsumerError::NoSuchGroup(_) => {
                ErrorClass::NotFound
            }
            ConsumerError::TooManyGroups { .. }
            | ConsumerError::TooManyConsumers { .. }
            | ConsumerError::TooManyConsumersInAll { .. }
            | ConsumerError::TooManyTopics { .. } => ErrorClass::LimitReached,
        }
    }
}
