//! `consume` and `e2e`: the consumers' flags (shared with `e2e`), and `e2e`'s both sets.

use clap::Args;

use crate::client::session::{Start, Transport};
use crate::workload::consume::ConsumeConfig;

use super::common::{fresh_group, Common};
use super::produce::ProduceFlags;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub flags: ConsumeFlags,
}

/// The consumers' flags (`consume` and `e2e`).
#[derive(Debug, Args)]
pub struct ConsumeFlags {
    /// How consumers reach the broker: the framed protocol (`--framed`) or the HTTP consumer
    /// API on the HTTP port (`--http`, HTTP/1.1 keep-alive).
    #[arg(long, value_enum, default_value = "framed")]
    pub transport: Transport,
    /// Consumers, each on its own connection and thread, ids `{group}-c0 .. {group}-c{N-1}`.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub consumers: usize,
    /// Consumer group [default: `perf` for consume, a fresh `perf-e2e-...` for e2e].
    #[arg(long)]
    pub group: Option<String>,
    /// Where a group new to the topic starts [default: earliest for consume, latest for e2e].
    #[arg(long, value_enum)]
    pub start: Option<Start>,
    /// Long-poll wait of each POLL in ms (0: answer at once).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub max_wait_ms: u32,
    /// Do not decompress payloads: count bytes only (MB/s is then of uncompressed chunk bytes,
    /// records' 12-byte headers included, read from the zstd frame headers; messages are not
    /// counted).
    #[arg(long)]
    pub no_decode: bool,
    /// Stop (each consumer) when two polls in a row bring nothing.
    #[arg(long)]
    pub until_empty: bool,
}

#[derive(Debug, Args)]
pub struct E2eArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub produce: ProduceFlags,
    #[command(flatten)]
    pub consume: ConsumeFlags,
}

impl ConsumeFlags {
    /// The consumers' configuration; `e2e` picks its own group and start defaults.
    pub fn config(&self, c: &Common, e2e: bool) -> ConsumeConfig {
        ConsumeConfig {
            transport: self.transport,
            addr: match self.transport {
                Transport::Framed => c.framed.clone(),
                Transport::Http => c.http.clone(),
            },
            topic: c.topic.clone(),
            group: self.group.clone().unwrap_or_else(|| {
                if e2e {
                    fresh_group("perf-e2e")
                } else {
                    "perf".into()
                }
            }),
            consumers: self.consumers,
            start: self
                .start
                .unwrap_or(if e2e { Start::Latest } else { Start::Earliest }),
            max_wait_ms: self.max_wait_ms,
            decode: !self.no_decode,
            messages: c.messages,
            duration: c.duration,
            until_empty: self.until_empty,
            cpus: c.cpus.clone().map(|l| l.0),
            warmup: c.warmup,
            progress: !c.quiet,
            response_timeout: c.response_timeout,
            ..ConsumeConfig::default()
        }
    }
}
