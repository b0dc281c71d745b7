//! The consume workload: consumers in one group poll a topic as fast as the broker answers.
//!
//! Each consumer (`{group}-c{i}`, so runs with different groups can share a broker) has its
//! own connection and thread: a connection serves consumer requests one at a time, so a consumer is a blocking request/answer loop. All consumers
//! register before any polls (registering rebalances the group; a consumer polling before the
//! others joined could see its partitions move and read some of them twice). Then each POLLs
//! with `max_wait_ms`, decompresses every item's payload with zstd (one reused context per
//! consumer, as a real consumer would) and counts records, message bytes and wire bytes.
//!
//! The transport is behind [`ConsumerSession`]: [`FramedSession`] speaks the framed protocol
//! (REGISTER / POLL / COMMIT / GOODBYE); [`crate::http::HttpSession`] speaks the HTTP consumer
//! API (`PUT /v1/consumer/register`, `POST /v1/consumer/poll`, ...) over HTTP/1.1 keep-alive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardlog::wire::consumer::{
    encode_consumer_id, encode_poll, encode_register, PollBody, RegisterBody, StartPolicy,
};
use shardlog::wire::error::parse_error_body;
use shardlog::wire::frame::{encode_frame, OpCode};
use shardlog::wire::header::HEADER_LEN;
use shardlog::wire::poll::{parse_poll_response, PollItemHeader};
use shardlog::wire::record::RecordIter;
use shardlog::wire::startup::validate_topic;

use crate::framed::{self, ClientError, FrameReader, FrameWriter};
use crate::stats::{Collector, ConnStats, ErrorLog, Interval, Measured, Report};

/// The largest POLL_RESPONSE body accepted (the broker's `--max-poll-bytes` is 1 MiB by
/// default, but always returns at least one chunk).
pub const MAX_POLL_BODY: u32 = 256 << 20;

/// How consumers reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// The framed TCP protocol (REGISTER=7, POLL=8, COMMIT=10, GOODBYE=11).
    Framed,
    /// The HTTP consumer API on the HTTP port (`/v1/consumer/register|poll|commit|goodbye`),
    /// HTTP/1.1 keep-alive.
    Http,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Framed => "framed",
            Transport::Http => "http",
        }
    }
}

/// Where a new group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Start {
    Earliest,
    Latest,
}

impl Start {
    pub fn policy(self) -> StartPolicy {
        match self {
            Start::Earliest => StartPolicy::Earliest,
            Start::Latest => StartPolicy::Latest,
        }
    }
}

/// One consumer's conversation with the broker, whatever the transport.
pub trait ConsumerSession: Send {
    fn register(
        &mut self,
        id: &str,
        group: &str,
        topics: &[String],
        policy: StartPolicy,
    ) -> Result<(), ClientError>;
    /// Polls; the answer's body is the poll response (`wire::poll`), borrowed until the next
    /// call.
    fn poll(&mut self, id: &str, max_wait_ms: Option<u32>) -> Result<Polled<'_>, ClientError>;
    fn commit(&mut self, id: &str) -> Result<(), ClientError>;
    fn goodbye(&mut self, id: &str) -> Result<(), ClientError>;
}

/// A poll's answer.
pub struct Polled<'a> {
    /// The poll response body.
    pub body: &'a [u8],
    /// Bytes received for it on the wire (framing included).
    pub wire_bytes: u64,
}

/// Opens a session over `transport` to `addr` (the framed listener, or the HTTP port).
pub fn open_session(
    transport: Transport,
    addr: &str,
    timeout: Duration,
) -> Result<Box<dyn ConsumerSession>, ClientError> {
    match transport {
        Transport::Framed => Ok(Box::new(FramedSession::connect(addr, timeout)?)),
        Transport::Http => Ok(Box::new(crate::http::HttpSession::connect(addr, timeout)?)),
    }
}

/// A consumer over the framed protocol: one request at a time on one connection.
pub struct FramedSession {
    reader: FrameReader,
    writer: FrameWriter,
    next_sid: u16,
    /// How long an answer may take beyond a poll's own wait.
    timeout: Duration,
    scratch: Vec<u8>,
    frame: Vec<u8>,
}

