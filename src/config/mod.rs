//! Configuration: command-line flags, each also settable by a `SHARDLOG_*` environment variable
//! and by a key of the same name in a TOML file (`--config`). Precedence: flag, then
//! environment, then file, then the default. Every value is validated here, so the rest of the
//! broker can trust a [`Config`]; a bad value is refused with one line naming the flag.
//!
//! Each setting is declared once, in the `settings!` below: its field, type, kind (how it is
//! parsed, and its range), value name, default, help and, where they differ from the field's
//! name, its flag. The flags, `--help`, the environment variables, the file's keys, the
//! validation, [`Config::default`], `docs/operations.md`'s table and `shardlog.example.toml`
//! all come from it (the last two are checked by `cargo test`; `SHARDLOG_BLESS=1 cargo test
//! --lib config` rewrites them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use thiserror::Error;

mod cluster_kinds;
mod docs;
mod kinds;
mod table;

pub use cluster_kinds::CpuPlacement;
use cluster_kinds::{BrokerId, ClusterName, Endpoints, HostPort};
pub use docs::{example_file, markdown_table};
pub use kinds::{parse_size, BadValue};
use kinds::{Addr, Bool, Dur, Int, Kind, OffIsZero, Opt, Size, Text};
use table::Example::{Hint, Set};
pub use table::{command, Example, Setting};
use table::{computed, setting, settings, DefaultValue};

/// How an append is made durable before it is acknowledged (the storage layer's setting).
pub use crate::storage::Durability;
use crate::storage::LogConfig;

