//! Metrics: a scrape gathers every core's statistics ([`crate::stats`]) and encodes them in
//! the Prometheus text format (see `docs/metrics.md` for the list).
//!
//! A scrape ([`gather()`]) takes every shard's plain-data snapshot with `Shard::submit_to`
//! (gauges such as segments on disk, buffered bytes and consumer lag are read at that moment),
//! merges them and encodes the text format with `prometheus-client`.
//!
//! - [`mod@gather`]: collecting snapshots from the shards, and consumer lag from the coordinator.
//! - [`mod@encode`]: the text exposition, through `prometheus-client`'s collector API.

pub mod encode;
pub mod gather;

pub use encode::{encode, encode_openmetrics, CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE};
pub use gather::{gather, gather_snapshot, local_snapshot};
