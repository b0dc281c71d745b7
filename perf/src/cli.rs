//! The command line: one subcommand per workload, with the flags every workload shares
//! ([`Common`]) flattened into each.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::consume::{ConsumeConfig, Start, Transport};
use crate::fsync_mix::MixConfig;
use crate::grpc::{GrpcConsumeConfig, GrpcProduceConfig, Routing};
use crate::limits::LimitsConfig;
use crate::payload::{PayloadSpec, DEFAULT_SEED};
use crate::produce::{self, KeyOrder, ProduceConfig, Stop};
use crate::stats::Report;
use crate::verify::{AckLedger, Checker, ReadBack, VerifyResult};

#[derive(Debug, Parser)]
#[command(
    name = "shardlog-perf",
    version,
    about = "Load harness for the shardlog broker: throughput and latency percentiles"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Produce over the framed protocol (PRODUCE frames, acknowledged once durable).
    Produce(ProduceArgs),
    /// Consume over the framed protocol: consumers in a group poll and decode the records.
    Consume(ConsumeArgs),
    /// Produce (with timestamps) while consuming the same topic: end-to-end latency.
    E2e(E2eArgs),
    /// Produce over gRPC (`atomix.log.LogService/Produce` on the HTTP port): concurrent
    /// client-streaming calls of `--values-per-call` values, each answered once durable.
    GrpcProduce(GrpcProduceArgs),
    /// Consume over gRPC (`atomix.log.LogService/Consume`), one stream per partition.
    GrpcConsume(GrpcConsumeArgs),
    /// Measure this machine's limits: one-core zstd rate of the payload, fdatasync latency of
    /// chunk-sized O_DIRECT appends, O_DIRECT sequential write and read bandwidth.
    Limits(LimitsArgs),
}

/// Flags shared by all workloads.
#[derive(Debug, Args)]
pub struct Common {
    /// Address of the broker's framed-protocol listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9254")]
    pub framed: String,
    /// Address of the broker's HTTP/gRPC listener (used by the HTTP and gRPC workloads).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9252")]
    pub http: String,
    /// Topic to produce to / consume from.
    #[arg(long, default_value = "perf")]
    pub topic: String,
    /// Stop after this many messages in total (warmup included).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Stop after this long (warmup included), e.g. `30s`, `2m`. Produce's default without
    /// --messages is 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Leave this first stretch out of the statistics, e.g. `2s`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Pin the harness's threads to these CPUs (e.g. `0,1` or `4-7`), to keep it off the broker's.
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// A connection waiting for an answer this long has failed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub response_timeout: Duration,
}

/// A parsed `--cpus` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub flags: ProduceFlags,
}

/// The producer's flags (`produce` and `e2e`).
#[derive(Debug, Args)]
pub struct ProduceFlags {
    /// TCP connections to the broker.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub connections: usize,
    /// Frames in flight per connection (closed loop: always this many outstanding).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub in_flight: usize,
    /// Messages in each PRODUCE frame.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub messages_per_frame: usize,
    /// Size of each message in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub message_size: usize,
    /// Share of random bytes in each message, 0.0 to 1.0 (the rest is fixed JSON structure).
    #[arg(long, value_name = "0.0..1.0", default_value_t = 0.5)]
    pub randomness: f64,
    /// Partition keys `key-0 .. key-{N-1}`, one per frame; 0 sends keyless frames.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keys: usize,
    /// How each frame's key is chosen.
    #[arg(long, value_enum, default_value = "round-robin")]
    pub key_order: KeyOrder,
    /// Open loop: send at this many messages per second in total, on a fixed schedule, and
    /// measure latency from each frame's intended send time. Without it: closed loop.
    #[arg(long, value_name = "MSGS_PER_SEC")]
    pub rate: Option<f64>,
    /// Send a timestamp in every frame (flag 0x01). Always on for `e2e`.
    #[arg(long)]
    pub timestamps: bool,
    /// Seed of the payload generator.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// After producing, read everything back through the consumer API (a fresh group) and
    /// check every acknowledged message is there once, in order per key (`produce` only).
    #[arg(long)]
    pub verify: bool,
}

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
            stop: match (c.messages, c.duration) {
                (Some(n), _) => Stop::Messages(n),
                (None, Some(d)) => Stop::Duration(d),
                (None, None) => Stop::Duration(Duration::from_secs(30)),
            },
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

