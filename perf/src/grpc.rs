//! The gRPC workloads against `atomix.log.LogService` on the broker's HTTP port.
//!
//! The client is tonic's generic one (`tonic::client::Grpc` over a `Channel`, the prost codec)
//! with the broker's own prost message types ([`shardlog::proto::log`]), as the broker's
//! end-to-end tests use it: an independent HTTP/2 + gRPC implementation facing the broker's
//! hand-written one. It runs on a tokio multi-thread runtime whose workers are pinned to
//! `--cpus` (one worker per CPU listed).
//!
//! - **`grpc-produce`**: `--connections` HTTP/2 connections, each carrying `--streams`
//!   concurrent tasks; a task makes one `Produce` call after another, each streaming
//!   `--values-per-call` values, half-closing and awaiting the single `ProduceResponse` (the
//!   broker answers once every value is durable). A call's latency runs from its start to its
//!   response; `acked` counts the values of calls answered OK, `errors` the calls that ended with
//!   another status. This is how a gRPC producer uses the API: the broker appends the values that
//!   arrive together as one frame, so a call of many values is the unit of work, as a PRODUCE
//!   frame is for `produce` (`--streams` ~ `--in-flight`, `--values-per-call` ~
//!   `--messages-per-frame`).
//! - **`grpc-consume`**: one `Consume{offset}` call per partition (`partition` metadata), each on
//!   its own connection, counting records and value bytes until `--messages`, `--duration` or
//!   `--until-idle` (no record for that long on a stream). The latency recorded is each
//!   record's age when it arrived (arrival − its broker timestamp): the end-to-end latency when
//!   tailing, the backlog's age when draining.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use shardlog::proto::log::{ConsumeRequest, LogRecord, ProduceRequest, ProduceResponse};
use shardlog::wire::startup::validate_topic;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::tokio_stream;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::payload::{MessagePool, PayloadSpec, DEFAULT_POOL};
use crate::produce::{KeyOrder, Stop};
use crate::stats::{Collector, ConnStats, Interval, Measured, Report};

const PRODUCE_PATH: &str = "/atomix.log.LogService/Produce";
const CONSUME_PATH: &str = "/atomix.log.LogService/Consume";

/// A stream whose calls all fail this many times in a row (and never succeeded) ends the run:
/// the broker is refusing everything, counting more errors measures nothing.
const MAX_CONSECUTIVE_ERRORS: u32 = 100;

/// Non-OK statuses: counted per code, each distinct message printed once (at most 20).
#[derive(Debug, Default)]
pub struct StatusLog {
    inner: Mutex<StatusLogInner>,
}

#[derive(Debug, Default)]
struct StatusLogInner {
    by_code: BTreeMap<String, u64>,
    seen: std::collections::HashSet<(i32, String)>,
    printed: usize,
}

impl StatusLog {
    pub fn report(&self, status: &Status, print: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.by_code.entry(code_key(status.code())).or_default() += 1;
        if inner.seen.len() < 1000
            && inner
                .seen
                .insert((status.code() as i32, status.message().to_string()))
            && print
            && inner.printed < 20
        {
            inner.printed += 1;
            eprintln!(
                "grpc status {}: {}",
                code_key(status.code()),
                status.message()
            );
        }
    }

    pub fn by_code(&self) -> BTreeMap<String, u64> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_code
            .clone()
    }
}

/// `unavailable(14)`.
fn code_key(code: Code) -> String {
    let name = format!("{code:?}");
    let mut snake = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(ch.to_ascii_lowercase());
    }
    format!("{snake}({})", code as i32)
}

/// A tokio runtime with one worker per CPU of `cpus` (each pinned to its CPU), or tokio's
/// default (one per core, unpinned).
fn runtime(cpus: &Option<Vec<usize>>) -> Result<tokio::runtime::Runtime, String> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().thread_name("grpc-worker");
    if let Some(cpus) = cpus.clone() {
        b.worker_threads(cpus.len());
        let next = Arc::new(AtomicUsize::new(0));
        b.on_thread_start(move || {
            let n = next.fetch_add(1, Ordering::Relaxed);
            core_affinity::set_for_current(core_affinity::CoreId {
                id: cpus[n % cpus.len()],
            });
        });
    }
    b.build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))
}

