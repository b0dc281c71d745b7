//! `grpc-produce` and `grpc-consume`.

use std::time::Duration;

use clap::Args;

use crate::payload::{PayloadKind, PayloadSpec, DEFAULT_SEED};
use crate::run::{KeyOrder, Stop};
use crate::workload::grpc_consume::GrpcConsumeConfig;
use crate::workload::grpc_produce::{GrpcProduceConfig, Routing};

use super::common::{parse_duration, Common};

#[derive(Debug, Args)]
pub struct GrpcProduceArgs {
    #[command(flatten)]
    pub common: Common,
    /// HTTP/2 connections to the broker's HTTP port (`--http`).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub connections: usize,
    /// Concurrent Produce calls per connection (each an HTTP/2 stream; at most 256).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub streams: usize,
    /// Values streamed in each Produce call before it half-closes and awaits its response.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub values_per_call: usize,
    /// Size of each value in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub message_size: usize,
    /// Share of random bytes in each value, 0.0 to 1.0.
    #[arg(long, value_name = "0.0..1.0", default_value_t = 0.5)]
    pub randomness: f64,
    /// What the messages look like: JSON events, plain-text log lines, or random bytes.
    #[arg(long, value_enum, default_value = "json")]
    pub payload: PayloadKind,
    /// `partition-key` metadata `key-0 .. key-{N-1}`, one key per call; 0: no key.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keys: usize,
    /// How each call's key is chosen.
    #[arg(long, value_enum, default_value = "round-robin")]
    pub key_order: KeyOrder,
    /// `partition` metadata: every call to this partition (instead of --keys).
    #[arg(long, value_name = "N", conflicts_with = "keys")]
    pub partition: Option<u32>,
    /// `partition` metadata `call % N`: calls spread round-robin over partitions 0..N-1, as
    /// framed keyless connections spread over their shard's partitions; 0: off.
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with_all = ["keys", "partition"])]
    pub spread: u32,
    /// Seed of the payload generator.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct GrpcConsumeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Partitions to read, one Consume stream (and connection) each, e.g. `0,1,2`.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "0")]
    pub partitions: Vec<u32>,
    /// The offset every stream starts from.
    #[arg(long, value_name = "OFFSET", default_value_t = 0)]
    pub from_offset: u64,
    /// End a stream once no record came for this long, e.g. `2s`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub until_idle: Option<Duration>,
}

impl GrpcProduceArgs {
    pub fn config(&self) -> GrpcProduceConfig {
        let c = &self.common;
        GrpcProduceConfig {
            addr: c.http.clone(),
            topic: c.topic.clone(),
            connections: self.connections,
            streams: self.streams,
            values_per_call: self.values_per_call,
            payload: PayloadSpec {
                size: self.message_size,
                randomness: self.randomness,
                seed: self.seed,
                kind: self.payload,
            },
            routing: match (self.partition, self.keys) {
                (Some(p), _) => Routing::Partition(p),
                (None, 0) if self.spread > 0 => Routing::Spread(self.spread),
                (None, 0) => Routing::Default,
                (None, keys) => Routing::Keys {
                    keys,
                    order: self.key_order,
                },
            },
            stop: Stop::from_flags(c.messages, c.duration),
            cpus: c.cpus.clone().map(|l| l.0),
            warmup: c.warmup,
            progress: !c.quiet,
            response_timeout: c.response_timeout,
            ..GrpcProduceConfig::default()
        }
    }
}

impl GrpcConsumeArgs {
    pub fn config(&self) -> GrpcConsumeConfig {
        let c = &self.common;
        GrpcConsumeConfig {
            addr: c.http.clone(),
            topic: c.topic.clone(),
            partitions: self.partitions.clone(),
            from_offset: self.from_offset,
            messages: c.messages,
            duration: c.duration,
            until_idle: self.until_idle,
            cpus: c.cpus.clone().map(|l| l.0),
            warmup: c.warmup,
            progress: !c.quiet,
            response_timeout: c.response_timeout,
            ..GrpcConsumeConfig::default()
        }
    }
}
