//! Consumers: groups and assignment, durable committed offsets, and polls that hand out
//! stored chunks without re-encoding them (see `docs/consumers.md`).
//!
//! All group state lives on one coordinator, shard 0, reached over the mesh; consumer
//! operations are rare next to produces. The data of a poll never detours through it: the
//! coordinator answers with the partitions and offsets to read, the shard serving the client
//! reads them itself (in parallel, each from its owning shard), assembles the response, and
//! tells the coordinator which positions it returned so the next poll commits them.
//!
//! - [`assign`]: spreading a group's partitions over its consumers (pure).
//! - [`group`]: membership, positions and commits (pure state machine).
//! - [`offsets`]: the durable offsets files.
//! - [`poll`]: assembling a poll response from stored chunks (pure).
//! - [`msg`]: requests to the coordinator.
//! - [`coordinator`]: the coordinator task on shard 0.
//! - [`fetch`]: reading a poll's partitions on the serving shard, with long-poll waiting.
//! - [`api`]: the operations transports call (register, poll, commit, goodbye).

pub mod api;
pub mod assign;
pub mod coordinator;
pub mod fetch;
pub mod group;
pub mod msg;
pub mod offsets;
pub mod poll;

use thiserror::Error;

/// Why a consumer operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConsumerError {
    /// The consumer id is not registered (never was, said goodbye, or timed out).
    #[error("consumer '{0}' is not registered (register it first; consumers silent for longer than the consumer timeout are dropped)")]
    UnknownConsumer(String),
    /// A bad request (e.g. an invalid topic name).
    #[error("{0}")]
    Invalid(String),
    /// A topic could not be created or loaded.
    #[error("topic: {0}")]
    Topic(String),
    /// Reading a partition failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The coordinator or a partition's shard could not be reached.
    #[error("routing: {0}")]
    Routing(String),
    /// Committed offsets could not be made durable.
    #[error("offsets: {0}")]
    Offsets(String),
}
