//! The consume workload: consumers in one group poll a topic as fast as the broker answers.
//!
//! Each consumer (`{group}-c{i}`, so runs with different groups can share a broker) has its
//! own connection and thread: a connection serves consumer requests one at a time, so a
//! consumer is a blocking request/answer loop. All consumers register before any polls
//! (registering rebalances the group; a consumer polling before the others joined could see its
//! partitions move and read some of them twice). Then each POLLs with `max_wait_ms`,
//! decompresses every item's payload with zstd (one reused context per consumer, as a real
//! consumer would) and counts records, message bytes and wire bytes.
//!
//! The transport is behind [`ConsumerSession`] (`crate::client::session`): the framed protocol
//! or the HTTP consumer API.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use shardlog_wire::poll::parse_poll_response;
use shardlog_wire::startup::validate_topic;

use crate::client::error::ClientError;
use crate::client::poll::{content_size, for_each_record, Decoder};
use crate::client::session::{open_session, ConsumerSession, Start, Transport};
use crate::run::control::spawn_pinned;
use crate::run::report::settings;
use crate::run::{
    cpus, now_us, Collector, ConnStats, ErrorLog, Interval, Measured, Report, RunControl, Settings,
    SetupError, Workload,
};

/// Everything the workload needs.
#[derive(Debug, Clone)]
pub struct ConsumeConfig {
    pub transport: Transport,
    pub addr: String,
    pub topic: String,
    pub group: String,
    pub consumers: usize,
    pub start: Start,
    /// Long-poll wait per POLL (0: answer at once).
    pub max_wait_ms: u32,
    /// Decompress payloads and count records (false: count bytes only).
    pub decode: bool,
    /// Stop after this many messages consumed (all consumers together).
    pub messages: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop a consumer when two polls in a row bring nothing.
    pub until_empty: bool,
    /// Record end-to-end latency (arrival − record timestamp) instead of poll latency.
    pub e2e: bool,
    /// Once this turns true (the producer of an `e2e` run finished), stop when drained.
    pub producer_done: Option<Arc<AtomicBool>>,
    pub cpus: Option<Vec<usize>>,
    pub warmup: Duration,
    pub progress: bool,
    pub response_timeout: Duration,
    pub interrupt: Option<&'static AtomicBool>,
}

impl Default for ConsumeConfig {
    fn default() -> Self {
        ConsumeConfig {
            transport: Transport::Framed,
            addr: "127.0.0.1:9254".into(),
            topic: "perf".into(),
            group: "perf".into(),
            consumers: 1,
            start: Start::Earliest,
            max_wait_ms: 500,
            decode: true,
            messages: None,
            duration: None,
            until_empty: false,
            e2e: false,
            producer_done: None,
            cpus: None,
            warmup: Duration::ZERO,
            progress: true,
            response_timeout: Duration::from_secs(30),
            interrupt: None,
        }
    }
}

impl Workload for ConsumeConfig {
    const NAME: &'static str = "consume";
    type Outcome = ConsumeOutcome;

    fn validate(&self) -> Result<(), String> {
        if self.consumers == 0 {
            return Err("--consumers must be at least 1".into());
        }
        validate_topic(&self.topic).map_err(|e| format!("--topic: {e}"))?;
        shardlog_wire::consumer::validate_group(&self.group)
            .map_err(|e| format!("--group: {e}"))?;
        if self.messages == Some(0) {
            return Err("--messages must be at least 1".into());
        }
        if self.messages.is_some() && !self.decode {
            return Err("--messages counts records, which needs decoding: drop --no-decode".into());
        }
        if self.e2e && !self.decode {
            return Err(
                "end-to-end latency needs the records' timestamps: drop --no-decode".into(),
            );
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err("--duration must be longer than zero".into());
        }
        if self.messages.is_none()
            && self.duration.is_none()
            && !self.until_empty
            && self.producer_done.is_none()
            && self.interrupt.is_none()
        {
            return Err("say when to stop: --messages, --duration or --until-empty".into());
        }
        Ok(())
    }

    fn settings(&self) -> Settings {
        settings(serde_json::json!({
            "transport": self.transport.name(),
            "target": self.addr,
            "topic": self.topic,
            "group": self.group,
            "consumers": self.consumers,
            "start": match self.start { Start::Earliest => "earliest", Start::Latest => "latest" },
            "max_wait_ms": self.max_wait_ms,
            "decode": self.decode,
            "until_empty": self.until_empty,
            "warmup_s": self.warmup.as_secs_f64(),
        }))
    }