#[derive(Debug, Args)]
pub struct LimitsArgs {
    /// Directory for the fdatasync and bandwidth test files (created; files deleted after).
    #[arg(long, value_name = "DIR", default_value = "./data")]
    pub dir: PathBuf,
    /// Pin the measuring thread to this CPU (one CPU; a list uses its first).
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// zstd level, as the broker's `--zstd-level` (negative levels are fast modes).
    #[arg(
        long,
        value_name = "LEVEL",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub zstd_level: i32,
    /// Messages per big batch (1024 × 1 KiB ≈ 1 MiB, the broker's largest chunk).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub batch_messages: usize,
    /// Messages per typical chunk (64: one default PRODUCE frame).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub chunk_messages: usize,
    /// Size of each message in bytes (as `produce --message-size`).
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub message_size: usize,
    /// Share of random bytes in each message (as `produce --randomness`).
    #[arg(long, value_name = "0.0..1.0", default_value_t = 0.5)]
    pub randomness: f64,
    /// Seed of the payload generator (as `produce --seed`).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// How long to compress for, per batch size.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "3s")]
    pub zstd_duration: Duration,
    /// Bytes per O_DIRECT append in the fdatasync test (a multiple of 4096).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "64KiB")]
    pub chunk_size: u64,
    /// Appends (each followed by fdatasync) in the fdatasync test.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub fsync_iterations: u64,
    /// Run the fdatasync test this long instead of --fsync-iterations.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Bytes written then read in the bandwidth test.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1GiB")]
    pub bw_size: u64,
    /// Bytes per O_DIRECT write/read in the bandwidth test (a multiple of 4096).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1MiB")]
    pub bw_block: u64,
    /// Writers (files) in the fsync-mix test: the partitions of one shard.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub mix_writers: usize,
    /// Writes per second, all writers together, in the fsync-mix test.
    #[arg(long, value_name = "N", default_value_t = 3000.0)]
    pub mix_rate: f64,
    /// Bytes per write in the fsync-mix test (rounded up to 4096).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "32KiB")]
    pub mix_size: u64,
    /// How long the fsync-mix test runs.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub mix_duration: Duration,
    /// Measure only these (repeatable): zstd, fsync, bandwidth, fsync-mix. Default: the first
    /// three; fsync-mix (the disk under a broker's write pattern) runs only when named.
    #[arg(long, value_enum)]
    pub only: Vec<LimitKind>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One of the `limits` measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LimitKind {
    Zstd,
    Fsync,
    Bandwidth,
    FsyncMix,
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::limits::parse_size(s)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 2m)"))
}

fn parse_cpus(s: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("'{t}' is not a CPU number (examples: 0,1 or 4-7)"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range {part} runs backwards"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(num(part)?),
        }
    }
    if cpus.is_empty() {
        return Err("no CPU given".into());
    }
    Ok(CpuList(cpus))
}

impl ProduceArgs {
    /// The workload's configuration (validated later, by the workload).
    pub fn config(&self) -> ProduceConfig {
        self.flags.config(&self.common)
    }
}

