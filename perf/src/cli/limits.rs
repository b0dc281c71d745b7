//! `limits`: the machine's own yardsticks (no broker), printed in its own shape.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::payload::{PayloadKind, PayloadSpec, DEFAULT_SEED};
use crate::workload::limits::fsync_mix::MixConfig;
use crate::workload::limits::{self, LimitsConfig};

use super::common::{parse_cpus, parse_duration, parse_size, CpuList};

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
    /// What the messages look like: JSON events, plain-text log lines, or random bytes.
    #[arg(long, value_enum, default_value = "json")]
    pub payload: PayloadKind,
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
    /// How long the hiccup test spins.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub hiccup_duration: Duration,
    /// Measure only these (repeatable): zstd, fsync, bandwidth, fsync-mix, hiccup. Default:
    /// the first three; fsync-mix (the disk under a broker's write pattern) and hiccup (how
    /// often the host takes the pinned core from a spinning thread) run only when named.
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
    Hiccup,
}

impl LimitsArgs {
    pub fn config(&self) -> LimitsConfig {
        let all = self.only.is_empty();
        LimitsConfig {
            payload: PayloadSpec {
                size: self.message_size,
                randomness: self.randomness,
                seed: self.seed,
                kind: self.payload,
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
            hiccup: self
                .only
                .contains(&LimitKind::Hiccup)
                .then_some(self.hiccup_duration),
        }
    }
}

/// Measures and prints the machine's limits (`--json`: one object).
pub(super) fn run(args: LimitsArgs) -> ExitCode {
    let cfg = args.config();
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match limits::run(&cfg) {
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