    fn stop_on(&mut self, flag: &'static AtomicBool) {
        self.interrupt = Some(flag);
    }

    fn run(self) -> Result<ConsumeOutcome, SetupError> {
        run(self, None)
    }
}

/// Byte counters beyond what [`Interval`] holds.
#[derive(Debug, Default)]
struct Counters {
    polls: AtomicU64,
    empty_polls: AtomicU64,
    items: AtomicU64,
    wire_bytes: AtomicU64,
    compressed_bytes: AtomicU64,
    /// Uncompressed chunk bytes (records with their 12-byte headers).
    raw_bytes: AtomicU64,
}

struct Shared {
    cfg: ConsumeConfig,
    ctl: RunControl,
    consumed: AtomicU64,
    errors: ErrorLog,
    counters: Counters,
}

impl Shared {
    fn stop_now(&self) -> bool {
        self.ctl.should_stop()
            || self
                .cfg
                .messages
                .is_some_and(|n| self.consumed.load(Ordering::Relaxed) >= n)
    }

    /// Whether two empty polls in a row end this consumer.
    fn drained_ends(&self) -> bool {
        self.cfg.until_empty
            || self
                .cfg
                .producer_done
                .as_ref()
                .is_some_and(|d| d.load(Ordering::SeqCst))
    }
}

/// What a consume run measured.
#[derive(Debug)]
pub struct ConsumeOutcome {
    pub report: Report,
    /// Poll latency (or end-to-end latency with `e2e`) and counts of the measured part.
    pub total: Interval,
}

impl AsRef<Report> for ConsumeOutcome {
    fn as_ref(&self) -> &Report {
        &self.report
    }
}

