//! One module per workload; each broker workload is a [`crate::run::Workload`].
//!
//! - [`produce`]: framed PRODUCE frames, closed or open loop, with an optional ledger for
//!   `--verify`.
//! - [`consume`]: consumers in a group polling, over the framed protocol or HTTP.
//! - [`e2e`]: produce while consuming; end-to-end latency from the records' timestamps.
//! - [`grpc_produce`], [`grpc_consume`]: `atomix.log.LogService` Produce calls and Consume
//!   streams.
//! - [`limits`]: no broker: the machine's own yardsticks (one-core zstd, fdatasync, O_DIRECT
//!   bandwidth, the disk under a broker's write pattern).
//! - [`chaos`]: starts the broker itself and kills it (SIGKILL, SIGSTOP) under load in a
//!   loop, checking after every restart that nothing acknowledged was lost or duplicated.

pub mod chaos;
pub mod consume;
pub mod e2e;
pub mod grpc_consume;
pub mod grpc_produce;
pub mod limits;
pub mod produce;
