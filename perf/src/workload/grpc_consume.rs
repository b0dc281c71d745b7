//! `grpc-consume`: Consume streams over gRPC (`atomix.log.LogService/Consume`).
//!
//! One `Consume{offset}` call per partition (`partition` metadata), each on its own connection,
//! counting records and value bytes until `--messages`, `--duration` or `--until-idle` (no record
//! for that long on a stream). The latency recorded is each record's age when it arrived
//! (arrival − its broker timestamp): the end-to-end latency when tailing, the backlog's age when
//! draining.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use shardlog::proto::log::{ConsumeRequest, LogRecord};
use shardlog_wire::startup::validate_topic;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::client::grpc::{self as client, ascii, code_key, report_status, CONSUME_PATH};
use crate::run::report::settings;
use crate::run::{
    cpus, now_us, Collector, ConnStats, ErrorLog, Interval, Measured, Report, RunControl, Settings,
    SetupError, Workload,
};

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

impl Workload for GrpcConsumeConfig {
    const NAME: &'static str = "grpc-consume";
    type Outcome = Report;

    fn validate(&self) -> Result<(), String> {
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
        cpus::check_if_any(&self.cpus)
    }

    fn settings(&self) -> Settings {
        settings(serde_json::json!({
            "partitions": self.partitions,
            "from_offset": self.from_offset,
            "topic": self.topic,
            "until_idle_s": self.until_idle.map(|d| d.as_secs_f64()),
            "warmup_s": self.warmup.as_secs_f64(),
            "target": self.addr,
            "latency": "record-age",
        }))
    }

    fn stop_on(&mut self, flag: &'static AtomicBool) {
        self.interrupt = Some(flag);
    }

    fn run(self) -> Result<Report, SetupError> {
        run(self)
    }
}

struct ConsumeState {
    cfg: GrpcConsumeConfig,
    ctl: RunControl,
    topic: AsciiMetadataValue,
    consumed: AtomicU64,
    /// Records whose offset was not the one after the previous record of their stream.
    offset_gaps: AtomicU64,
    /// Per partition: the offset after the last record read.
    next_offsets: Mutex<BTreeMap<u32, u64>>,
    errors: ErrorLog,
}

impl ConsumeState {
    fn stop_now(&self) -> bool {
        self.ctl.should_stop()
            || self
                .cfg
                .messages
                .is_some_and(|n| self.consumed.load(Ordering::Relaxed) >= n)
    }
}

/// Runs `grpc-consume`. Setup failures (no connection) are `Err`; failures during the run are
/// in the report's `failure`.
pub fn run(cfg: GrpcConsumeConfig) -> Result<Report, SetupError> {
    cfg.validate()?;
    let rt = client::runtime(&cfg.cpus)?;
    // A larger receive window than h2's default, so a stream is not held back by its window.
    let channels = client::connect_all(&rt, &cfg.addr, cfg.partitions.len(), Some(4 << 20))?;
    let started = Instant::now();
    let state = Arc::new(ConsumeState {
        topic: ascii(&cfg.topic, "--topic")?,
        ctl: RunControl::new(cfg.interrupt, cfg.duration.map(|d| started + d)),
        consumed: AtomicU64::new(0),
        offset_gaps: AtomicU64::new(0),
        next_offsets: Mutex::new(BTreeMap::new()),
        errors: ErrorLog::default(),
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
    collector.wait(&done_rx, state.cfg.partitions.len(), || None);
    let end = Instant::now();
    collector.finish(end);
    rt.shutdown_timeout(Duration::from_millis(200));

    let measured = Measured::window(&collector.total, collector.measure_from(), end);
    let mut settings = state.cfg.settings();
    let next: BTreeMap<String, u64> = state
        .next_offsets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(p, o)| (p.to_string(), *o))
        .collect();
    settings.extend(crate::run::report::settings(serde_json::json!({
        "consumed": collector.all.acked_messages,
        "consumed_bytes": collector.all.acked_bytes,
        "offset_gaps": state.offset_gaps.load(Ordering::Relaxed),
        "next_offsets": next,
        "interrupted": state.ctl.interrupted(),
    })));
    Ok(Report {
        workload: GrpcConsumeConfig::NAME.into(),
        measured,
        settings,
        error_codes: state.errors.by_code(),
        failure: state.ctl.failure(),
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
            state.ctl.fail(format!(
                "partition {partition}: the Consume call was not accepted within {:?}",
                cfg.response_timeout
            ));
            return;
        }
        Ok(Err(status)) => {
            report_status(&state.errors, &status, true);
            stats.with(|i| i.record_error(0, Instant::now()));
            state.ctl.fail(format!(
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
                let age = Duration::from_micros((now_us() as u64).saturating_sub(rec.timestamp));
                local.record_ack(age, 1, rec.value.len() as u64, now);
            }
            Ok(Ok(None)) => {
                state.ctl.fail(format!(
                    "partition {partition}: the broker ended the Consume stream (grpc-status OK)"
                ));
                break;
            }
            Ok(Err(status)) => {
                report_status(&state.errors, &status, true);
                local.record_error(0, Instant::now());
                state.ctl.fail(format!(
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
