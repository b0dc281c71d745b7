//! shardlog-perf: the load harness for shardlog.
//!
//! - [`cli`]: the command line (one subcommand per workload, shared flags flattened in).
//! - [`payload`]: JSON-like messages with a tunable random share, prebuilt once and cycled.
//! - [`framed`]: a small client connection for the framed protocol, on the broker's own codecs.
//! - [`stats`]: latency histograms per connection, merged; the progress line; the report.
//! - [`produce`]: the framed produce workload (closed or open loop).
//! - [`consume`]: the consume workload (consumers in a group polling), behind a transport trait.
//! - [`e2e`]: produce while consuming; end-to-end latency from the records' timestamps.
//! - [`limits`]: the machine's own yardsticks (one-core zstd, fdatasync, O_DIRECT bandwidth);
//!   [`fsync_mix`]: the disk under a broker's write pattern.
//! - [`verify`]: the ledger of acknowledged frames, message tags, and the read-back check.
//!
//! A new workload (gRPC produce, consume, REST) is a module with a config and a `run` that
//! returns a [`stats::Report`], plus a variant of [`cli::Command`].

pub mod cli;
pub mod consume;
mod direct;
pub mod e2e;
pub mod framed;
pub mod fsync_mix;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod payload;
pub mod produce;
pub mod stats;
pub mod verify;