settings! {
    /// Directory for segments, indexes, topic layouts and consumer offsets.
    data_dir: PathBuf as kinds::Path, "PATH", default "./data",
        example Set("/var/lib/shardlog");
    /// Address for framed-TCP producers and consumers.
    framed_listen: SocketAddr as Addr, "ADDR", default "0.0.0.0:9254";
    /// Address for HTTP/1.1 and HTTP/2: REST, gRPC, `/status`, `/metrics`.
    http_listen: SocketAddr as Addr, "ADDR", default "0.0.0.0:9252";
    /// Number of shards (threads), one pinned core each.
    shards: usize as Int<1, 1024>, "N",
        default computed("the CPUs this process may run on", || available_cpus().to_string()),
        example Hint("8");
    /// CPUs the shards are pinned to: `all` (shard i on the i-th CPU this process may run
    /// on), `none` (no pinning: several brokers on one host), or a list like `0,2,4-7`.
    cpus: CpuPlacement as CpuPlacement, "LIST", default "all", example Hint("none");
    /// CPUs for each shard's helper threads: the kernel's io_uring workers (creating segment
    /// files, fdatasync, what io_uring cannot issue inline) and glommio's blocking pool.
    /// `none`: not steered (io_uring workers where the kernel puts them, in practice on the
    /// shard's core, preempting it; the blocking pool on the shard's core); `all`; or a list,
    /// e.g. a core kept for the OS and the disk's interrupts (docs/operations.md).
    io_worker_cpus: CpuPlacement as CpuPlacement, "LIST", default "none", example Hint("0");
    /// Partitions per shard for new topics (a topic gets `shards × this`, fixed when it is
    /// created).
    ranges_per_shard: u32 as Int<1, 256>, "N", default "4";
    /// Topics the broker holds, at most; creating one more is refused (framed ERROR 10, HTTP
    /// 429, gRPC RESOURCE_EXHAUSTED). Topics found on disk at start count but are always
    /// served.
    // Each topic costs every shard a little memory and, once used, open files: the bound
    // keeps a client that names topics without end from exhausting either.
    max_topics: usize as Int<1, 1_000_000>, "N", default "10000";
    /// Whether naming an unknown topic (produce, register, gRPC, REST) creates it; `false`:
    /// it is not found, and only `POST /v1/topics/{name}` creates one.
    auto_create_topics: bool as Bool, "BOOL", default "true";
    /// Per shard: descriptors the partitions' files may hold (segments, the index being
    /// written); past it the least recently used idle partitions are closed, and reopen on
    /// their next use.
    // Partitions are opened on first use, so the descriptors a broker needs follow this bound,
    // not the number of topics it has ever served. A single partition in use is never closed,
    // so one with more segments than this passes it.
    max_open_files: usize as Int<16, 1_000_000>, "N", default "1024";
    /// Roll a segment before a write would take it past this size, e.g. 1GiB, 64MiB.
    segment_size: u64 as Size<{ 64 << 10 }, { 1 << 40 }>, "BYTES", default "1GiB";
    /// Delete closed segments whose last write is older than this, e.g. 7d, 12h; `0` or `off`
    /// keeps them.
    retention_age: Option<Duration> as Opt<Dur>, "DURATION", default "7d";
    /// Per partition: delete the oldest closed segments while all of them together exceed
    /// this, e.g. 10GiB; `0` or `off` = no limit.
    retention_bytes: Option<u64> as Opt<Size<{ 1 << 20 }, { u64::MAX }>>, "BYTES",
        default "off", example Hint("100GiB");
    /// `fsync`: fdatasync before acknowledging; `write`: acknowledge after the O_DIRECT write.
    durability: Durability as Durability, "MODE", default "fsync";
    /// Largest accepted frame body; also the REST body limit.
    max_frame_size: u32 as Size<{ 1 << 10 }, { 256 << 20 }>, "BYTES", default "4MiB";
    /// Largest accepted gRPC message, request or response.
    grpc_max_message_size: u32 as Size<{ 1 << 10 }, { 256 << 20 }>, "BYTES", default "4MiB";
    /// zstd compression level for chunks (see docs/benchmarks.md).
    zstd_level: i32 as Int<{ -7 }, 22>, "LEVEL", default "1";
    /// Adaptive level: while a shard's core is saturated and compressing, its chunks are
    /// compressed at lower levels, down to this one, and back up to --zstd-level when there is
    /// room (as `zstd --adapt`); `off`: always --zstd-level.
    zstd_min_level: Option<i64> as Opt<Int<{ -7 }, 22>>, "LEVEL", default "off",
        example Hint("-3");
    /// Per shard: bytes of frames read but not yet acknowledged before the shard's
    /// connections stop reading (TCP backpressure); at least --max-frame-size.
    shard_buffer_bytes: u64 as Size<{ 1 << 20 }, { 1 << 40 }>, "BYTES", default "64MiB",
        flag "shard-buffer";
    /// Drop a consumer silent for this long and reassign its partitions, e.g. 2m, 30s.
    consumer_timeout: Duration as Dur, "DURATION", default "2m";
    /// Consumer groups with live members before a REGISTER that would start another is
    /// refused (RESOURCE_EXHAUSTED); a group whose last member leaves or times out is
    /// forgotten and frees its slot.
    // A group costs a few hundred bytes plus its members; 10,000 groups is far more than a
    // host's applications use, and bounds the coordinator at tens of MB even if every group
    // is full.
    max_groups: usize as Int<1, 1_000_000>, "N", default "10000";
    /// Live consumers one group may hold before a REGISTER into it is refused
    /// (RESOURCE_EXHAUSTED); a consumer that leaves or times out frees its slot.
    // A consumer beyond a topic's partition count reads nothing, and a topic has
    // shards x ranges-per-shard partitions (4 per core by default): 1,000 covers a 250-core
    // host, and keeps a full group's assignment state near 1 MB.
    max_consumers_per_group: usize as Int<1, 1_000_000>, "N", default "1000";
    /// Live consumers in all groups together before a REGISTER of a new one is refused
    /// (RESOURCE_EXHAUSTED); a consumer that leaves or times out frees its slot.
    // Bounds the coordinator whatever the group limits multiply to (10,000 × 1,000), and the
    // expiry pass that looks at every consumer each tick: 100,000 members is a few tens of MB.
    max_consumers: usize as Int<1, 10_000_000>, "N", default "100000";
    /// Topics one consumer may subscribe to in a REGISTER (more are refused with
    /// RESOURCE_EXHAUSTED before any topic is created).
    // Each subscription is an entry in the group's per-topic indexes, so this bounds one
    // member's cost; 100 is well past what a consumer names by hand. The wire allows 65,535.
    max_topics_per_consumer: usize as Int<1, 65_535>, "N", default "100";
    /// Largest poll response, as sent: compressed chunks for binary polls, decompressed
    /// JSON for JSON polls (it always holds at least one item, if any), e.g. 1MiB.
    max_poll_bytes: usize as Size<{ 1 << 10 }, { 1 << 30 }>, "BYTES", default "1MiB";
    /// Per shard: recent compressed chunks kept in memory, shared by all the shard's topics
    /// (the least recently appended go first), so consumers that keep up never read the
    /// disk; `0` turns it off.
    hot_tail_bytes: usize as OffIsZero<Size<0, { 1 << 40 }>>, "BYTES", default "32MiB",
        flag "hot-tail";
    /// Connections per shard and server (framed, HTTP) before new ones are refused (framed
    /// ERROR 6, HTTP 503).
    max_connections: usize as Int<1, 1_000_000>, "N", default "10000";
    /// PRODUCE frames a framed connection may have awaiting acknowledgement before the broker
    /// stops reading it.
    max_in_flight: u64 as Int<1, 65_536>, "N", default "1024";
    /// Per framed connection: bytes of answers queued but not yet sent before the broker stops
    /// reading it (the client is not reading its answers).
    // Well-behaved clients keep far less queued: --max-in-flight acknowledgements are 13 KiB,
    // and a poll response is at most --max-poll-bytes (1 MiB), which still fits.
    max_unsent_answers: usize as Size<{ 1 << 10 }, { 1 << 30 }>, "BYTES", default "1MiB";
    /// Close a framed connection whose unsent answers stay above --max-unsent-answers for
    /// this long (also the time a closing connection has to take its last answers).
    write_stall_timeout: Duration as Dur, "DURATION", default "30s";
    /// Close a framed connection whose frame, once its first byte has arrived, is not
    /// complete within this long.
    frame_timeout: Duration as Dur, "DURATION", default "30s";
    /// Close connections with no request for this long; `off` never closes them. On HTTP/2
    /// any bytes sent or received count as activity, so live streams are not cut.
    idle_timeout: Option<Duration> as Opt<Dur>, "DURATION", default "10m";
    /// Answer 408 and close an HTTP/1.1 connection whose request (head and body), once its
    /// first byte has arrived, is not complete within this long.
    request_timeout: Duration as Dur, "DURATION", default "30s";
    /// Per shard: bytes of partial input (framed frames and HTTP request bodies still being
    /// read) before the shard's connections stop reading until some completes or is dropped.
    partial_input_budget: u64 as Size<{ 1 << 20 }, { 1 << 40 }>, "BYTES", default "64MiB";
    /// Per HTTP/2 connection: bytes of request bodies (REST bodies, partial gRPC messages)
    /// held before flow control stops the client; at least --grpc-max-message-size and
    /// --max-frame-size.
    h2_connection_buffer: u64 as Size<{ 64 << 10 }, { 1 << 32 }>, "BYTES", default "8MiB";
    /// Reset an HTTP/2 stream whose request body is still open but has had no data in either
    /// direction for this long.
    // As long as --request-timeout and --frame-timeout: all three bound how long a slow
    // sender can hold part of the shard's --partial-input-budget.
    stream_idle_timeout: Duration as Dur, "DURATION", default "30s";
    /// How long a graceful shutdown (SIGTERM) waits for connections to finish before exiting.
    shutdown_timeout: Duration as Dur, "DURATION", default "30s";
    /// Log one line (level info, target `shardlog::trace`) for every chunk whose oldest frame
    /// waited longer than this from its hand-over to the writer to its acknowledgement, with
    /// where the time went: queued behind the previous chunk, compressing, writing. `off` by
    /// default; for explaining an acknowledgement tail.
    trace_slow_acks: Option<Duration> as Opt<Dur>, "DURATION", default "off";
    /// Log a warning with the shard thread's backtrace whenever one turn of its executor runs
    /// this much past its 1 ms budget (a task that does not yield: what holds up every other
    /// task on the shard). `off` by default; a diagnostic, it costs a timer per turn. glommio
    /// build only.
    stall_report: Option<Duration> as Opt<Dur>, "DURATION", default "off";
    /// Chunk writes one partition may have in flight at once: the next chunk's write is issued
    /// while earlier ones are still on the device; chunks are still published and acknowledged
    /// in offset order, each only once durable. `1` writes one chunk at a time.
    // One write at a time bounds a partition at (bytes queued per partition) / (write
    // latency): the device idles between a write's completion and the next one's submission.
    // Measured in docs/benchmarks.md (issue 16).
    chunk_writes_in_flight: usize as Int<1, 64>, "N", default "4";
    /// How long an idle shard keeps polling for work before it sleeps, at most 10ms; `0`
    /// sleeps at once (saves CPU, costs latency).
    // The default was measured at half the maximum produce rate on a 2-core VM
    // (docs/benchmarks.md): ack p50 0.7-1.0 ms against 1.2-2.7 ms without spinning. An idle
    // shard then uses 3.7% of its core instead of 1.7% (every 10 ms tick is followed by 200 µs
    // of polling).
    spin_before_park: Duration as OffIsZero<Dur>, "DURATION", default "200us",
        check |d| if *d > Duration::from_millis(10) {
            Err(BadValue::TooLong {
                value: *d,
                max: Duration::from_millis(10),
                why: "it burns a core while idle",
            })
        } else {
            Ok(())
        };
    /// Refuse produce requests (retryably) while the data directory's filesystem has less
    /// free space than this; `0` disables the check.
    min_free_space: u64 as OffIsZero<Size<0, { u64::MAX }>>, "BYTES", default "1GiB";
    /// etcd endpoints, comma-separated (e.g. `http://10.0.0.5:2379`); given: this broker is
    /// one of a cluster (docs/cluster.md); `off`: a single host, no etcd.
    etcd_endpoints: Vec<String> as Endpoints, "URLS", default "off",
        example Hint("http://127.0.0.1:2379");
    /// The cluster's name: the prefix of its keys in etcd, so clusters can share one etcd.
    cluster_name: String as ClusterName, "NAME", default "shardlog";
    /// This broker's id in its cluster, unique and stable: required with --etcd-endpoints.
    /// The data directory remembers it and refuses to start under another id.
    broker_id: Option<u32> as BrokerId, "N", default "none", example Hint("1");
    /// The framed address other brokers and clients reach this broker at (cluster mode);
    /// default: --framed-listen, which then must not be a wildcard address.
    advertise_framed: Option<String> as HostPort, "HOST:PORT",
        default computed("--framed-listen", String::new),
        example Hint("broker-1.example:9254");
    /// The HTTP address other brokers and clients reach this broker at (cluster mode);
    /// default: --http-listen, which then must not be a wildcard address.
    advertise_http: Option<String> as HostPort, "HOST:PORT",
        default computed("--http-listen", String::new),
        example Hint("broker-1.example:9252");
    /// Cluster mode: how long a broker that stops renewing its etcd lease (crashed, paused,
    /// cut off from etcd) stays a member; at least 2s, rounded up to whole seconds.
    session_timeout: Duration as Dur, "DURATION", default "6s",
        check |d| if *d < Duration::from_secs(2) {
            Err(BadValue::TooShort {
                value: *d,
                min: Duration::from_secs(2),
                why: "etcd does not keep shorter leases",
            })
        } else {
            Ok(())
        };
    /// Cluster mode: the shortest time between two writes of one consumer group's committed
    /// offsets to etcd; commits made meanwhile go into the next write (the last one wins), so
    /// etcd sees at most one write per group per interval.
    offsets_interval: Duration as Dur, "DURATION", default "100ms";
    /// Cluster mode: per leader, reads with a long-poll wait this broker may have at it at
    /// once (polls and FETCHes of partitions another broker leads; each holds a connection
    /// for its wait). Past it, such a read waits here instead (at most 250 ms) and then takes
    /// what the leader has without waiting, over at most 16 more connections.
    // A client can hold a long poll on every connection it opens, and each poll waits on
    // every remote partition it reads: without this bound the leader would get one
    // connection per waiting read, up to its --max-connections, and refuse its own clients.
    max_remote_reads: usize as Int<1, 100_000>, "N", default "256";
    /// Cluster mode: per leader, framed connections this broker keeps for forwarding PRODUCE
    /// (one per topic in use); past it the least recently used idle one is closed, and a
    /// frame for a new topic that finds none idle is refused (RESOURCE_EXHAUSTED).
    // One per topic: a client naming topics without end would otherwise open one connection
    // to each leader per topic, for good.
    max_forward_links: usize as Int<1, 100_000>, "N", default "64";
    /// Cluster mode: consumer-group operations this broker may have waiting for the groups'
    /// coordinators at once; more are refused (UNAVAILABLE, retryable).
    max_group_requests: usize as Int<1, 32_768>, "N", default "1024";
    /// Cluster mode: HTTP requests this broker may have at other brokers at once (admin
    /// requests passed to a group's coordinator, the group list gathered from every broker,
    /// partition offsets asked of leaders); more wait their turn for up to 10 s, then are
    /// refused (RESOURCE_EXHAUSTED).
    // Each is a connection of its own: a group registered at `latest` over many partitions,
    // or many admin requests at once, would otherwise open as many at once.
    max_peer_requests: usize as Int<1, 100_000>, "N", default "64";
    /// Log filter, e.g. info, debug, shardlog=trace; `RUST_LOG` wins when set.
    log: String as Text, "FILTER", default "info";
}

