//! `chaos`: a crash loop under load. It starts the broker itself, drives producers (framed
//! keyed and keyless through `shardlog-client`'s `Producer`, gRPC keyed and unkeyed) and
//! consumer groups, and kills the broker with SIGKILL at seeded random moments (sometimes after
//! a SIGSTOP pause, sometimes while stopped), restarting it each time. After every restart the
//! producers are held, every outstanding message is answered, and the whole topic is read
//! back and checked against what the clients were told ([`check`]); the groups must catch up
//! with the log without a gap ([`groups`]). Any violation ends the run with the seed, the
//! cycle and the details.
//!
//! - [`broker`]: the broker process (start, kill, stop, resume, restart).
//! - [`ledger`]: every message's id and what the client was told about it.
//! - [`load`]: the producer tasks. [`groups`]: the consumer-group members and their checks.
//! - [`check`]: the read-back and its checks. [`summary`]: the outcome.

pub mod broker;
pub mod check;
pub mod groups;
pub mod ledger;
pub mod load;
pub mod summary;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shardlog_client::{Admin, ClientError, Producer};

use broker::{Broker, BrokerSpec};
use groups::GroupTracker;
use ledger::{lock, Ledger, State};
use load::LoadContext;
use summary::{quantile_ms, Summary};

/// Why a chaos run could not go on (violations are findings, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("broker start: {0}")]
    Start(String),
    #[error("client: {0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Invalid(String),
}

/// A chaos run's settings.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub broker: BrokerSpec,
    pub topic: String,
    pub cycles: u32,
    pub seed: u64,
    /// Time the load runs between a restart's check and the next kill: uniform in this range.
    pub min_run: Duration,
    pub max_run: Duration,
    /// Chance that a cycle pauses the broker with SIGSTOP (for up to `max_stop`) before the kill.
    pub stop_probability: f64,
    pub max_stop: Duration,
    /// Messages per second over the four producers.
    pub rate: f64,
    pub groups: usize,
    /// How long outstanding messages may take to be answered after a restart, and groups to
    /// catch up.
    pub settle_timeout: Duration,
    pub max_pad: usize,
    /// No progress line per cycle.
    pub quiet: bool,
}

impl ChaosConfig {
    pub fn validate(&self) -> Result<(), ChaosError> {
        let bad = |m: &str| Err(ChaosError::Invalid(m.into()));
        if !self.broker.bin.is_file() {
            return bad(&format!(
                "--broker-bin {}: no such file",
                self.broker.bin.display()
            ));
        }
        if !(1..=64).contains(&self.broker.shards) {
            return bad("--shards must be 1 to 64");
        }
        if self.cycles == 0 {
            return bad("--cycles must be at least 1");
        }
        if self.min_run > self.max_run {
            return bad("--min-run must not exceed --max-run");
        }
        if !(0.0..=1.0).contains(&self.stop_probability) {
            return bad("--stop-probability must be 0.0 to 1.0");
        }
        if !(self.rate.is_finite() && self.rate >= 4.0) {
            return bad("--rate must be at least 4 messages per second");
        }
        if self
            .broker
            .data_dir
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
        {
            return bad(&format!(
                "--data-dir {} is not empty (a run starts from an empty broker)",
                self.broker.data_dir.display()
            ));
        }
        Ok(())
    }
}

/// Runs the crash loop; violations end it early and are in the summary.
pub fn run(config: ChaosConfig) -> Result<Summary, ChaosError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ChaosError::Io)?;
    rt.block_on(crash_loop(config))
}

/// Everything a run keeps while it goes.
struct Run {
    config: ChaosConfig,
    broker: Broker,
    admin: Admin,
    ledger: Arc<Mutex<Ledger>>,
    epoch: Arc<AtomicU32>,
    cycle: Arc<AtomicU32>,
    trackers: Vec<groups::SharedTracker>,
    layout: shardlog_wire::ring::TopicLayout,
    summary: Summary,
    restarts_ms: Vec<f64>,
}

async fn crash_loop(config: ChaosConfig) -> Result<Summary, ChaosError> {
    let started = Instant::now();
    std::fs::create_dir_all(&config.broker.data_dir).map_err(ChaosError::Io)?;
    let spec = config.broker.clone();
    let (broker, _) = tokio::task::block_in_place(|| Broker::start(spec))?;
    let admin = Admin::new(broker.http.clone());
    admin.create_topic(&config.topic, None).await?;
    let layout = admin.describe_topic(&config.topic).await?.layout;
    let stop = Arc::new(AtomicBool::new(false));
    let mut run = Run {
        summary: Summary {
            seed: config.seed,
            shards: config.broker.shards,
            ..Summary::default()
        },
        admin,
        ledger: Arc::new(Mutex::new(Ledger::new())),
        epoch: Arc::new(AtomicU32::new(0)),
        cycle: Arc::new(AtomicU32::new(0)),
        trackers: Vec::new(),
        layout,
        restarts_ms: Vec::new(),
        broker,
        config,
    };
    let ctx = LoadContext {
        topic: run.config.topic.clone(),
        framed: run.broker.framed.clone(),
        http: run.broker.http.clone(),
        ledger: run.ledger.clone(),
        epoch: run.epoch.clone(),
        stop: stop.clone(),
        rate_each: run.config.rate / 4.0,
        seed: run.config.seed,
        max_pad: run.config.max_pad,
    };
    let producer = Producer::new(load::producer_config(&ctx))?;
    producer.set_layout(&run.config.topic, layout);
    let mut tasks = load::spawn_all(&ctx, producer);
    for g in 0..run.config.groups {
        let tracker = Arc::new(Mutex::new(GroupTracker::new(
            &format!("chaos-{g}"),
            &layout,
            run.config.seed,
        )));
        run.trackers.push(tracker.clone());
        tasks.push(tokio::spawn(groups::member(
            ctx.framed.clone(),
            ctx.topic.clone(),
            tracker,
            run.cycle.clone(),
            stop.clone(),
        )));
    }
    let outcome = run.cycles().await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.abort();
    }
    let mut s = run.summary;
    if let Err(e) = outcome {
        s.failure = Some(e.to_string());
    }
    let l = lock(&run.ledger);
    s.acknowledged = l.count(State::Acked);
    s.maybe = l.count(State::Maybe);
    s.maybe_stored = l
        .producers
        .iter()
        .flatten()
        .filter(|e| e.state == State::Maybe && e.pinned.is_some())
        .count() as u64;
    s.redeliveries = run
        .trackers
        .iter()
        .map(|t| groups::lock(t).redeliveries)
        .sum();
    s.restart_ms_p50 = quantile_ms(&run.restarts_ms, 0.5);
    s.restart_ms_p99 = quantile_ms(&run.restarts_ms, 0.99);
    s.restart_ms_max = quantile_ms(&run.restarts_ms, 1.0);
    s.duration_s = started.elapsed().as_secs_f64();
    Ok(s)
}

