//! shardlog-perf: the load harness for shardlog.
//!
//! - [`cli`]: the command line (one subcommand per workload, shared flags flattened in).
//! - [`payload`]: JSON-like messages with a tunable random share, prebuilt once and cycled.
//! - [`framed`]: a small client connection for the framed protocol, on the broker's own codecs.
//! - [`stats`]: latency histograms per connection, merged; the progress line; the report.
//! - [`produce`]: the framed produce workload (closed or open loop).
//! - [`verify`]: the ledger of acknowledged frames, for reading them back.
//!
//! A new workload (gRPC produce, consume, REST) is a module with a config and a `run` that
//! returns a [`stats::Report`], plus a variant of [`cli::Command`].

pub mod cli;
pub mod framed;
pub mod payload;
pub mod produce;
pub mod stats;
pub mod verify;
