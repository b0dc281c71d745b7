//! shardlog-perf: the load harness for shardlog. It reads like the broker: run control shared by
//! every workload, one module per workload, clients on the broker's own codecs.
//!
//! - [`cli`]: the command line, one file per subcommand's flags; every broker workload is driven
//!   the same way through [`run::Workload`].
//! - [`run`]: run control: the [`run::Workload`] contract, the run's shared state (failure,
//!   Ctrl-C, deadline), `--cpus`, pacing (stop, keys, open-loop schedule), the progress line
//!   and the report.
//! - [`workload`]: `produce`, `consume`, `e2e`, `grpc-produce`, `grpc-consume`, `limits`,
//!   `chaos`.
//! - [`client`]: the framed protocol, PRODUCE frames from prebuilt regions, consumer sessions
//!   (framed and HTTP), poll responses, gRPC.
//! - [`payload`]: JSON-like messages with a tunable random share, prebuilt once and cycled.
//! - [`verify`]: the ledger of acknowledged frames, message tags, and the read-back check.
//!
//! A new workload is a module in [`workload`] with a config implementing [`run::Workload`]
//! (its run returns a [`run::Report`]), plus a variant of [`cli::Command`].

pub mod cli;
pub mod client;
pub mod payload;
pub mod run;
pub mod verify;
pub mod workload;