impl Run {
    async fn cycles(&mut self) -> Result<(), ChaosError> {
        let mut rng = SmallRng::seed_from_u64(self.config.seed);
        for c in 1..=self.config.cycles {
            self.cycle.store(c, Ordering::SeqCst);
            self.load_then_kill(&mut rng).await?;
            let spec_bin = self.config.broker.bin.clone();
            let took = tokio::task::block_in_place(|| self.broker.restart()).map_err(|e| {
                ChaosError::Start(format!(
                    "seed {} cycle {c}: restart of {} failed: {e}",
                    self.config.seed,
                    spec_bin.display()
                ))
            })?;
            // Back up: an even epoch again.
            self.epoch.fetch_add(1, Ordering::SeqCst);
            self.restarts_ms.push(took.as_secs_f64() * 1e3);
            let found = self.check(c).await?;
            self.summary.cycles = c;
            if !self.config.quiet {
                eprintln!(
                    "cycle {c}/{}: restart {:.0} ms, {} records, {} acknowledged verified, {} duplicates, {} violations",
                    self.config.cycles,
                    took.as_secs_f64() * 1e3,
                    self.summary.records,
                    self.summary.verified,
                    self.summary.duplicates,
                    found
                );
            }
            if found > 0 {
                break;
            }
        }
        Ok(())
    }

    /// Lets the load run for a random time, maybe with a SIGSTOP pause, then SIGKILLs.
    async fn load_then_kill(&mut self, rng: &mut SmallRng) -> Result<(), ChaosError> {
        let cfg = &self.config;
        let run_for = rng.gen_range(cfg.min_run..=cfg.max_run);
        if rng.gen_bool(cfg.stop_probability) {
            let before = rng.gen_range(Duration::ZERO..=run_for);
            let pause = rng
                .gen_range(Duration::from_millis(10)..=cfg.max_stop.max(Duration::from_millis(10)));
            let kill_stopped = rng.gen_bool(0.25);
            tokio::time::sleep(before).await;
            self.broker.stop()?;
            self.summary.stops += 1;
            tokio::time::sleep(pause).await;
            if kill_stopped {
                self.summary.kills_while_stopped += 1;
            } else {
                self.broker.resume()?;
                tokio::time::sleep(run_for - before).await;
            }
        } else {
            tokio::time::sleep(run_for).await;
        }
        // Down: an odd epoch until the restarted broker is ready.
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.broker.kill()
    }

    /// Holds the producers, waits for every answer, reads the topic back and checks it and
    /// the groups; returns the number of violations found (also printed and summarised).
    async fn check(&mut self, cycle: u32) -> Result<usize, ChaosError> {
        lock(&self.ledger).paused = true;
        let deadline = Instant::now() + self.config.settle_timeout;
        let mut violations = Vec::new();
        loop {
            let outstanding = lock(&self.ledger).outstanding;
            if outstanding == 0 {
                break;
            }
            if Instant::now() > deadline {
                violations.push(format!(
                    "{outstanding} messages still unanswered {:?} after the restart",
                    self.config.settle_timeout
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let logs = check::read_back(
            &self.broker.framed,
            &self.admin,
            &self.config.topic,
            &mut violations,
        )
        .await?;
        let found = check::check_log(&mut lock(&self.ledger), &logs, &self.layout);
        violations.extend(found.violations);
        self.summary.duplicates = found.duplicates;
        self.summary.reordered_by_retry = found.reordered;
        self.summary.verified = found.verified;
        self.summary.records = found.records;
        let mut all: Vec<String> = violations
            .into_iter()
            .map(|v| format!("seed {} cycle {cycle}: {v}", self.config.seed))
            .collect();
        for t in &self.trackers {
            while !check::group_caught_up(&groups::lock(t), &logs) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut g = groups::lock(t);
            for v in check::check_group(&g, &logs) {
                g.violation(cycle, v);
            }
            all.append(&mut g.violations);
        }
        for v in &all {
            eprintln!("VIOLATION: {v}");
        }
        let n = all.len();
        self.summary.violations += n as u64;
        let room = 50usize.saturating_sub(self.summary.violation_list.len());
        self.summary
            .violation_list
            .extend(all.into_iter().take(room));
        lock(&self.ledger).paused = false;
        Ok(n)
    }
}