fn validate_cpus(cpus: &Option<Vec<usize>>) -> Result<(), String> {
    if let Some(cpus) = cpus {
        if cpus.is_empty() {
            return Err("--cpus names no CPU".into());
        }
        let available: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if let Some(bad) = cpus.iter().find(|c| !available.contains(c)) {
            return Err(format!(
                "--cpus: CPU {bad} is not available to this process (available: {available:?})"
            ));
        }
    }
    Ok(())
}

/// One HTTP/2 connection to the broker's HTTP port.
async fn connect(addr: &str, timeout: Duration, window: Option<u32>) -> Result<Channel, String> {
    let endpoint = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(window)
        .initial_connection_window_size(window.map(|w| w.saturating_mul(4)));
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e} ({e:?})"))
}

fn ascii(v: &str, what: &str) -> Result<AsciiMetadataValue, String> {
    AsciiMetadataValue::try_from(v).map_err(|_| format!("{what} is not valid metadata: {v:?}"))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn json_object(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("a json! object"),
    }
}

/// Runs the collector on this thread until `running` tasks have said they are done (or
/// `give_up` passes), ticking once a second.
fn collect(
    collector: &mut Collector,
    done: &mpsc::Receiver<()>,
    mut running: usize,
    started: Instant,
    give_up: impl Fn() -> Option<Instant>,
) -> Instant {
    let mut last_tick = started;
    while running > 0 {
        let now = Instant::now();
        let mut next = collector.next_tick(now);
        if let Some(g) = give_up() {
            if now >= g {
                break;
            }
            next = next.min(g);
        }
        match done.recv_timeout(next.saturating_duration_since(now)) {
            Ok(()) => running -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if now >= collector.next_tick(last_tick) {
                    collector.tick(now, last_tick);
                    last_tick = now;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    last_tick
}

// ------------------------------------------------------------------------------------------
// grpc-produce

/// Which partition each call addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// No metadata: partition 0.
    Default,
    /// `partition-key: key-{i}`, one of `keys` per call.
    Keys { keys: usize, order: KeyOrder },
    /// `partition: N`.
    Partition(u32),
    /// `partition: call % N`.
    Spread(u32),
}

#[derive(Debug, Clone)]
pub struct GrpcProduceConfig {
    pub addr: String,
    pub topic: String,
    pub connections: usize,
    /// Concurrent calls per connection.
    pub streams: usize,
    pub values_per_call: usize,
    pub payload: PayloadSpec,
    pub routing: Routing,
    pub stop: Stop,
    pub cpus: Option<Vec<usize>>,
    pub warmup: Duration,
    pub progress: bool,
    /// A call unanswered this long fails the run.
    pub response_timeout: Duration,
    /// After a `Duration` run (or an interrupt), how long to wait for the calls in flight.
    pub drain_timeout: Duration,
    pub interrupt: Option<&'static AtomicBool>,
}

impl Default for GrpcProduceConfig {
    fn default() -> Self {
        GrpcProduceConfig {
            addr: "127.0.0.1:9252".into(),
            topic: "perf".into(),
            connections: 4,
            streams: 16,
            values_per_call: 64,
            payload: PayloadSpec::default(),
            routing: Routing::Default,
            stop: Stop::Duration(Duration::from_secs(30)),
            cpus: None,
            warmup: Duration::ZERO,
            progress: true,
            response_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            interrupt: None,
        }
    }
}

impl GrpcProduceConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.streams == 0 || self.streams > 256 {
            return Err(
                "--streams must be between 1 and 256 (the broker's concurrent streams per connection)"
                    .into(),
            );
        }
        if self.values_per_call == 0 {
            return Err("--values-per-call must be at least 1".into());
        }
        if self.payload.size == 0 {
            return Err("--message-size must be at least 1 byte".into());
        }
        if !(0.0..=1.0).contains(&self.payload.randomness) {
            return Err("--randomness must be between 0.0 and 1.0".into());
        }
        validate_topic(&self.topic).map_err(|e| format!("--topic: {e}"))?;
        match self.stop {
            Stop::Messages(0) => return Err("--messages must be at least 1".into()),
            Stop::Duration(d) if d.is_zero() => {
                return Err("--duration must be longer than zero".into())
            }
            _ => {}
        }
        validate_cpus(&self.cpus)
    }

    fn total_calls(&self) -> Option<u64> {
        match self.stop {
            Stop::Messages(n) => Some(n.div_ceil(self.values_per_call as u64)),
            Stop::Duration(_) => None,
        }
    }

    fn values_in(&self, call: u64) -> usize {
        let vpc = self.values_per_call as u64;
        match self.stop {
            Stop::Messages(n) => (n - call * vpc).min(vpc) as usize,
            Stop::Duration(_) => vpc as usize,
        }
    }

    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        let (keys, key_order, partition, spread) = match &self.routing {
            Routing::Default => (0, None, None, 0),
            Routing::Keys { keys, order } => (
                *keys,
                Some(match order {
                    KeyOrder::RoundRobin => "round-robin",
                    KeyOrder::Random => "random",
                }),
                None,
                0,
            ),
            Routing::Partition(p) => (0, None, Some(*p), 0),
            Routing::Spread(n) => (0, None, None, *n),
        };
        json_object(serde_json::json!({
            "mode": "closed-loop",
            "connections": self.connections,
            "streams": self.streams,
            "values_per_call": self.values_per_call,
            "message_size": self.payload.size,
            "randomness": self.payload.randomness,
            "keys": keys,
            "key_order": key_order,
            "partition": partition,
            "spread": spread,
            "topic": self.topic,
            "warmup_s": self.warmup.as_secs_f64(),
            "target": self.addr,
            "latency": "call",
        }))
    }
}