/// Runs the workload. `ready` is signalled once every consumer has registered (the `e2e`
/// workload starts producing then). Setup failures are `Err`; failures during the run are in
/// the report's `failure`.
pub fn run(
    cfg: ConsumeConfig,
    ready: Option<mpsc::Sender<()>>,
) -> Result<ConsumeOutcome, SetupError> {
    cfg.validate()?;
    cpus::pin(&cfg.cpus, 0);
    let topics = vec![cfg.topic.clone()];
    let mut consumers = Vec::with_capacity(cfg.consumers);
    for i in 0..cfg.consumers {
        let id = format!("{}-c{i}", cfg.group);
        let mut session = open_session(cfg.transport, &cfg.addr, cfg.response_timeout)
            .map_err(|e| format!("consumer {id}: cannot connect to {}: {e}", cfg.addr))?;
        session
            .register(&id, &cfg.group, &topics, cfg.start.policy())
            .map_err(|e| format!("consumer {id}: REGISTER failed: {e}"))?;
        consumers.push(Consumer { id, session });
    }
    if let Some(r) = ready {
        let _ = r.send(());
    }

    let started = Instant::now();
    let shared = Arc::new(Shared {
        ctl: RunControl::new(cfg.interrupt, cfg.duration.map(|d| started + d)),
        cfg,
        consumed: AtomicU64::new(0),
        errors: ErrorLog::default(),
        counters: Counters::default(),
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut stats = Vec::new();
    let mut handles = Vec::new();
    for (n, consumer) in consumers.into_iter().enumerate() {
        let st = Arc::new(ConnStats::default());
        stats.push(st.clone());
        let (sh, tx) = (shared.clone(), done_tx.clone());
        let cpus = shared.cfg.cpus.clone();
        handles.push(spawn_pinned(
            format!("consume-{n}"),
            cpus,
            1 + n,
            move || {
                consume_loop(&sh, consumer, &st);
                let _ = tx.send(());
            },
        ));
    }
    drop(done_tx);

    let mut collector = Collector::new(stats, started, shared.cfg.warmup, shared.cfg.progress)
        .with_label("consumed");
    collector.wait(&done_rx, handles.len(), || None);
    for h in handles {
        let _ = h.join();
    }
    let end = Instant::now();
    collector.finish(end);

    let measured = Measured::window(&collector.total, collector.measure_from(), end);
    let c = &shared.counters;
    let secs = measured.duration_s;
    let mut settings = shared.cfg.settings();
    let wire = c.wire_bytes.load(Ordering::Relaxed);
    settings.extend(crate::run::report::settings(serde_json::json!({
        "consumed": collector.all.acked_messages,
        "polls": c.polls.load(Ordering::Relaxed),
        "empty_polls": c.empty_polls.load(Ordering::Relaxed),
        "items": c.items.load(Ordering::Relaxed),
        "wire_bytes": wire,
        "compressed_bytes": c.compressed_bytes.load(Ordering::Relaxed),
        "raw_bytes": c.raw_bytes.load(Ordering::Relaxed),
        "wire_mb_per_sec": if shared.cfg.warmup.is_zero() { wire as f64 / secs / 1e6 } else { f64::NAN },
        "latency": if shared.cfg.e2e { "end-to-end" } else { "poll" },
        "interrupted": shared.ctl.interrupted(),
    })));
    // NaN is not JSON: drop the wire rate when a warmup makes it ambiguous.
    if settings.get("wire_mb_per_sec").is_some_and(|v| v.is_null()) {
        settings.remove("wire_mb_per_sec");
    }
    let report = Report {
        workload: ConsumeConfig::NAME.into(),
        measured,
        settings,
        error_codes: shared.errors.by_code(),
        failure: shared.ctl.failure(),
    };
    Ok(ConsumeOutcome {
        report,
        total: collector.total,
    })
}

/// A registered consumer and its connection.
struct Consumer {
    id: String,
    session: Box<dyn ConsumerSession>,
}

/// What one poll brought, decoded.
#[derive(Default)]
struct Decoded {
    records: u64,
    /// Message bytes.
    bytes: u64,
    /// End-to-end latency of each record (μs), with `e2e`.
    e2e_us: Vec<u64>,
}

fn consume_loop(shared: &Shared, consumer: Consumer, stats: &ConnStats) {
    let Consumer { id, mut session } = consumer;
    let id = id.as_str();
    let cfg = &shared.cfg;
    let mut decoder = Decoder::new();
    let mut empties = 0;
    let wait = (cfg.max_wait_ms > 0).then_some(cfg.max_wait_ms);
    let c = &shared.counters;
    while !shared.stop_now() {
        let drained_ends = shared.drained_ends();
        let sent = Instant::now();
        let polled = match session.poll(id, wait) {
            Ok(p) => p,
            Err(e) => {
                if let ClientError::Refused { code, message } = &e {
                    shared.errors.report(*code, message, true);
                    stats.with(|i| i.record_error(0, Instant::now()));
                }
                shared.ctl.fail(format!("consumer {id}: POLL failed: {e}"));
                break;
            }
        };
        let arrived = Instant::now();
        let arrived_us = now_us();
        c.polls.fetch_add(1, Ordering::Relaxed);
        c.wire_bytes.fetch_add(polled.wire_bytes, Ordering::Relaxed);
        let body = polled.body;
        if body.len() <= 2 {
            c.empty_polls.fetch_add(1, Ordering::Relaxed);
            empties += 1;
            if drained_ends && empties >= 2 {
                break;
            }
            continue;
        }
        empties = 0;
        let mut decoded = Decoded::default();
        let result = if cfg.decode {
            for_each_record(&mut decoder, body, |_, _, ts, b| {
                decoded.bytes += b.len() as u64;
                if cfg.e2e {
                    decoded.e2e_us.push((arrived_us - ts).max(1) as u64);
                }
            })
        } else {
            Ok(0)
        };
        decoded.records = match result {
            Ok(n) => n,
            Err(e) => {
                shared.ctl.fail(format!("consumer {id}: {e}"));
                break;
            }
        };
        // Bytes of the items, whether decoded or not.
        if let Ok(items) = parse_poll_response(body) {
            c.items.fetch_add(items.len() as u64, Ordering::Relaxed);
            for it in &items {
                c.compressed_bytes
                    .fetch_add(it.payload.len() as u64, Ordering::Relaxed);
                c.raw_bytes
                    .fetch_add(content_size(it.payload), Ordering::Relaxed);
            }
            if !cfg.decode {
                let raw: u64 = items.iter().map(|it| content_size(it.payload)).sum();
                stats.with(|i| i.record_ack(arrived - sent, 0, raw, arrived));
                continue;
            }
        }
        shared
            .consumed
            .fetch_add(decoded.records, Ordering::Relaxed);
        stats.with(|i| {
            if cfg.e2e {
                for us in &decoded.e2e_us {
                    i.record_ack(Duration::from_micros(*us), 1, 0, arrived);
                }
                i.acked_bytes += decoded.bytes;
            } else {
                i.record_ack(arrived - sent, decoded.records, decoded.bytes, arrived);
            }
        });
    }
    if let Err(e) = session.goodbye(id) {
        if !shared.ctl.aborted() {
            shared
                .ctl
                .fail(format!("consumer {id}: GOODBYE failed: {e}"));
        }
    }
}