impl FramedSession {
    pub fn connect(addr: &str, timeout: Duration) -> Result<FramedSession, ClientError> {
        let (mut reader, writer) = framed::connect_raw(addr, timeout)?;
        reader.set_max_body(MAX_POLL_BODY);
        Ok(FramedSession {
            reader,
            writer,
            next_sid: 1,
            timeout,
            scratch: Vec::new(),
            frame: Vec::new(),
        })
    }

    /// Sends `scratch` as the body of `op` and returns the answer (opcode, body).
    fn request(&mut self, op: OpCode, wait: Duration) -> Result<(u8, &[u8]), ClientError> {
        let sid = self.next_sid;
        self.next_sid = self.next_sid.wrapping_add(1).max(1);
        self.frame.clear();
        encode_frame(&mut self.frame, op, 0, sid, &self.scratch);
        self.writer
            .write_all(&self.frame)
            .map_err(|source| ClientError::Io {
                what: "sending a consumer request failed".into(),
                source,
            })?;
        let deadline = Instant::now() + wait + self.timeout;
        let frame = self.reader.read_frame(Some(deadline))?;
        if frame.header.stream_id != sid {
            return Err(ClientError::Unexpected(format!(
                "answer on stream id {} to a request on {sid}",
                frame.header.stream_id
            )));
        }
        if frame.header.opcode == OpCode::Error as u8 {
            let (code, message) = parse_error_body(frame.body)
                .unwrap_or((255, "(ERROR frame without a code)".into()));
            return Err(ClientError::Refused { code, message });
        }
        Ok((frame.header.opcode, frame.body))
    }

    fn expect_ready(&mut self, op: OpCode, what: &str) -> Result<(), ClientError> {
        match self.request(op, Duration::ZERO)? {
            (o, _) if o == OpCode::Ready as u8 => Ok(()),
            (o, _) => Err(ClientError::Unexpected(format!(
                "opcode {o} in answer to {what} (expected READY)"
            ))),
        }
    }
}

impl ConsumerSession for FramedSession {
    fn register(
        &mut self,
        id: &str,
        group: &str,
        topics: &[String],
        policy: StartPolicy,
    ) -> Result<(), ClientError> {
        self.scratch.clear();
        encode_register(
            &RegisterBody {
                policy,
                consumer_id: id.into(),
                group: group.into(),
                topics: topics.to_vec(),
            },
            &mut self.scratch,
        );
        self.expect_ready(OpCode::Register, "REGISTER")
    }

    fn poll(&mut self, id: &str, max_wait_ms: Option<u32>) -> Result<Polled<'_>, ClientError> {
        self.scratch.clear();
        encode_poll(
            &PollBody {
                consumer_id: id.into(),
                max_wait_ms,
            },
            &mut self.scratch,
        );
        let wait = Duration::from_millis(max_wait_ms.unwrap_or(0) as u64);
        match self.request(OpCode::Poll, wait)? {
            (o, body) if o == OpCode::PollResponse as u8 => Ok(Polled {
                wire_bytes: (HEADER_LEN + body.len()) as u64,
                body,
            }),
            (o, _) => Err(ClientError::Unexpected(format!(
                "opcode {o} in answer to POLL (expected POLL_RESPONSE)"
            ))),
        }
    }

    fn commit(&mut self, id: &str) -> Result<(), ClientError> {
        self.scratch.clear();
        encode_consumer_id(id, &mut self.scratch);
        self.expect_ready(OpCode::Commit, "COMMIT")
    }

    fn goodbye(&mut self, id: &str) -> Result<(), ClientError> {
        self.scratch.clear();
        encode_consumer_id(id, &mut self.scratch);
        self.expect_ready(OpCode::Goodbye, "GOODBYE")
    }
}