/// A refused configuration, worded for the operator.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("--{flag}: {reason}")]
    Invalid {
        flag: &'static str,
        #[source]
        reason: BadValue,
    },
    #[error("{var}: {reason}")]
    InvalidEnv {
        /// The environment variable the value came from.
        var: &'static str,
        #[source]
        reason: BadValue,
    },
    #[error("--config {path}: {message}")]
    File { path: PathBuf, message: String },
}

impl clap::CommandFactory for Cli {
    fn command() -> clap::Command {
        command()
    }
    fn command_for_update() -> clap::Command {
        command()
    }
}

impl clap::Parser for Cli {}

impl Config {
    /// Parses the process's flags and environment, reads the file, validates.
    pub fn from_args() -> Result<Config, ConfigError> {
        Config::from_cli(Cli::parse())
    }

    /// Validates flags (already merged with the environment by clap) over the file.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let config = Config::merge(cli, file)?;
        config.check_together()?;
        Ok(config)
    }

    /// The configuration a file with `text` gives, with every other setting at its default
    /// (no flags, no environment): what `--config` does with a file's contents. For the fuzz
    /// target of the file format.
    pub fn from_file_text(text: &str) -> Result<Config, ConfigError> {
        let file = parse_file(Path::new("(text)"), text)?;
        let config = Config::merge(Cli::default(), file)?;
        config.check_together()?;
        Ok(config)
    }

    /// The checks that involve more than one setting.
    fn check_together(&self) -> Result<(), ConfigError> {
        if self.framed_listen == self.http_listen {
            return Err(setting("http_listen")
                .invalid(BadValue::SameAddress(self.http_listen, "framed-listen")));
        }
        if self.shard_buffer_bytes < u64::from(self.max_frame_size) {
            return Err(
                setting("shard_buffer_bytes").invalid(BadValue::SmallerThan {
                    value: self.shard_buffer_bytes,
                    other: "max-frame-size",
                    other_value: u64::from(self.max_frame_size),
                }),
            );
        }
        if let Some(min) = self.zstd_min_level {
            if min > i64::from(self.zstd_level) {
                return Err(setting("zstd_min_level").invalid(BadValue::Above {
                    value: min,
                    other: "zstd-level",
                    other_value: i64::from(self.zstd_level),
                }));
            }
        }
        self.check_cluster()?;
        // One HTTP/2 connection must be able to hold the largest body it may be sent whole.
        for (other, other_value) in [
            ("grpc-max-message-size", self.grpc_max_message_size),
            ("max-frame-size", self.max_frame_size),
        ] {
            if self.h2_connection_buffer < u64::from(other_value) {
                return Err(
                    setting("h2_connection_buffer").invalid(BadValue::SmallerThan {
                        value: self.h2_connection_buffer,
                        other,
                        other_value: u64::from(other_value),
                    }),
                );
            }
        }
        Ok(())
    }

    /// Cluster mode's settings together: a broker id, and addresses others can reach.
    fn check_cluster(&self) -> Result<(), ConfigError> {
        if !self.is_cluster() {
            return Ok(());
        }
        if self.broker_id.is_none() {
            return Err(setting("broker_id").invalid(BadValue::RequiredWith("etcd-endpoints")));
        }
        for (field, listen, addr) in [
            ("advertise_framed", "framed-listen", self.framed_listen),
            ("advertise_http", "http-listen", self.http_listen),
        ] {
            let given = match field {
                "advertise_framed" => self.advertise_framed.is_some(),
                _ => self.advertise_http.is_some(),
            };
            if !given && addr.ip().is_unspecified() {
                return Err(setting(field).invalid(BadValue::AdvertiseRequired {
                    with: "etcd-endpoints",
                    listen,
                    addr,
                }));
            }
        }
        Ok(())
    }

    /// Whether this broker is one of a cluster (`--etcd-endpoints` given).
    pub fn is_cluster(&self) -> bool {
        !self.etcd_endpoints.is_empty()
    }

    /// The framed address others reach this broker at: `--advertise-framed`, else
    /// `--framed-listen`.
    pub fn advertised_framed(&self) -> String {
        self.advertise_framed
            .clone()
            .unwrap_or_else(|| self.framed_listen.to_string())
    }

    /// The HTTP address others reach this broker at: `--advertise-http`, else `--http-listen`.
    pub fn advertised_http(&self) -> String {
        self.advertise_http
            .clone()
            .unwrap_or_else(|| self.http_listen.to_string())
    }

    /// The largest frame this broker builds: a framed or REST frame is at most
    /// `--max-frame-size`, a gRPC frame holds at least one value however large the message
    /// that carried it. Bounds what a chunk may decompress to
    /// ([`crate::storage::chunk::max_decoded_len`]).
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_size.max(self.grpc_max_message_size) as usize
    }

    /// The storage settings of a partition (`tail_bytes`: the shard's hot-tail budget, which
    /// all its partitions share).
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_size: self.segment_size,
            durability: self.durability,
            zstd_level: self.zstd_level,
            retention_age: self.retention_age,
            retention_bytes: self.retention_bytes,
            tail_bytes: self.hot_tail_bytes,
            reclaim_step: LogConfig::RECLAIM_STEP,
        }
    }
}