impl ProduceFlags {
    pub fn config(&self, c: &Common) -> ProduceConfig {
        ProduceConfig {
            addr: c.framed.clone(),
            topic: c.topic.clone(),
            connections: self.connections,
            in_flight: self.in_flight,
            messages_per_frame: self.messages_per_frame,
            payload: PayloadSpec {
                size: self.message_size,
                randomness: self.randomness,
                seed: self.seed,
            },
            keys: self.keys,
            key_order: self.key_order,
            stop: match (c.messages, c.duration) {
                (Some(n), _) => Stop::Messages(n),
                (None, Some(d)) => Stop::Duration(d),
                (None, None) => Stop::Duration(Duration::from_secs(30)),
            },
            rate: self.rate,
            timestamps: self.timestamps,
            cpus: c.cpus.clone().map(|l| l.0),
            warmup: c.warmup,
            progress: !c.quiet,
            print_errors: true,
            ledger: self.verify,
            response_timeout: c.response_timeout,
            ..ProduceConfig::default()
        }
    }
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

impl LimitsArgs {
    pub fn config(&self) -> LimitsConfig {
        let all = self.only.is_empty();
        LimitsConfig {
            payload: PayloadSpec {
                size: self.message_size,
                randomness: self.randomness,
                seed: self.seed,
            },
            zstd_level: self.zstd_level,
            batch_messages: self.batch_messages,
            chunk_messages: self.chunk_messages,
            zstd_time: self.zstd_duration,
            dir: self.dir.clone(),
            chunk_size: self.chunk_size as usize,
            fsync_iterations: self.fsync_iterations,
            fsync_time: self.duration,
            bw_size: self.bw_size,
            bw_block: self.bw_block as usize,
            cpu: self.cpus.as_ref().map(|c| c.0[0]),
            zstd: all || self.only.contains(&LimitKind::Zstd),
            fsync: all || self.only.contains(&LimitKind::Fsync),
            bandwidth: all || self.only.contains(&LimitKind::Bandwidth),
            fsync_mix: self.only.contains(&LimitKind::FsyncMix).then(|| MixConfig {
                writers: self.mix_writers,
                rate: self.mix_rate,
                chunk_size: usize::try_from(self.mix_size).unwrap_or(usize::MAX),
                time: self.mix_duration,
            }),
        }
    }
}

/// A group name no other run uses: `{prefix}-{pid}-{ms since the epoch}`.
pub fn fresh_group(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{prefix}-{}-{ms}", std::process::id())
}

/// Set by the first Ctrl-C (SIGINT): the run stops sending, drains, and reports.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // A second Ctrl-C ends the process at once. (Both calls are async-signal-safe.)
    // SAFETY: restoring the default disposition of SIGINT from its own handler.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

fn catch_sigint() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic and calls signal(2).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
}

/// Exit code of a `--verify` run whose read-back found a problem.
pub const EXIT_VERIFY_FAILED: u8 = 3;

fn print_report(report: &Report, json: bool) -> ExitCode {
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if let Some(f) = &report.failure {
        eprintln!("error: the run failed: {f}");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the command; the exit code is 0 on success, 1 when the run failed, 2 on bad usage,
/// 3 when `--verify` found acknowledged messages missing, duplicated, reordered or corrupt.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Produce(args) => run_produce(args),
        Command::Consume(args) => {
            let mut cfg = args.flags.config(&args.common, false);
            cfg.interrupt = Some(&INTERRUPTED);
            if let Err(e) = cfg.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            catch_sigint();
            match crate::consume::run(cfg, None) {
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
                Ok(outcome) => print_report(&outcome.report, args.common.json),
            }
        }
        Command::E2e(args) => {
            if args.produce.verify {
                eprintln!("error: --verify belongs to produce, not e2e");
                return ExitCode::from(2);
            }
            let mut p = args.produce.config(&args.common);
            p.timestamps = true;
            p.interrupt = Some(&INTERRUPTED);
            let mut c = args.consume.config(&args.common, true);
            c.messages = None;
            c.duration = None;
            c.decode = true;
            c.e2e = true;
            c.interrupt = Some(&INTERRUPTED);
            if let Err(e) = p.validate().and_then(|()| c.validate()) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            catch_sigint();
            match crate::e2e::run(p, c) {
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
                Ok(report) => print_report(&report, args.common.json),
            }
        }
        Command::GrpcProduce(args) => {
            let mut cfg = args.config();
            cfg.interrupt = Some(&INTERRUPTED);
            if let Err(e) = cfg.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            catch_sigint();
            match crate::grpc::run_produce(cfg) {
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
                Ok(report) => print_report(&report, args.common.json),
            }
        }
        Command::GrpcConsume(args) => {
            let mut cfg = args.config();
            cfg.interrupt = Some(&INTERRUPTED);
            if let Err(e) = cfg.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            catch_sigint();
            match crate::grpc::run_consume(cfg) {
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
                Ok(report) => print_report(&report, args.common.json),
            }
        }
        Command::Limits(args) => {
            let cfg = args.config();
            if let Err(e) = cfg.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            if let Some(c) = cfg.cpu {
                let ok = core_affinity::get_core_ids()
                    .unwrap_or_default()
                    .iter()
                    .any(|id| id.id == c);
                if !ok {
                    eprintln!("error: --cpus: CPU {c} is not available to this process");
                    return ExitCode::from(2);
                }
            }
            match crate::limits::run(&cfg) {
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
                Ok(l) => {
                    if args.json {
                        println!("{}", l.to_json());
                    } else {
                        print!("{}", l.to_text());
                    }
                    ExitCode::SUCCESS
                }
            }
        }
    }
}

