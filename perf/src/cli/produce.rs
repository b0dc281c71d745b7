//! `produce`: the producer's flags (shared with `e2e`), and `--verify`'s read-back after the run.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::client::session::Transport;
use crate::payload::{PayloadKind, PayloadSpec, DEFAULT_SEED};
use crate::run::{KeyOrder, Stop};
use crate::verify::{AckLedger, Checker, ReadBack, VerifyResult};
use crate::workload::produce::{ProduceConfig, ProduceOutcome, SentMessages};

use super::common::{fresh_group, Common};
use super::{launch, prepare, print_report};

/// Exit code of a `--verify` run whose read-back found a problem.
pub const EXIT_VERIFY_FAILED: u8 = 3;

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
    /// What the messages look like: JSON events, plain-text log lines, or random bytes.
    #[arg(long, value_enum, default_value = "json")]
    pub payload: PayloadKind,
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
    /// Compress each frame's records here at this zstd level and send them as a compressed
    /// PRODUCE (flag 0x08): the broker checks and stores them instead of compressing.
    #[arg(long, value_name = "LEVEL", allow_hyphen_values = true)]
    pub producer_compress: Option<i32>,
    /// Seed of the payload generator.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// After producing, read everything back through the consumer API (a fresh group) and
    /// check every acknowledged message is there once, in order per key (`produce` only).
    #[arg(long)]
    pub verify: bool,
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
                kind: self.payload,
            },
            keys: self.keys,
            key_order: self.key_order,
            stop: Stop::from_flags(c.messages, c.duration),
            rate: self.rate,
            timestamps: self.timestamps,
            producer_compress: self.producer_compress,
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

/// `produce`, then (with `--verify`) the read-back and its verdict (exit 3 when it fails).
pub(super) fn run(args: ProduceArgs) -> ExitCode {
    let cfg = match prepare(args.config()) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
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
    let mut outcome: ProduceOutcome = match launch(cfg) {
        Err(code) => return code,
        Ok(o) => o,
    };
    let mut verdict = None;
    if let (Some(rb), Some(ledger), Some(sent)) = (&read_back, &outcome.ledger, &outcome.sent) {
        let started = Instant::now();
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

fn verify(rb: &ReadBack, ledger: &AckLedger, sent: &SentMessages) -> Result<VerifyResult, String> {
    let expected = |f: u64, i: u16| sent.message(f, i);
    let mut checker = Checker::new(ledger, &expected, sent.tag_positions.clone());
    rb.read(&mut checker)?;
    Ok(checker.finish())
}