impl Default for Config {
    /// Every setting's declared default (the environment is not read).
    fn default() -> Config {
        Config::from_cli(Cli::default()).expect("the declared defaults are valid")
    }
}

/// The number of CPUs this process may run on (its affinity mask), at least 1.
pub fn available_cpus() -> usize {
    core_affinity::get_core_ids()
        .map(|ids| ids.len())
        .unwrap_or(1)
        .max(1)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse_file(path, &text)
}

/// Parses a config file's `text` (read from `path`, named in errors).
fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let err = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message,
    };
    toml::from_str(text).map_err(|e| {
        // One line, as every refusal: the parser's message may span several.
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        err(match e.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                format!("line {line}, column {column}: {message}")
            }
            None => message.to_string(),
        })
    })
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, last)| last)
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held while clap reads the environment, and by the test that changes it.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The configuration the command line `shardlog ARGS` gives, or why it is refused (a
    /// clap error or a [`ConfigError`]).
    fn cli(args: &[&str]) -> Result<Config, Box<dyn std::error::Error>> {
        let mut full = vec!["shardlog"];
        full.extend_from_slice(args);
        let parsed = {
            let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
            Cli::try_parse_from(full)
        };
        Ok(Config::from_cli(parsed?)?)
    }

    #[test]
    fn defaults() {
        let c = cli(&[]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.framed_listen.port(), 9254);
        assert_eq!(c.http_listen.port(), 9252);
        assert_eq!(c.ranges_per_shard, 4);
        assert_eq!(c.durability, Durability::Fsync);
        assert_eq!(c.max_frame_size, 4 << 20);
        assert_eq!(c.grpc_max_message_size, 4 << 20);
        assert_eq!(c.consumer_timeout, Duration::from_secs(120));
        assert_eq!(c.max_poll_bytes, 1 << 20);
        assert_eq!(c.max_topics, 10_000);
        assert!(c.auto_create_topics);
        assert!(c.shards >= 1);
        let c = cli(&["--consumer-timeout", "2s", "--max-poll-bytes", "64KiB"]).unwrap();
        assert_eq!(c.consumer_timeout, Duration::from_secs(2));
        assert_eq!(c.max_poll_bytes, 64 << 10);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        let c = cli(&[
            "--retention-age",
            "12h",
            "--retention-bytes",
            "1GiB",
            "--zstd-level",
            "-5",
        ])
        .unwrap();
        assert_eq!(c.retention_age, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(c.retention_bytes, Some(1 << 30));
        assert_eq!(c.zstd_level, -5);
        assert_eq!(
            cli(&["--retention-age", "off"]).unwrap().retention_age,
            None
        );
        assert_eq!(
            cli(&[]).unwrap().spin_before_park,
            Duration::from_micros(200)
        );
        let spin = |v: &str| cli(&["--spin-before-park", v]).unwrap().spin_before_park;
        assert_eq!(spin("0"), Duration::ZERO);
        assert_eq!(spin("50us"), Duration::from_micros(50));
        assert_eq!(spin("1ms"), Duration::from_millis(1));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (&["--shards", "0"][..], "--shards"),
            (&["--shards", "many"], "--shards"),
            (&["--framed-listen", "nowhere"], "--framed-listen"),
            (&["--durability", "maybe"], "--durability"),
            (&["--max-frame-size", "1"], "--max-frame-size"),
            (&["--grpc-max-message-size", "1"], "--grpc-max-message-size"),
            (
                &["--grpc-max-message-size", "1TiB"],
                "--grpc-max-message-size",
            ),
            (&["--zstd-level", "99"], "--zstd-level"),
            (&["--segment-size", "1KiB"], "--segment-size"),
            (&["--retention-age", "soon"], "--retention-age"),
            (&["--ranges-per-shard", "0"], "--ranges-per-shard"),
            (&["--consumer-timeout", "0"], "--consumer-timeout"),
            (&["--consumer-timeout", "later"], "--consumer-timeout"),
            (&["--max-poll-bytes", "1"], "--max-poll-bytes"),
            (&["--spin-before-park", "1s"], "--spin-before-park"),
            (&["--spin-before-park", "busy"], "--spin-before-park"),
        ] {
            let err = cli(args).unwrap_err().to_string();
            assert!(err.starts_with(flag), "{args:?} gave {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn cluster_mode_needs_an_id_and_reachable_addresses() {
        let c = cli(&[]).unwrap();
        assert!(!c.is_cluster());
        assert_eq!(c.cluster_name, "shardlog");
        assert_eq!(c.session_timeout, Duration::from_secs(6));
        assert_eq!(c.cpus, CpuPlacement::All);
        assert_eq!(c.io_worker_cpus, CpuPlacement::None);
        let c = cli(&["--io-worker-cpus", "0,2-3"]).unwrap();
        assert_eq!(c.io_worker_cpus, CpuPlacement::List(vec![0, 2, 3]));
        let etcd = ["--etcd-endpoints", "http://127.0.0.1:2379"];
        let err = cli(&etcd).unwrap_err().to_string();
        assert_eq!(err, "--broker-id: is required with --etcd-endpoints");
        let err = cli(&[&etcd[..], &["--broker-id", "1"]].concat())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--advertise-framed: is required"), "{err}");
        let c = cli(&[
            &etcd[..],
            &[
                "--broker-id",
                "7",
                "--framed-listen",
                "127.0.0.1:1",
                "--http-listen",
                "127.0.0.1:2",
                "--advertise-http",
                "b7.example:80",
                "--session-timeout",
                "2s",
                "--cpus",
                "none",
            ],
        ]
        .concat())
        .unwrap();
        assert!(c.is_cluster());
        assert_eq!(c.broker_id, Some(7));
        assert_eq!(c.advertised_framed(), "127.0.0.1:1");
        assert_eq!(c.advertised_http(), "b7.example:80");
        assert_eq!(c.cpus, CpuPlacement::None);
        for (args, flag) in [
            (&["--session-timeout", "1s"][..], "--session-timeout"),
            (&["--cluster-name", "a/b"], "--cluster-name"),
            (&["--etcd-endpoints", "nowhere"], "--etcd-endpoints"),
            (&["--broker-id", "x"], "--broker-id"),
            (&["--cpus", "1-"], "--cpus"),
            (&["--io-worker-cpus", "2,2"], "--io-worker-cpus"),
            (&["--advertise-framed", "nohost"], "--advertise-framed"),
        ] {
            let err = cli(args).unwrap_err().to_string();
            assert!(err.starts_with(flag), "{args:?} gave {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn file_is_below_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardlog.toml");
        std::fs::write(
            &path,
            "data-dir = \"/srv/log\"\nshards = 3\nsegment-size = \"64MiB\"\nzstd-level = 3\n\
             grpc-max-message-size = \"1MiB\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = cli(&["--config", p, "--shards", "2"]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/log"));
        assert_eq!(c.shards, 2);
        assert_eq!(c.segment_size, 64 << 20);
        assert_eq!(c.zstd_level, 3);
        assert_eq!(c.grpc_max_message_size, 1 << 20);
        std::fs::write(&path, "bogus-key = 1\n").unwrap();
        let err = cli(&["--config", p]).unwrap_err().to_string();
        assert!(err.contains("bogus-key"), "{err}");
        std::fs::write(&path, "shards = \"x\"\n").unwrap();
        assert!(cli(&["--config", p])
            .unwrap_err()
            .to_string()
            .starts_with("--shards"));
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/shardlog.example.toml");
        let c = cli(&["--config", path]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/shardlog"));
        assert_eq!(c.min_free_space, 1 << 30);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(600)));
    }

    #[test]
    fn one_declaration_gives_flag_env_key_and_help() {
        let all = settings();
        let mut flags: Vec<&str> = all.iter().map(|s| s.flag.as_str()).collect();
        flags.sort_unstable();
        flags.dedup();
        assert_eq!(flags.len(), all.len(), "two settings share a flag");
        assert_eq!(setting("shard_buffer_bytes").flag, "shard-buffer");
        assert_eq!(setting("hot_tail_bytes").env, "SHARDLOG_HOT_TAIL");
        let help = command().render_help().to_string();
        for s in all {
            assert_eq!(
                s.env,
                format!("SHARDLOG_{}", s.flag.to_uppercase().replace('-', "_"))
            );
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("--{} <", s.flag)))
                .unwrap_or_else(|| panic!("--help lacks --{}", s.flag));
            assert!(line.contains(&s.help), "{line}");
            assert!(
                line.contains(&format!("[default: {}]", s.shown_default())),
                "{line}"
            );
            assert!(line.contains(&format!("[env: {}", s.env)), "{line}");
        }
        assert!(help.contains("--config <PATH>"));
    }

    #[test]
    fn defaults_come_from_the_declarations() {
        let c = Config::default();
        let parsed = cli(&[]).unwrap();
        assert_eq!(format!("{c:?}"), format!("{parsed:?}"));
        assert_eq!(c.shards, available_cpus());
        assert_eq!(c.zstd_level, 1);
        assert_eq!(c.hot_tail_bytes, 32 << 20);
        assert_eq!(c.retention_age, Some(Duration::from_secs(7 * 24 * 3600)));
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.min_free_space, 1 << 30);
        assert_eq!(c.spin_before_park, Duration::from_micros(200));
        // The storage layer's defaults are the same ones.
        let log = c.log_config();
        assert_eq!(log.zstd_level, 1);
        assert_eq!(log.tail_bytes, 32 << 20);
        assert_eq!(log.segment_size, c.segment_size);
        assert_eq!(log.durability, c.durability);
        assert_eq!(log.retention_age, c.retention_age);
        assert_eq!(log.reclaim_step, LogConfig::RECLAIM_STEP);
        // Every text default parses as its setting would from a flag.
        for s in settings() {
            if let DefaultValue::Text(t) = s.default {
                let flag = format!("--{}", s.flag);
                let given = cli(&[&flag, t]).unwrap();
                assert_eq!(format!("{given:?}"), format!("{parsed:?}"), "{flag} {t}");
            }
        }
    }

    #[test]
    fn flag_beats_environment_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardlog.toml");
        std::fs::write(&path, "max-in-flight = 7\nhot-tail = \"off\"\n").unwrap();
        let p = path.to_str().unwrap();
        let from = |args: &[&str]| cli(args).unwrap();
        assert_eq!(from(&["--config", p]).max_in_flight, 7);
        assert_eq!(from(&["--config", p]).hot_tail_bytes, 0);
        let env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var("SHARDLOG_MAX_IN_FLIGHT", "9");
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(["shardlog"].iter().chain(args)).unwrap();
            Config::from_cli(cli).unwrap().max_in_flight
        };
        let (env_over_file, flag_over_env, env_alone) = (
            parse(&["--config", p]),
            parse(&["--config", p, "--max-in-flight", "11"]),
            parse(&[]),
        );
        std::env::set_var("SHARDLOG_MAX_IN_FLIGHT", "bogus");
        let bad = Cli::try_parse_from(["shardlog"]).map(Config::from_cli);
        // The same bad variable is ignored when the flag is given.
        let flag_wins = Cli::try_parse_from(["shardlog", "--max-in-flight", "3"])
            .map(|c| Config::from_cli(c).map(|c| c.max_in_flight));
        std::env::set_var("SHARDLOG_MAX_IN_FLIGHT", "9");
        std::env::set_var("SHARDLOG_SPIN_BEFORE_PARK", "1s");
        let bad_check = Cli::try_parse_from(["shardlog"]).map(Config::from_cli);
        std::env::remove_var("SHARDLOG_SPIN_BEFORE_PARK");
        std::env::remove_var("SHARDLOG_MAX_IN_FLIGHT");
        drop(env);
        assert_eq!((env_over_file, flag_over_env, env_alone), (9, 11, 9));
        // A bad value from the environment is named by its variable, not by the flag.
        let err = bad.unwrap().unwrap_err().to_string();
        assert!(err.starts_with("SHARDLOG_MAX_IN_FLIGHT: 'bogus'"), "{err}");
        assert_eq!(flag_wins.unwrap().unwrap(), 3);
        let err = bad_check.unwrap().unwrap_err().to_string();
        assert!(err.starts_with("SHARDLOG_SPIN_BEFORE_PARK: "), "{err}");
    }

    #[test]
    fn a_file_that_does_not_parse_is_refused_with_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardlog.toml");
        std::fs::write(
            &path,
            "shards = 2
zstd-level = = 3
",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let err = cli(&["--config", p]).unwrap_err().to_string();
        assert!(err.starts_with("--config "), "{err}");
        assert!(err.contains("line 2, column 14"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
        assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_and_column("é=", 2), (1, 2));
    }

    #[test]
    fn checks_across_settings() {
        for (args, flag) in [
            (
                &[
                    "--framed-listen",
                    "127.0.0.1:1",
                    "--http-listen",
                    "127.0.0.1:1",
                ][..],
                "--http-listen",
            ),
            (
                &["--max-frame-size", "8MiB", "--shard-buffer", "4MiB"],
                "--shard-buffer",
            ),
            (&["--zstd-level", "-8"], "--zstd-level"),
            (&["--retention-bytes", "1KiB"], "--retention-bytes"),
            (&["--hot-tail", "2TiB"], "--hot-tail"),
            (
                &["--grpc-max-message-size", "16MiB"],
                "--h2-connection-buffer",
            ),
            (
                &["--max-frame-size", "16MiB", "--shard-buffer", "16MiB"],
                "--h2-connection-buffer",
            ),
        ] {
            let err = cli(args).unwrap_err().to_string();
            assert!(err.starts_with(flag), "{args:?} gave {err}");
        }
        let c = cli(&["--max-frame-size", "8MiB", "--shard-buffer", "8MiB"]).unwrap();
        assert_eq!(c.shard_buffer_bytes, 8 << 20);
        assert_eq!(cli(&["--hot-tail", "off"]).unwrap().hot_tail_bytes, 0);
        assert_eq!(cli(&["--min-free-space", "0"]).unwrap().min_free_space, 0);
        assert_eq!(cli(&["--idle-timeout", "off"]).unwrap().idle_timeout, None);
        let c = cli(&[
            "--grpc-max-message-size",
            "16MiB",
            "--h2-connection-buffer",
            "16MiB",
        ])
        .unwrap();
        assert_eq!(c.h2_connection_buffer, 16 << 20);
    }

    #[test]
    fn switches_are_true_or_false_from_flags_and_files() {
        let off = cli(&["--auto-create-topics", "false"]).unwrap();
        assert!(!off.auto_create_topics);
        let err = cli(&["--auto-create-topics", "no"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--auto-create-topics: 'no'"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardlog.toml");
        let p = path.to_str().unwrap();
        std::fs::write(&path, "auto-create-topics = false\nmax-topics = 7\n").unwrap();
        let c = cli(&["--config", p]).unwrap();
        assert_eq!((c.auto_create_topics, c.max_topics), (false, 7));
        std::fs::write(&path, "auto-create-topics = \"true\"\n").unwrap();
        assert!(cli(&["--config", p]).unwrap().auto_create_topics);
        assert!(cli(&["--max-topics", "0"]).is_err());
    }

    #[test]
    fn file_numbers_are_integers_or_strings_with_units() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardlog.toml");
        let p = path.to_str().unwrap();
        std::fs::write(
            &path,
            "max-poll-bytes = 65536\nsegment-size = \"1.5GiB\"\nranges-per-shard = \"8\"\n\
             shard-buffer = \"128MiB\"\nretention-bytes = 0\nzstd-level = -3\n",
        )
        .unwrap();
        let c = cli(&["--config", p]).unwrap();
        assert_eq!(c.max_poll_bytes, 64 << 10);
        assert_eq!(c.segment_size, 3 << 29);
        assert_eq!(c.ranges_per_shard, 8);
        assert_eq!(c.shard_buffer_bytes, 128 << 20);
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.zstd_level, -3);
        // Text settings take only strings, as before.
        std::fs::write(&path, "framed-listen = 9254\n").unwrap();
        assert!(cli(&["--config", p])
            .unwrap_err()
            .to_string()
            .starts_with("--config "));
    }
}