/// Decompresses poll item payloads with one reused zstd context and output buffer.
pub struct Decoder {
    dctx: zstd::bulk::Decompressor<'static>,
    out: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            dctx: zstd::bulk::Decompressor::new().expect("a zstd context"),
            out: Vec::new(),
        }
    }

    /// The decompressed records of one payload (a zstd frame with its content size).
    pub fn decode(&mut self, payload: &[u8]) -> Result<&[u8], String> {
        let size = match zstd::zstd_safe::get_frame_content_size(payload) {
            Ok(Some(n)) => n as usize,
            Ok(None) => {
                self.out = zstd::stream::decode_all(payload).map_err(|e| e.to_string())?;
                return Ok(&self.out);
            }
            Err(_) => return Err("the payload is not a zstd frame".into()),
        };
        self.out.clear();
        self.out.reserve(size);
        self.dctx
            .decompress_to_buffer(payload, &mut self.out)
            .map_err(|e| format!("zstd: {e}"))?;
        Ok(&self.out)
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// The uncompressed size a payload's zstd frame header announces (0 if absent).
pub fn content_size(payload: &[u8]) -> u64 {
    zstd::zstd_safe::get_frame_content_size(payload)
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// Calls `record(item header, offset, timestamp μs, body)` for every record of a poll
/// response, decoding the payloads. Returns the number of records.
pub fn for_each_record(
    decoder: &mut Decoder,
    body: &[u8],
    mut record: impl FnMut(&PollItemHeader<'_>, i64, i64, &[u8]),
) -> Result<u64, String> {
    let items = parse_poll_response(body).map_err(|e| format!("bad poll response: {e}"))?;
    let mut n = 0u64;
    for it in &items {
        let raw = decoder.decode(it.payload)?;
        for (i, r) in RecordIter::new(raw).enumerate() {
            let r = r.map_err(|e| format!("bad record in a poll item: {e}"))?;
            record(
                &it.header,
                it.header.offset + i as i64,
                r.timestamp_us,
                r.body,
            );
            n += 1;
        }
    }
    Ok(n)
}

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

impl ConsumeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.consumers == 0 {
            return Err("--consumers must be at least 1".into());
        }
        validate_topic(&self.topic).map_err(|e| format!("--topic: {e}"))?;
        shardlog::wire::consumer::validate_group(&self.group)
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

    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        let v = serde_json::json!({
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
        });
        match v {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a json! object"),
        }
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
    consumed: AtomicU64,
    abort: AtomicBool,
    failure: Mutex<Option<String>>,
    errors: ErrorLog,
    counters: Counters,
    deadline: Option<Instant>,
}

impl Shared {
    fn fail(&self, what: String) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(what);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    fn stop_now(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
            || self
                .cfg
                .interrupt
                .is_some_and(|i| i.load(Ordering::Relaxed))
            || self.deadline.is_some_and(|d| Instant::now() >= d)
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

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn pin(cpus: &Option<Vec<usize>>, n: usize) {
    if let Some(cpus) = cpus {
        core_affinity::set_for_current(core_affinity::CoreId {
            id: cpus[n % cpus.len()],
        });
    }
}

/// Runs the workload. `ready` is signalled once every consumer has registered (the `e2e`
/// workload starts producing then). Setup failures are `Err`; failures during the run are in
/// the report's `failure`.
pub fn run(cfg: ConsumeConfig, ready: Option<mpsc::Sender<()>>) -> Result<ConsumeOutcome, String> {
    cfg.validate()?;
    pin(&cfg.cpus, 0);
    let topics = vec![cfg.topic.clone()];
    let mut sessions = Vec::with_capacity(cfg.consumers);
    for i in 0..cfg.consumers {
        let id = format!("{}-c{i}", cfg.group);
        let mut s = open_session(cfg.transport, &cfg.addr, cfg.response_timeout)
            .map_err(|e| format!("consumer {id}: cannot connect to {}: {e}", cfg.addr))?;
        s.register(&id, &cfg.group, &topics, cfg.start.policy())
            .map_err(|e| format!("consumer {id}: REGISTER failed: {e}"))?;
        sessions.push((id, s));
    }
    if let Some(r) = ready {
        let _ = r.send(());
    }

    let started = Instant::now();
    let shared = Arc::new(Shared {
        deadline: cfg.duration.map(|d| started + d),
        cfg,
        consumed: AtomicU64::new(0),
        abort: AtomicBool::new(false),
        failure: Mutex::new(None),
        errors: ErrorLog::default(),
        counters: Counters::default(),
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut stats = Vec::new();
    let mut handles = Vec::new();
    for (n, (id, session)) in sessions.into_iter().enumerate() {
        let st = Arc::new(ConnStats::default());
        stats.push(st.clone());
        let (sh, tx) = (shared.clone(), done_tx.clone());
        handles.push(
            thread::Builder::new()
                .name(format!("consume-{n}"))
                .spawn(move || {
                    pin(&sh.cfg.cpus, 1 + n);
                    consume_loop(&sh, &id, session, &st);
                    let _ = tx.send(());
                })
                .expect("spawn consumer thread"),
        );
    }
    drop(done_tx);

    let mut collector = Collector::new(stats, started, shared.cfg.warmup, shared.cfg.progress)
        .with_label("consumed");
    let mut last_tick = started;
    let mut running = handles.len();
    while running > 0 {
        let next = collector.next_tick(Instant::now());
        match done_rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(()) => running -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                collector.tick(now, last_tick);
                last_tick = now;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for h in handles {
        let _ = h.join();
    }
    let end = Instant::now();
    collector.finish(end, last_tick);

    let from = collector.measure_from();
    let until = collector.total.last_answer.unwrap_or(end).max(from);
    let measured = Measured::from_interval(&collector.total, until - from);
    let c = &shared.counters;
    let secs = measured.duration_s;
    let mut settings = shared.cfg.settings();
    let wire = c.wire_bytes.load(Ordering::Relaxed);
    let extra = serde_json::json!({
        "consumed": collector.all.acked_messages,
        "polls": c.polls.load(Ordering::Relaxed),
        "empty_polls": c.empty_polls.load(Ordering::Relaxed),
        "items": c.items.load(Ordering::Relaxed),
        "wire_bytes": wire,
        "compressed_bytes": c.compressed_bytes.load(Ordering::Relaxed),
        "raw_bytes": c.raw_bytes.load(Ordering::Relaxed),
        "wire_mb_per_sec": if shared.cfg.warmup.is_zero() { wire as f64 / secs / 1e6 } else { f64::NAN },
        "latency": if shared.cfg.e2e { "end-to-end" } else { "poll" },
        "interrupted": shared.cfg.interrupt.is_some_and(|i| i.load(Ordering::Relaxed)),
    });
    if let serde_json::Value::Object(m) = extra {
        settings.extend(m);
    }
    // NaN is not JSON: drop the wire rate when a warmup makes it ambiguous.
    if settings.get("wire_mb_per_sec").is_some_and(|v| v.is_null()) {
        settings.remove("wire_mb_per_sec");
    }
    let failure = shared
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let report = Report {
        workload: "consume".into(),
        measured,
        settings,
        error_codes: shared.errors.by_code(),
        failure,
    };
    Ok(ConsumeOutcome {
        report,
        total: collector.total,
    })
}

fn consume_loop(
    shared: &Shared,
    id: &str,
    mut session: Box<dyn ConsumerSession>,
    stats: &ConnStats,
) {
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
                shared.fail(format!("consumer {id}: POLL failed: {e}"));
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
        let result = if cfg.decode {
            let mut bytes = 0u64;
            let mut e2e = Vec::new();
            let r = for_each_record(&mut decoder, body, |_, _, ts, b| {
                bytes += b.len() as u64;
                if cfg.e2e {
                    e2e.push((arrived_us - ts).max(1) as u64);
                }
            });
            r.map(|n| (n, bytes, e2e))
        } else {
            Ok((0, 0, Vec::new()))
        };
        let (records, bytes, e2e) = match result {
            Ok(x) => x,
            Err(e) => {
                shared.fail(format!("consumer {id}: {e}"));
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
        shared.consumed.fetch_add(records, Ordering::Relaxed);
        stats.with(|i| {
            if cfg.e2e {
                for us in &e2e {
                    i.record_ack(Duration::from_micros(*us), 1, 0, arrived);
                }
                i.acked_bytes += bytes;
            } else {
                i.record_ack(arrived - sent, records, bytes, arrived);
            }
        });
    }
    if let Err(e) = session.goodbye(id) {
        if !shared.abort.load(Ordering::Relaxed) {
            shared.fail(format!("consumer {id}: GOODBYE failed: {e}"));
        }
    }
}
