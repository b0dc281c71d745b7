//! The command line: one subcommand per workload, with the flags every workload shares
//! ([`Common`]) flattened into each.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::payload::{PayloadSpec, DEFAULT_SEED};
use crate::produce::{self, KeyOrder, ProduceConfig, Stop};

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
    /// Stop after this many messages in total (warmup included).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Stop after this long (warmup included), e.g. `30s`, `2m`. The default without --messages.
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
    /// Read everything acknowledged back and check it (needs the consumer API).
    #[arg(long)]
    pub verify: bool,
}

/// A parsed `--cpus` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic to produce to (named once per connection, in STARTUP).
    #[arg(long, default_value = "perf")]
    pub topic: String,
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
    /// Send a timestamp in every frame (flag 0x01).
    #[arg(long)]
    pub timestamps: bool,
    /// Seed of the payload generator.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// A connection with frames in flight and no answer for this long has failed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub response_timeout: Duration,
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
        let c = &self.common;
        ProduceConfig {
            addr: c.framed.clone(),
            topic: self.topic.clone(),
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
            ledger: c.verify,
            response_timeout: self.response_timeout,
            ..ProduceConfig::default()
        }
    }
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

/// The message `--verify` answers with until the broker serves the consumer API.
pub const VERIFY_UNAVAILABLE: &str = "--verify reads every acknowledged message back through the \
broker's consumer API (register, poll), which shardlog does not serve yet; run without --verify";

/// Runs the command; the exit code is 0 on success, 1 when the run failed, 2 on bad usage.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Produce(args) => {
            if args.common.verify {
                eprintln!("error: {VERIFY_UNAVAILABLE}");
                return ExitCode::from(2);
            }
            let mut cfg = args.config();
            cfg.interrupt = Some(&INTERRUPTED);
            if let Err(e) = cfg.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            catch_sigint();
            match produce::run(cfg) {
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
                Ok(outcome) => {
                    let report = &outcome.report;
                    if args.common.json {
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
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("shardlog-perf").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let Command::Produce(p) = parse(&["produce"]).unwrap().command;
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
        .command;
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
    fn bad_input_is_rejected_clearly() {
        assert!(parse(&["produce", "--messages", "5", "--duration", "1s"]).is_err());
        assert!(parse(&["produce", "--duration", "soon"]).is_err());
        assert!(parse(&["produce", "--cpus", "a"]).is_err());
        assert!(parse(&["produce", "--cpus", "3-1"]).is_err());
        let bad = |args: &[&str]| {
            let Command::Produce(p) = parse(args).unwrap().command;
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