struct ProduceState {
    cfg: GrpcProduceConfig,
    /// The payload pool as `Bytes`, so a value costs a reference count, not a copy.
    values: Vec<Bytes>,
    topic: AsciiMetadataValue,
    keys: Vec<AsciiMetadataValue>,
    partition: Option<AsciiMetadataValue>,
    next_call: AtomicU64,
    total_calls: Option<u64>,
    deadline: Option<Instant>,
    /// Calls started and not yet answered.
    in_flight: AtomicU64,
    abort: AtomicBool,
    failure: Mutex<Option<String>>,
    errors: StatusLog,
}

impl ProduceState {
    fn fail(&self, what: String) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(what);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    fn interrupted(&self) -> bool {
        self.cfg
            .interrupt
            .is_some_and(|i| i.load(Ordering::Relaxed))
    }

    fn stop_sending(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
            || self.interrupted()
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn metadata(&self, call: u64) -> MetadataMap {
        let mut md = MetadataMap::new();
        md.insert("topic", self.topic.clone());
        if let Some(p) = &self.partition {
            md.insert("partition", p.clone());
        } else if let Routing::Spread(n) = self.cfg.routing {
            let p = call % u64::from(n);
            md.insert("partition", AsciiMetadataValue::from(p));
        } else if let Routing::Keys { keys, order } = &self.cfg.routing {
            let n = *keys as u64;
            let k = match order {
                KeyOrder::RoundRobin => call % n,
                KeyOrder::Random => crate::produce::splitmix64(call ^ self.cfg.payload.seed) % n,
            };
            md.insert("partition-key", self.keys[k as usize].clone());
        }
        md
    }
}

/// Runs `grpc-produce`. Setup failures (no connection) are `Err`; failures during the run are
/// in the report's `failure`.
pub fn run_produce(cfg: GrpcProduceConfig) -> Result<Report, String> {
    cfg.validate()?;
    let pool = MessagePool::generate(cfg.payload, DEFAULT_POOL);
    let values = (0..pool.len())
        .map(|i| Bytes::copy_from_slice(pool.get(i)))
        .collect();
    let keys = match &cfg.routing {
        Routing::Keys { keys, .. } => (0..*keys)
            .map(|k| ascii(&format!("key-{k}"), "key"))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let partition = match &cfg.routing {
        Routing::Partition(p) => Some(ascii(&p.to_string(), "partition")?),
        _ => None,
    };
    let rt = runtime(&cfg.cpus)?;
    let channels = rt.block_on(async {
        let mut chans = Vec::with_capacity(cfg.connections);
        for _ in 0..cfg.connections {
            chans.push(connect(&cfg.addr, Duration::from_secs(10), None).await?);
        }
        Ok::<_, String>(chans)
    })?;

    let started = Instant::now();
    let state = Arc::new(ProduceState {
        topic: ascii(&cfg.topic, "--topic")?,
        keys,
        partition,
        values,
        next_call: AtomicU64::new(0),
        total_calls: cfg.total_calls(),
        deadline: match cfg.stop {
            Stop::Duration(d) => Some(started + d),
            Stop::Messages(_) => None,
        },
        in_flight: AtomicU64::new(0),
        abort: AtomicBool::new(false),
        failure: Mutex::new(None),
        errors: StatusLog::default(),
        cfg,
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut stats = Vec::new();
    let mut tasks = 0;
    for (conn, channel) in channels.into_iter().enumerate() {
        let st = Arc::new(ConnStats::default());
        stats.push(st.clone());
        for _ in 0..state.cfg.streams {
            let (state, st, tx) = (state.clone(), st.clone(), done_tx.clone());
            let grpc = tonic::client::Grpc::new(channel.clone());
            rt.spawn(async move {
                produce_task(&state, conn, grpc, &st).await;
                let _ = tx.send(());
            });
            tasks += 1;
        }
    }
    drop(done_tx);

    let mut collector = Collector::new(stats, started, state.cfg.warmup, state.cfg.progress);
    let give_up = {
        let state = state.clone();
        let stopped_at = Mutex::new(None::<Instant>);
        move || {
            let mut s = stopped_at.lock().unwrap_or_else(|p| p.into_inner());
            if s.is_none() && state.stop_sending() {
                *s = Some(Instant::now());
            }
            s.map(|t| t + state.cfg.drain_timeout)
        }
    };
    let last_tick = collect(&mut collector, &done_rx, tasks, started, give_up);
    let end = Instant::now();
    collector.finish(end, last_tick);
    rt.shutdown_timeout(Duration::from_millis(200));

    let from = collector.measure_from();
    let until = collector.total.last_answer.unwrap_or(end).max(from);
    let measured = Measured::from_interval(&collector.total, until - from);
    let mut settings = state.cfg.settings();
    settings.extend(json_object(serde_json::json!({
        "calls": collector.all.acked_frames + collector.all.errors,
        "unanswered_calls": state.in_flight.load(Ordering::Relaxed),
        "produced": collector.all.acked_messages,
        "interrupted": state.interrupted(),
    })));
    let failure = state
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Report {
        workload: "grpc-produce".into(),
        measured,
        settings,
        error_codes: state.errors.by_code(),
        failure,
    })
}

async fn produce_task(
    state: &Arc<ProduceState>,
    conn: usize,
    mut grpc: tonic::client::Grpc<Channel>,
    stats: &ConnStats,
) {
    let cfg = &state.cfg;
    let vpc = cfg.values_per_call as u64;
    let (mut consecutive_errors, mut any_ok) = (0u32, false);
    while !state.stop_sending() {
        let call = state.next_call.fetch_add(1, Ordering::Relaxed);
        if state.total_calls.is_some_and(|t| call >= t) {
            break;
        }
        let n = cfg.values_in(call);
        let first = (call * vpc) as usize;
        let values: Vec<Bytes> = (0..n)
            .map(|i| state.values[(first + i) % state.values.len()].clone())
            .collect();
        let bytes: u64 = values.iter().map(|v| v.len() as u64).sum();
        let mut req = Request::new(tokio_stream::iter(
            values.into_iter().map(|value| ProduceRequest { value }),
        ));
        *req.metadata_mut() = state.metadata(call);

        state.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let answer = tokio::time::timeout(cfg.response_timeout, async {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
            grpc.client_streaming(
                req,
                PathAndQuery::from_static(PRODUCE_PATH),
                ProstCodec::<ProduceRequest, ProduceResponse>::default(),
            )
            .await
        })
        .await;
        state.in_flight.fetch_sub(1, Ordering::Relaxed);
        let now = Instant::now();
        match answer {
            Err(_) => {
                state.fail(format!(
                    "connection {conn}: a Produce call had no answer for {:?}",
                    cfg.response_timeout
                ));
                break;
            }
            Ok(Ok(_)) => {
                any_ok = true;
                consecutive_errors = 0;
                stats.with(|i| i.record_ack(now - started, n as u64, bytes, now));
            }
            Ok(Err(status)) => {
                state.errors.report(&status, true);
                stats.with(|i| i.record_error(n as u64, now));
                consecutive_errors += 1;
                if !any_ok && consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    state.fail(format!(
                        "connection {conn}: {consecutive_errors} Produce calls in a row failed, the last with {}: {}",
                        code_key(status.code()),
                        status.message()
                    ));
                    break;
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// grpc-consume

#[derive(Debug, Clone)]
pub struct GrpcConsumeConfig {
    pub addr: String,
    pub topic: String,
    /// One Consume stream per partition.
    pub partitions: Vec<u32>,
    pub from_offset: u64,
    /// Stop after this many records (all streams together).
    pub messages: Option<u64>,
    pub duration: Option<Duration>,
    /// End a stream after this long without a record.
    pub until_idle: Option<Duration>,
    pub cpus: Option<Vec<usize>>,
    pub warmup: Duration,
    pub progress: bool,
    /// How long the call may take to be accepted (response headers).
    pub response_timeout: Duration,
    pub interrupt: Option<&'static AtomicBool>,
}

impl Default for GrpcConsumeConfig {
    fn default() -> Self {
        GrpcConsumeConfig {
            addr: "127.0.0.1:9252".into(),
            topic: "perf".into(),
            partitions: vec![0],
            from_offset: 0,
            messages: None,
            duration: None,
            until_idle: None,
            cpus: None,
            warmup: Duration::ZERO,
            progress: true,
            response_timeout: Duration::from_secs(30),
            interrupt: None,
        }
    }
}

impl GrpcConsumeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.partitions.is_empty() {
            return Err("--partitions names no partition".into());
        }
        let mut seen = self.partitions.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.partitions.len() {
            return Err("--partitions names a partition twice".into());
        }
        validate_topic(&self.topic).map_err(|e| format!("--topic: {e}"))?;
        if self.messages == Some(0) {
            return Err("--messages must be at least 1".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err("--duration must be longer than zero".into());
        }
        if self.until_idle.is_some_and(|d| d.is_zero()) {
            return Err("--until-idle must be longer than zero".into());
        }
        if self.messages.is_none() && self.duration.is_none() && self.until_idle.is_none() {
            return Err("say when to stop: --messages, --duration or --until-idle".into());
        }
        validate_cpus(&self.cpus)
    }

    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        json_object(serde_json::json!({
            "partitions": self.partitions,
            "from_offset": self.from_offset,
            "topic": self.topic,
            "until_idle_s": self.until_idle.map(|d| d.as_secs_f64()),
            "warmup_s": self.warmup.as_secs_f64(),
            "target": self.addr,
            "latency": "record-age",
        }))
    }
}

struct ConsumeState {
    cfg: GrpcConsumeConfig,
    topic: AsciiMetadataValue,
    consumed: AtomicU64,
    deadline: Option<Instant>,
    /// Records whose offset was not the one after the previous record of their stream.
    offset_gaps: AtomicU64,
    /// Per partition: the offset after the last record read.
    next_offsets: Mutex<BTreeMap<u32, u64>>,
    abort: AtomicBool,
    failure: Mutex<Option<String>>,
    errors: StatusLog,
}

impl ConsumeState {
    fn fail(&self, what: String) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(what);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    fn interrupted(&self) -> bool {
        self.cfg
            .interrupt
            .is_some_and(|i| i.load(Ordering::Relaxed))
    }

    fn stop_now(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
            || self.interrupted()
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self
                .cfg
                .messages
                .is_some_and(|n| self.consumed.load(Ordering::Relaxed) >= n)
    }
}

/// Runs `grpc-consume`. Setup failures (no connection) are `Err`; failures during the run are
/// in the report's `failure`.
pub fn run_consume(cfg: GrpcConsumeConfig) -> Result<Report, String> {
    cfg.validate()?;
    let rt = runtime(&cfg.cpus)?;
    // A larger receive window than h2's default, so a stream is not held back by its window.
    let window = Some(4 << 20);
    let channels = rt.block_on(async {
        let mut chans = Vec::with_capacity(cfg.partitions.len());
        for _ in &cfg.partitions {
            chans.push(connect(&cfg.addr, Duration::from_secs(10), window).await?);
        }
        Ok::<_, String>(chans)
    })?;
    let started = Instant::now();
    let state = Arc::new(ConsumeState {
        topic: ascii(&cfg.topic, "--topic")?,
        consumed: AtomicU64::new(0),
        deadline: cfg.duration.map(|d| started + d),
        offset_gaps: AtomicU64::new(0),
        next_offsets: Mutex::new(BTreeMap::new()),
        abort: AtomicBool::new(false),
        failure: Mutex::new(None),
        errors: StatusLog::default(),
        cfg,
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut stats = Vec::new();
    for (i, channel) in channels.into_iter().enumerate() {
        let st = Arc::new(ConnStats::default());
        stats.push(st.clone());
        let (state, tx) = (state.clone(), done_tx.clone());
        let partition = state.cfg.partitions[i];
        rt.spawn(async move {
            consume_task(&state, partition, tonic::client::Grpc::new(channel), &st).await;
            let _ = tx.send(());
        });
    }
    drop(done_tx);
    let mut collector =
        Collector::new(stats, started, state.cfg.warmup, state.cfg.progress).with_label("consumed");
    let last_tick = collect(
        &mut collector,
        &done_rx,
        state.cfg.partitions.len(),
        started,
        || None,
    );
    let end = Instant::now();
    collector.finish(end, last_tick);
    rt.shutdown_timeout(Duration::from_millis(200));

    let from = collector.measure_from();
    let until = collector.total.last_answer.unwrap_or(end).max(from);
    let measured = Measured::from_interval(&collector.total, until - from);
    let mut settings = state.cfg.settings();
    let next: BTreeMap<String, u64> = state
        .next_offsets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(p, o)| (p.to_string(), *o))
        .collect();
    settings.extend(json_object(serde_json::json!({
        "consumed": collector.all.acked_messages,
        "consumed_bytes": collector.all.acked_bytes,
        "offset_gaps": state.offset_gaps.load(Ordering::Relaxed),
        "next_offsets": next,
        "interrupted": state.interrupted(),
    })));
    let failure = state
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Report {
        workload: "grpc-consume".into(),
        measured,
        settings,
        error_codes: state.errors.by_code(),
        failure,
    })
}

async fn consume_task(
    state: &Arc<ConsumeState>,
    partition: u32,
    mut grpc: tonic::client::Grpc<Channel>,
    stats: &ConnStats,
) {
    let cfg = &state.cfg;
    let mut req = Request::new(ConsumeRequest {
        offset: cfg.from_offset,
    });
    req.metadata_mut().insert("topic", state.topic.clone());
    req.metadata_mut().insert(
        "partition",
        AsciiMetadataValue::try_from(partition.to_string()).expect("digits"),
    );
    let call = tokio::time::timeout(cfg.response_timeout, async {
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
        grpc.server_streaming(
            req,
            PathAndQuery::from_static(CONSUME_PATH),
            ProstCodec::<ConsumeRequest, LogRecord>::default(),
        )
        .await
    })
    .await;
    let mut stream: Streaming<LogRecord> = match call {
        Err(_) => {
            state.fail(format!(
                "partition {partition}: the Consume call was not accepted within {:?}",
                cfg.response_timeout
            ));
            return;
        }
        Ok(Err(status)) => {
            state.errors.report(&status, true);
            stats.with(|i| i.record_error(0, Instant::now()));
            state.fail(format!(
                "partition {partition}: Consume failed with {}: {}",
                code_key(status.code()),
                status.message()
            ));
            return;
        }
        Ok(Ok(r)) => r.into_inner(),
    };

    let mut next_offset = cfg.from_offset;
    let mut local = Interval::default();
    let mut last_flush = Instant::now();
    let mut last_record = Instant::now();
    let tick = Duration::from_millis(100);
    let flush = |local: &mut Interval| {
        stats.with(|i| i.add(local));
        local.reset();
    };
    loop {
        if state.stop_now() {
            break;
        }
        match tokio::time::timeout(tick, stream.message()).await {
            Err(_) => {
                if cfg
                    .until_idle
                    .is_some_and(|idle| last_record.elapsed() >= idle)
                {
                    break;
                }
            }
            Ok(Ok(Some(rec))) => {
                let now = Instant::now();
                last_record = now;
                if let Some(n) = cfg.messages {
                    if state.consumed.fetch_add(1, Ordering::Relaxed) >= n {
                        break;
                    }
                } else {
                    state.consumed.fetch_add(1, Ordering::Relaxed);
                }
                if rec.offset != next_offset {
                    state.offset_gaps.fetch_add(1, Ordering::Relaxed);
                }
                next_offset = rec.offset + 1;
                let age = Duration::from_micros(now_us().saturating_sub(rec.timestamp));
                local.record_ack(age, 1, rec.value.len() as u64, now);
            }
            Ok(Ok(None)) => {
                state.fail(format!(
                    "partition {partition}: the broker ended the Consume stream (grpc-status OK)"
                ));
                break;
            }
            Ok(Err(status)) => {
                state.errors.report(&status, true);
                local.record_error(0, Instant::now());
                state.fail(format!(
                    "partition {partition}: the Consume stream failed with {}: {}",
                    code_key(status.code()),
                    status.message()
                ));
                break;
            }
        }
        if local.acked_messages >= 4096 || last_flush.elapsed() >= Duration::from_millis(50) {
            flush(&mut local);
            last_flush = Instant::now();
        }
    }
    flush(&mut local);
    state
        .next_offsets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(partition, next_offset);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_keys_are_snake_case() {
        assert_eq!(code_key(Code::Unavailable), "unavailable(14)");
        assert_eq!(code_key(Code::InvalidArgument), "invalid_argument(3)");
        assert_eq!(code_key(Code::Ok), "ok(0)");
    }

    #[test]
    fn calls_split_messages() {
        let cfg = GrpcProduceConfig {
            stop: Stop::Messages(130),
            ..GrpcProduceConfig::default()
        };
        assert_eq!(cfg.total_calls(), Some(3));
        assert_eq!(
            (cfg.values_in(0), cfg.values_in(1), cfg.values_in(2)),
            (64, 64, 2)
        );
    }

    #[test]
    fn consume_needs_a_stop() {
        let cfg = GrpcConsumeConfig::default();
        assert!(cfg.validate().unwrap_err().contains("--until-idle"));
        let cfg = GrpcConsumeConfig {
            partitions: vec![1, 1],
            until_idle: Some(Duration::from_secs(1)),
            ..GrpcConsumeConfig::default()
        };
        assert!(cfg.validate().unwrap_err().contains("twice"));
    }
}
