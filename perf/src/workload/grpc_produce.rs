//! `grpc-produce`: Produce calls over gRPC (`atomix.log.LogService/Produce` on the HTTP port).
//!
//! `--connections` HTTP/2 connections, each carrying `--streams` concurrent tasks; a task makes
//! one `Produce` call after another, each streaming `--values-per-call` values, half-closing and
//! awaiting the single `ProduceResponse` (the broker answers once every value is durable). A
//! call's latency runs from its start to its response; `acked` counts the values of calls
//! answered OK, `errors` the calls that ended with another status. This is how a gRPC producer
//! uses the API: the broker appends the values that arrive together as one frame, so a call of
//! many values is the unit of work, as a PRODUCE frame is for `produce` (`--streams` ~
//! `--in-flight`, `--values-per-call` ~ `--messages-per-frame`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shardlog::proto::log::{ProduceRequest, ProduceResponse};
use shardlog_wire::startup::validate_topic;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::tokio_stream;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;
use tonic::{Request, Status};
use tonic_prost::ProstCodec;

use crate::client::grpc::{self as client, ascii, code_key, report_status, PRODUCE_PATH};
use crate::payload::{MessagePool, PayloadSpec, DEFAULT_POOL};
use crate::run::report::settings;
use crate::run::{
    cpus, Collector, ConnStats, ErrorLog, KeyOrder, Measured, Report, RunControl, Settings,
    SetupError, Stop, Workload,
};

/// A stream whose calls all fail this many times in a row (and never succeeded) ends the run:
/// the broker is refusing everything, counting more errors measures nothing.
const MAX_CONSECUTIVE_ERRORS: u32 = 100;

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

impl Workload for GrpcProduceConfig {
    const NAME: &'static str = "grpc-produce";
    type Outcome = Report;

    fn validate(&self) -> Result<(), String> {
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
        self.stop.validate()?;
        cpus::check_if_any(&self.cpus)
    }

    fn settings(&self) -> Settings {
        let mut s = settings(serde_json::json!({
            "mode": "closed-loop",
            "connections": self.connections,
            "streams": self.streams,
            "values_per_call": self.values_per_call,
            "message_size": self.payload.size,
            "randomness": self.payload.randomness,
            "payload": self.payload.kind.name(),
            "keys": 0,
            "key_order": null,
            "partition": null,
            "spread": 0,
            "topic": self.topic,
            "warmup_s": self.warmup.as_secs_f64(),
            "target": self.addr,
            "latency": "call",
        }));
        match &self.routing {
            Routing::Default => {}
            Routing::Keys { keys, order } => {
                s.insert("keys".into(), (*keys).into());
                s.insert("key_order".into(), order.name().into());
            }
            Routing::Partition(p) => {
                s.insert("partition".into(), (*p).into());
            }
            Routing::Spread(n) => {
                s.insert("spread".into(), (*n).into());
            }
        }
        s
    }

    fn stop_on(&mut self, flag: &'static AtomicBool) {
        self.interrupt = Some(flag);
    }

    fn run(self) -> Result<Report, SetupError> {
        run(self)
    }
}

struct ProduceState {
    cfg: GrpcProduceConfig,
    ctl: RunControl,
    /// The payload pool as `Bytes`, so a value costs a reference count, not a copy.
    values: Vec<Bytes>,
    topic: AsciiMetadataValue,
    keys: Vec<AsciiMetadataValue>,
    partition: Option<AsciiMetadataValue>,
    next_call: AtomicU64,
    total_calls: Option<u64>,
    /// Calls started and not yet answered.
    in_flight: AtomicU64,
    errors: ErrorLog,
}

impl ProduceState {
    fn metadata(&self, call: u64) -> MetadataMap {
        let mut md = MetadataMap::new();
        md.insert("topic", self.topic.clone());
        if let Some(p) = &self.partition {
            md.insert("partition", p.clone());
        } else if let Routing::Spread(n) = self.cfg.routing {
            let p = call % u64::from(n);
            md.insert("partition", AsciiMetadataValue::from(p));
        } else if let Routing::Keys { keys, order } = &self.cfg.routing {
            let k = order.pick(call, *keys, self.cfg.payload.seed);
            md.insert("partition-key", self.keys[k].clone());
        }
        md
    }
}

/// Runs `grpc-produce`. Setup failures (no connection) are `Err`; failures during the run are
/// in the report's `failure`.
pub fn run(cfg: GrpcProduceConfig) -> Result<Report, SetupError> {
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
    let rt = client::runtime(&cfg.cpus)?;
    let channels = client::connect_all(&rt, &cfg.addr, cfg.connections, None)?;

    let started = Instant::now();
    let state = Arc::new(ProduceState {
        topic: ascii(&cfg.topic, "--topic")?,
        keys,
        partition,
        values,
        next_call: AtomicU64::new(0),
        total_calls: cfg.stop.units(cfg.values_per_call),
        ctl: RunControl::new(cfg.interrupt, cfg.stop.deadline(started)),
        in_flight: AtomicU64::new(0),
        errors: ErrorLog::default(),
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
            if s.is_none() && state.ctl.should_stop() {
                *s = Some(Instant::now());
            }
            s.map(|t| t + state.cfg.drain_timeout)
        }
    };
    collector.wait(&done_rx, tasks, give_up);
    let end = Instant::now();
    collector.finish(end);
    rt.shutdown_timeout(Duration::from_millis(200));

    let measured = Measured::window(&collector.total, collector.measure_from(), end);
    let mut settings = state.cfg.settings();
    settings.extend(crate::run::report::settings(serde_json::json!({
        "calls": collector.all.acked_frames + collector.all.errors,
        "unanswered_calls": state.in_flight.load(Ordering::Relaxed),
        "produced": collector.all.acked_messages,
        "interrupted": state.ctl.interrupted(),
    })));
    Ok(Report {
        workload: GrpcProduceConfig::NAME.into(),
        measured,
        settings,
        error_codes: state.errors.by_code(),
        failure: state.ctl.failure(),
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
    while !state.ctl.should_stop() {
        let call = state.next_call.fetch_add(1, Ordering::Relaxed);
        if state.total_calls.is_some_and(|t| call >= t) {
            break;
        }
        let n = cfg.stop.messages_in(call, cfg.values_per_call);
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
                state.ctl.fail(format!(
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
                report_status(&state.errors, &status, true);
                stats.with(|i| i.record_error(n as u64, now));
                consecutive_errors += 1;
                if !any_ok && consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    state.ctl.fail(format!(
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