fn run_produce(args: ProduceArgs) -> ExitCode {
    let mut cfg = args.config();
    cfg.interrupt = Some(&INTERRUPTED);
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let read_back = args.flags.verify.then(|| ReadBack {
        transport: Transport::Framed,
        addr: cfg.addr.clone(),
        topic: cfg.topic.clone(),
        group: fresh_group("perf-verify"),
        timeout: cfg.response_timeout,
    });
    if let Some(rb) = &read_back {
        if let Err(e) = rb.mark() {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    catch_sigint();
    let mut outcome = match produce::run(cfg) {
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
        Ok(o) => o,
    };
    let mut verdict = None;
    if let (Some(rb), Some(ledger), Some(sent)) = (&read_back, &outcome.ledger, &outcome.sent) {
        let started = std::time::Instant::now();
        match verify(rb, ledger, sent) {
            Ok(r) => {
                let s = &mut outcome.report.settings;
                if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&r) {
                    s.extend(m);
                }
                s.insert("verify_s".into(), started.elapsed().as_secs_f64().into());
                if !args.common.json {
                    eprintln!(
                        "verify: {} verified, {} missing, {} duplicates, {} out of order, {} corrupt, {} unacknowledged seen ({} records read)",
                        r.verified, r.missing, r.duplicates, r.out_of_order, r.corrupt, r.unacked_seen, r.records_read
                    );
                }
                verdict = Some(r);
            }
            Err(e) => {
                if outcome.report.failure.is_none() {
                    outcome.report.failure = Some(e);
                }
            }
        }
    }
    let code = print_report(&outcome.report, args.common.json);
    match verdict {
        Some(r) if !r.ok() && outcome.report.failure.is_none() => {
            eprintln!("error: verification failed");
            ExitCode::from(EXIT_VERIFY_FAILED)
        }
        _ => code,
    }
}

fn verify(
    rb: &ReadBack,
    ledger: &AckLedger,
    sent: &produce::SentMessages,
) -> Result<VerifyResult, String> {
    let expected = |f: u64, i: u16| sent.message(f, i);
    let mut checker = Checker::new(ledger, &expected, sent.tag_positions.clone());
    rb.read(&mut checker)?;
    Ok(checker.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("shardlog-perf").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let Command::Produce(p) = parse(&["produce"]).unwrap().command else {
            panic!("produce")
        };
        let cfg = p.config();
        assert_eq!(cfg.addr, "127.0.0.1:9254");
        assert_eq!(p.common.http, "127.0.0.1:9252");
        assert_eq!(cfg.messages_per_frame, 64);
        assert_eq!(cfg.payload.size, 1024);
        assert_eq!(cfg.payload.randomness, 0.5);
        assert_eq!(cfg.keys, 0);
        assert_eq!(cfg.stop, Stop::Duration(Duration::from_secs(30)));
        assert_eq!(cfg.rate, None);
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn all_flags() {
        let Command::Produce(p) = parse(&[
            "produce",
            "--framed",
            "10.0.0.1:1",
            "--connections",
            "8",
            "--in-flight",
            "4",
            "--messages-per-frame",
            "10",
            "--message-size",
            "100",
            "--randomness",
            "0.25",
            "--keys",
            "5",
            "--key-order",
            "random",
            "--duration",
            "1m",
            "--warmup",
            "2s",
            "--rate",
            "1000",
            "--timestamps",
            "--cpus",
            "0,2-3",
            "--json",
            "--topic",
            "t1",
        ])
        .unwrap()
        .command
        else {
            panic!("produce")
        };
        let cfg = p.config();
        assert_eq!(
            (cfg.connections, cfg.in_flight, cfg.messages_per_frame),
            (8, 4, 10)
        );
        assert_eq!((cfg.payload.size, cfg.payload.randomness), (100, 0.25));
        assert_eq!((cfg.keys, cfg.key_order), (5, KeyOrder::Random));
        assert_eq!(cfg.stop, Stop::Duration(Duration::from_secs(60)));
        assert_eq!(cfg.warmup, Duration::from_secs(2));
        assert_eq!(cfg.rate, Some(1000.0));
        assert!(cfg.timestamps && p.common.json);
        assert_eq!(cfg.cpus, Some(vec![0, 2, 3]));
        assert_eq!(cfg.topic, "t1");
    }

    #[test]
    fn grpc_and_http_flags() {
        let Command::GrpcProduce(g) = parse(&[
            "grpc-produce",
            "--http",
            "10.0.0.2:1",
            "--streams",
            "8",
            "--values-per-call",
            "32",
            "--keys",
            "10",
            "--cpus",
            "1",
            "--messages",
            "1000",
        ])
        .unwrap()
        .command
        else {
            panic!("grpc-produce")
        };
        let cfg = g.config();
        assert_eq!(cfg.addr, "10.0.0.2:1");
        assert_eq!(
            (cfg.connections, cfg.streams, cfg.values_per_call),
            (4, 8, 32)
        );
        assert_eq!(
            cfg.routing,
            Routing::Keys {
                keys: 10,
                order: KeyOrder::RoundRobin
            }
        );
        assert_eq!(cfg.stop, Stop::Messages(1000));
        assert!(parse(&["grpc-produce", "--keys", "3", "--partition", "1"]).is_err());
        let Command::GrpcProduce(g) = parse(&["grpc-produce", "--partition", "2"])
            .unwrap()
            .command
        else {
            panic!("grpc-produce")
        };
        assert_eq!(g.config().routing, Routing::Partition(2));
        assert!(g.config().validate().is_ok());
        let Command::GrpcProduce(g) = parse(&["grpc-produce", "--spread", "4"]).unwrap().command
        else {
            panic!("grpc-produce")
        };
        assert_eq!(g.config().routing, Routing::Spread(4));
        assert!(parse(&["grpc-produce", "--spread", "4", "--keys", "2"]).is_err());
        assert!(parse(&["grpc-produce", "--spread", "4", "--partition", "1"]).is_err());

        let Command::GrpcConsume(c) = parse(&[
            "grpc-consume",
            "--partitions",
            "0,3",
            "--from-offset",
            "7",
            "--until-idle",
            "2s",
        ])
        .unwrap()
        .command
        else {
            panic!("grpc-consume")
        };
        let cfg = c.config();
        assert_eq!(cfg.addr, "127.0.0.1:9252");
        assert_eq!(cfg.partitions, vec![0, 3]);
        assert_eq!(cfg.from_offset, 7);
        assert_eq!(cfg.until_idle, Some(Duration::from_secs(2)));
        assert!(cfg.validate().is_ok());

        let Command::Consume(c) = parse(&["consume", "--transport", "http", "--until-empty"])
            .unwrap()
            .command
        else {
            panic!("consume")
        };
        let cfg = c.flags.config(&c.common, false);
        assert_eq!(
            (cfg.transport, cfg.addr.as_str()),
            (Transport::Http, "127.0.0.1:9252")
        );
    }

    #[test]
    fn bad_input_is_rejected_clearly() {
        assert!(parse(&["produce", "--messages", "5", "--duration", "1s"]).is_err());
        assert!(parse(&["produce", "--duration", "soon"]).is_err());
        assert!(parse(&["produce", "--cpus", "a"]).is_err());
        assert!(parse(&["produce", "--cpus", "3-1"]).is_err());
        let bad = |args: &[&str]| {
            let Command::Produce(p) = parse(args).unwrap().command else {
                panic!("produce")
            };
            p.config().validate().unwrap_err()
        };
        assert!(bad(&["produce", "--randomness", "1.5"]).contains("--randomness"));
        assert!(bad(&["produce", "--connections", "0"]).contains("--connections"));
        assert!(bad(&["produce", "--in-flight", "70000"]).contains("--in-flight"));
        assert!(bad(&["produce", "--topic", "a/b"]).contains("--topic"));
        assert!(bad(&["produce", "--rate=-1"]).contains("--rate"));
        assert!(bad(&["produce", "--messages", "0"]).contains("--messages"));
        assert!(bad(&["produce", "--cpus", "100000"]).contains("--cpus"));
    }
}
