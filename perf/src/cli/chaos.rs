//! `chaos`: the crash loop's flags, and its exit code (3 when it found a violation).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::workload::chaos::broker::BrokerSpec;
use crate::workload::chaos::{self, ChaosConfig};

use super::common::parse_duration;
use super::EXIT_VERIFY_FAILED;

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// The broker binary to start, kill and restart (e.g. target/release/shardlog).
    #[arg(long, value_name = "PATH")]
    pub broker_bin: PathBuf,
    /// The broker's data directory: absent or empty at the start. Its log goes beside it
    /// (`DIR.broker.log`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The broker's `--shards`.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub shards: usize,
    /// Kill-and-restart cycles.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub cycles: u32,
    /// Seed of every random choice (run times, pauses, payload sizes): a run is replayed by
    /// its seed (up to the timing of the machine).
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Shortest time the load runs before a kill.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "200ms")]
    pub min_run: Duration,
    /// Longest time the load runs before a kill.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub max_run: Duration,
    /// Chance that a cycle pauses the broker (SIGSTOP, then SIGCONT, or a kill while stopped).
    #[arg(long, value_name = "0.0..1.0", default_value_t = 0.3)]
    pub stop_probability: f64,
    /// Longest SIGSTOP pause.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub max_stop: Duration,
    /// Messages per second over the four producers (framed keyed, framed keyless, gRPC keyed,
    /// gRPC unkeyed).
    #[arg(long, value_name = "MSGS_PER_SEC", default_value_t = 1000.0)]
    pub rate: f64,
    /// Consumer groups (one member each) consuming and committing the topic.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub groups: usize,
    /// The broker's `--segment-size` (small, so runs cross many segment rolls).
    #[arg(long, value_name = "BYTES", default_value = "128KiB")]
    pub segment_size: String,
    /// Further broker arguments, one per use (e.g. `--broker-arg=--durability=fsync`).
    #[arg(long = "broker-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub broker_args: Vec<String>,
    /// How long a restart (recovery included) may take before the run fails.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub start_timeout: Duration,
    /// How long, after a restart, messages may take to be answered and groups to catch up.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "120s")]
    pub settle_timeout: Duration,
    /// The topic produced to.
    #[arg(long, default_value = "chaos")]
    pub topic: String,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress line per cycle.
    #[arg(long)]
    pub quiet: bool,
}

impl ChaosArgs {
    pub fn config(&self) -> ChaosConfig {
        let mut extra_args = vec!["--segment-size".to_string(), self.segment_size.clone()];
        extra_args.extend(self.broker_args.iter().cloned());
        ChaosConfig {
            broker: BrokerSpec {
                bin: self.broker_bin.clone(),
                data_dir: self.data_dir.clone(),
                shards: self.shards,
                extra_args,
                start_timeout: self.start_timeout,
            },
            topic: self.topic.clone(),
            cycles: self.cycles,
            seed: self.seed,
            min_run: self.min_run,
            max_run: self.max_run,
            stop_probability: self.stop_probability,
            max_stop: self.max_stop,
            rate: self.rate,
            groups: self.groups,
            settle_timeout: self.settle_timeout,
            max_pad: 200,
            quiet: self.quiet,
        }
    }
}

/// Exit 0 when every check passed, 3 on a violation, 1 when the run could not go on, 2 on bad
/// flags.
pub fn run(args: ChaosArgs) -> ExitCode {
    let config = args.config();
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let summary = match chaos::run(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        match serde_json::to_string(&summary) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("error: cannot encode the summary: {e}"),
        }
    } else {
        print!("{}", summary.to_text());
    }
    if summary.violations > 0 {
        eprintln!(
            "error: {} violations (seed {})",
            summary.violations, summary.seed
        );
        ExitCode::from(EXIT_VERIFY_FAILED)
    } else if let Some(f) = &summary.failure {
        eprintln!("error: the run stopped: {f}");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
