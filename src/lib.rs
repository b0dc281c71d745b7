//! shardlog: a thread-per-core log-streaming broker on io_uring.
//!
//! A map of the crate, in the order a request travels through it:
//!
//! - [`config`]: flags, TOML file and `SHARDLOG_*` environment, validated into a [`config::Config`].
//! - [`rt`]: the only code that names the runtime (glommio): the pinned executor pool, the
//!   channel mesh between shards, timers, and DMA (O_DIRECT) files.
//! - [`wire`]: pure codecs for the framed protocol, poll responses and records; no I/O.
//! - [`ring`]: Murmur3 tokens, topic layouts and partition names, key → partition → shard.
//! - [`storage`]: the on-disk format: chunks, segments, indexes, one [`storage::PartitionLog`]
//!   per partition (append, read, recover, retain), file I/O behind a small trait.
//! - [`shard`]: per-shard state: the partitions a shard owns, the group-commit writer, and the
//!   routing of frames to the shard that owns their partition.
//! - [`consumer`]: consumer groups (coordinated by shard 0), durable committed offsets, and
//!   polls assembled from stored chunks without re-encoding.
//! - [`server`]: one module per protocol: the framed TCP server, the HTTP port (HTTP/1.1 and
//!   HTTP/2 told apart by the connection preface) and the gRPC layer and services over h2.
//! - [`proto`]: prost message types generated from `proto/`, and their descriptor set.
//! - [`metrics`]: shard-local counters and histograms, gathered and encoded on a scrape.
//! - [`broker`]: starts the shards and the listeners from a `Config`.

pub mod broker;
pub mod config;
pub mod consumer;
pub mod error;
pub mod metrics;
pub mod proto;
pub mod ring;
pub mod rt;
pub mod server;
pub mod shard;
pub mod storage;
pub mod wire;
