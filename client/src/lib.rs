//! An async client for [shardlog](https://example.invalid/shardlog)'s framed protocol, on tokio.
//!
//! - [`Producer`] ([`producer`]): batches messages per partition, pipelines frames on a few
//!   connections, resolves a [`Delivery`] per message once the broker stored it durably;
//!   retries what may be retried (at-least-once), bounds unacknowledged bytes.
//! - [`Consumer`] ([`consumer`]): a consumer-group member: register, poll, commit, leave.
//! - [`PartitionReader`] ([`reader`]): one partition from an offset or a time, without a group
//!   (FETCH).
//! - [`Admin`] ([`admin`]): the admin API on the broker's HTTP port: list, describe and
//!   create topics, groups, the offset for a time (`http`, private: one HTTP/1.1 exchange).
//! - [`ClusterMap`] ([`cluster`]): `GET /v1/cluster` of a broker in cluster mode; a producer
//!   with an admin address routes each batch to its partition's leader by it.
//! - [`ClientError`] ([`error`]): the one error type; [`ClientError::is_retryable`].
//! - [`connection`]: one socket as frames; [`mux`]: many requests in flight on it, each
//!   frame answered on its own stream id (for programs that build their own frames);
//!   `conns` (private): a producer's connections per topic; `slot_order` (private): the
//!   order in which a connection slot's batches are sent again after a failure.
//!
//! The codecs are the broker's own, from the `shardlog-wire` crate.
//!
//! ```no_run
//! use shardlog_client::{Consumer, ConsumerConfig, Producer, ProducerConfig};
//!
//! # async fn run() -> Result<(), shardlog_client::ClientError> {
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:9254"))?;
//! let delivery = producer.send("orders", Some(b"customer-42"), "order #1").await?;
//! delivery.await?; // stored durably
//!
//! let mut consumer =
//!     Consumer::join(ConsumerConfig::new("127.0.0.1:9254", "billing", "billing-1", &["orders"]))
//!         .await?;
//! for record in consumer.poll().await? {
//!     println!("{} @{}: {:?}", record.topic, record.offset, record.value);
//! }
//! consumer.close().await?; // commits what was polled, leaves the group
//! # Ok(())
//! # }
//! ```

pub mod admin;
mod batch;
pub mod cluster;
pub mod connection;
mod conns;
pub mod consumer;
pub mod error;
mod http;
pub mod mux;
pub mod producer;
pub mod reader;
mod slot_order;

pub use admin::{
    Admin, Created, Deleted, GroupDescription, GroupMember, GroupPartition, GroupSummary,
    PartitionDescription, ResetTo, TimeOffset, TopicDescription, TopicPartition, TopicSummary,
};
pub use cluster::{ClusterBroker, ClusterMap, ClusterPartition, ClusterTopic};
pub use consumer::{Consumer, ConsumerConfig, Record, StartPolicy};
pub use error::ClientError;
pub use producer::{Delivery, Producer, ProducerConfig};
pub use reader::{PartitionReader, ReaderConfig};
pub use shardlog_wire as wire;

/// The examples of `docs/clients.md`, compiled as doc tests so the guide cannot drift from the
/// library.
#[doc = include_str!("../../docs/clients.md")]
#[cfg(doctest)]
pub struct ClientsGuide;
