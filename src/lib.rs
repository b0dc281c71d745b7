//! shardlog: a thread-per-core log-streaming broker on io_uring.
//!
//! A map of the crate, in the order a request travels through it:
//!
//! - [`config`]: every setting declared once (flag, `SHARDLOG_*` environment, TOML key,
//!   default, range, help), validated into a [`config::Config`].
//! - [`rt`]: the only code that names the runtime (glommio; compio with the `rt-compio`
//!   feature): the pinned executor pool, the channel mesh between shards, timers, and the
//!   real file system (`rt::fs::RealFs`: DMA segment files, buffered files, directories on
//!   the blocking pool).
//! - [`server`]: one module per protocol: the framed TCP server, the HTTP port (HTTP/1.1 and
//!   HTTP/2 told apart by the connection preface) and the gRPC layer and services over h2;
//!   each answers failures with one table of [`error::ErrorClass`] → code or status.
//! - [`wire`]: pure codecs for the framed protocol, poll responses and records; no I/O. The
//!   `shardlog-wire` crate (`wire/`), re-exported, so clients and the harness share it.
//! - [`proto`]: prost message types generated from `proto/`, and their descriptor set.
//! - [`consumer`]: the control plane of consumers: groups on a coordinator (shard 0), durable
//!   committed offsets, and polls assembled from stored chunks without re-encoding.
//! - [`shard`]: the data plane: the partitions a core owns, the group-commit writer, reads,
//!   the mesh's typed messages, and `Shard::submit_to` for control work on another core.
//! - [`ring`]: which shard owns a partition; Murmur3 tokens, topic layouts and partition names
//!   (key → partition) come from the wire crate.
//! - [`storage`]: the on-disk format: chunks, segments, indexes, one [`storage::PartitionLog`]
//!   per partition (append, read, recover, retain), and every file operation of the broker
//!   behind one trait (`storage::fs::FileSystem`; `storage::fs::BrokerFs` is the one the
//!   broker passes around).
//! - [`stats`]: the counters and histograms each core keeps on the hot path.
//! - [`metrics`]: a scrape: every core's stats gathered and encoded for Prometheus.
//! - [`error`]: the classes every layer's errors fall into, which transports map to answers.
//! - [`cluster`]: cluster mode: membership, the controller, topic layouts and partition
//!   leaders in etcd, on a thread of its own beside the shards (absent on a single host).
//! - [`broker`]: starts the cores (shard, then control-plane state) and the listeners; a
//!   panic anywhere ends the process.
//! - [`failpoint`]: named places where a test can make a running broker misbehave, the
//!   `fs.*` ones under every file operation.
//! - `fuzzing` (hidden): the bodies of the fuzz targets in `fuzz/`, which `cargo test`
//!   also runs over the checked-in corpus.

pub mod broker;
pub mod cluster;
pub mod config;
pub mod consumer;
pub mod error;
pub mod failpoint;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod proto;
pub mod ring;
pub mod rt;
pub mod server;
pub mod shard;
pub mod stats;
pub mod storage;
pub use shardlog_wire as wire;
