//! The framed produce workload.
//!
//! Each connection has a writer thread and a reader thread over one blocking socket. The
//! writer reserves a stream id (at most `in_flight` per connection), appends the frame's
//! small prefix to a batch and sends batches with one vectored write; the message bytes come
//! from regions prebuilt once ([`MessageRegion`]), so per frame only a header and an optional
//! timestamp are encoded. The reader parses answers, matches them to frames by stream id (in
//! any order), records latency and frees the id.
//!
//! - **Closed loop** (no `rate`): every connection keeps `in_flight` frames outstanding; a
//!   frame's latency runs from the write that sent it.
//! - **Open loop** (`rate`): frame `f` is due at `start + f × period` (frames spread over the
//!   connections round-robin), and its latency runs from that *intended* time. When the broker
//!   stalls and the window fills, later frames are sent late and their latency shows the
//!   stall, instead of the stall being hidden by not sending (coordinated omission).

use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardlog::wire::frame::{Frame, OpCode};
use shardlog::wire::startup::validate_topic;

use crate::framed::{
    self, ClientError, ConnectOptions, FrameReader, FrameWriter, MessageRegion, ProducePrefix,
    ReadOutcome, StreamIds,
};
use crate::payload::{MessagePool, PayloadSpec, DEFAULT_POOL};
use crate::stats::{Collector, ConnStats, ErrorLog, Interval, Measured, Report};
use crate::verify::{tag_position, write_tag, AckEntry, AckLedger, Ledger, KEYLESS, TAG_LEN};

/// When the run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many messages (warmup included) have been answered.
    Messages(u64),
    /// After this long (warmup included), then waiting for the answers in flight.
    Duration(Duration),
}

/// How each frame's key is chosen among `key-0 .. key-{N-1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyOrder {
    RoundRobin,
    Random,
}

/// Everything the workload needs.
#[derive(Debug, Clone)]
pub struct ProduceConfig {
    pub addr: String,
    pub topic: String,
    pub connections: usize,
    pub in_flight: usize,
    pub messages_per_frame: usize,
    pub payload: PayloadSpec,
    /// 0: keyless frames.
    pub keys: usize,
    pub key_order: KeyOrder,
    pub stop: Stop,
    /// Messages per second, all connections together (open loop); `None`: closed loop.
    pub rate: Option<f64>,
    /// Send flag 0x01 and a timestamp (μs since the epoch) in every frame.
    pub timestamps: bool,
    /// CPUs to pin the harness's threads to.
    pub cpus: Option<Vec<usize>>,
    pub warmup: Duration,
    /// Progress line on stderr every second.
    pub progress: bool,
    /// Print each distinct broker ERROR message once on stderr.
    pub print_errors: bool,
    /// Keep the ledger of acknowledged frames.
    pub ledger: bool,
    /// Limit for connecting and for READY.
    pub handshake_timeout: Duration,
    /// A connection with frames in flight and no answer for this long has failed.
    pub response_timeout: Duration,
    /// After a `Duration` run ends (or an interrupt), how long to wait for answers in flight.
    pub drain_timeout: Duration,
    /// When this turns true (Ctrl-C), stop sending, wait for the answers in flight, and report.
    pub interrupt: Option<&'static AtomicBool>,
}

impl Default for ProduceConfig {
    fn default() -> Self {
        ProduceConfig {
            addr: "127.0.0.1:9254".into(),
            topic: "perf".into(),
            connections: 4,
            in_flight: 16,
            messages_per_frame: 64,
            payload: PayloadSpec::default(),
            keys: 0,
            key_order: KeyOrder::RoundRobin,
            stop: Stop::Duration(Duration::from_secs(30)),
            rate: None,
            timestamps: false,
            cpus: None,
            warmup: Duration::ZERO,
            progress: true,
            print_errors: true,
            ledger: false,
            handshake_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            interrupt: None,
        }
    }
}

impl ProduceConfig {
    /// Checks the settings; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.in_flight == 0 || self.in_flight > StreamIds::CAPACITY {
            return Err(format!(
                "--in-flight must be between 1 and {} (the stream ids of one connection)",
                StreamIds::CAPACITY
            ));
        }
        if self.messages_per_frame == 0 {
            return Err("--messages-per-frame must be at least 1".into());
        }
        if self.payload.size == 0 {
            return Err("--message-size must be at least 1 byte".into());
        }
        let frame = self.messages_per_frame as u64 * (4 + self.payload.size as u64) + 300;
        if frame > u32::MAX as u64 {
            return Err(format!(
                "a frame of {} messages of {} bytes does not fit a frame (4 GiB body limit)",
                self.messages_per_frame, self.payload.size
            ));
        }
        if !(0.0..=1.0).contains(&self.payload.randomness) {
            return Err("--randomness must be between 0.0 and 1.0".into());
        }
        validate_topic(&self.topic).map_err(|e| format!("--topic: {e}"))?;
        if self.ledger && self.payload.size < TAG_LEN {
            return Err(format!(
                "--verify tags every message with {TAG_LEN} bytes: --message-size must be at least {TAG_LEN}"
            ));
        }
        if self.ledger && self.messages_per_frame > u16::MAX as usize + 1 {
            return Err("--verify needs --messages-per-frame of at most 65536".into());
        }
        match self.stop {
            Stop::Messages(0) => return Err("--messages must be at least 1".into()),
            Stop::Duration(d) if d.is_zero() => {
                return Err("--duration must be longer than zero".into())
            }
            _ => {}
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err("--rate must be a positive number of messages per second".into());
            }
        }
        if let Some(cpus) = &self.cpus {
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

    fn total_frames(&self) -> Option<u64> {
        match self.stop {
            Stop::Messages(n) => Some(n.div_ceil(self.messages_per_frame as u64)),
            Stop::Duration(_) => None,
        }
    }

    /// Messages in frame `frame` (the last frame of a `Messages` run may be short).
    fn messages_in(&self, frame: u64) -> usize {
        let mpf = self.messages_per_frame as u64;
        match self.stop {
            Stop::Messages(n) => (n - frame * mpf).min(mpf) as usize,
            Stop::Duration(_) => mpf as usize,
        }
    }

    fn key_of(&self, frame: u64) -> u32 {
        if self.keys == 0 {
            return KEYLESS;
        }
        let n = self.keys as u64;
        (match self.key_order {
            KeyOrder::RoundRobin => frame % n,
            KeyOrder::Random => splitmix64(frame ^ self.payload.seed) % n,
        }) as u32
    }

    /// The workload's settings, for the report.
    fn settings(&self) -> serde_json::Map<String, serde_json::Value> {
        let v = serde_json::json!({
            "mode": if self.rate.is_some() { "open-loop" } else { "closed-loop" },
            "rate": self.rate,
            "connections": self.connections,
            "in_flight": self.in_flight,
            "messages_per_frame": self.messages_per_frame,
            "message_size": self.payload.size,
            "randomness": self.payload.randomness,
            "keys": self.keys,
            "key_order": match self.key_order { KeyOrder::RoundRobin => "round-robin", KeyOrder::Random => "random" },
            "topic": self.topic,
            "timestamps": self.timestamps,
            "verify": self.ledger,
            "warmup_s": self.warmup.as_secs_f64(),
            "target": self.addr,
        });
        match v {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a json! object"),
        }
    }
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// What a run produced.
#[derive(Debug)]
pub struct ProduceOutcome {
    pub report: Report,
    /// The acknowledged frames, when [`ProduceConfig::ledger`] was set.
    pub ledger: Option<AckLedger>,
    /// Frames still unanswered when the run ended.
    pub unanswered: u64,
    /// What each frame carried, for checking a read-back (with the ledger).
    pub sent: Option<SentMessages>,
}

/// The messages a run sent, to compare a read-back with: message `i` of frame `f` is a pool
/// message chosen by the frame's region, with a tag at a known position.
#[derive(Debug, Clone)]
pub struct SentMessages {
    pub pool: Arc<MessagePool>,
    pub regions: usize,
    pub messages_per_frame: usize,
    pub tag_positions: Vec<usize>,
    /// Frames handed out (the highest frame index sent is below this).
    pub frames: u64,
}

impl SentMessages {
    /// Message `index` of `frame` as sent (its tag bytes excepted), `None` if no such message.
    pub fn message(&self, frame: u64, index: u16) -> Option<&[u8]> {
        if frame >= self.frames || index as usize >= self.messages_per_frame {
            return None;
        }
        let r = (frame % self.regions as u64) as usize;
        Some(
            self.pool
                .get((r * self.messages_per_frame + index as usize) % self.pool.len()),
        )
    }
}

/// The run could not start (bad settings, or a connection could not be opened).
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// Frames every connection shares: prebuilt message regions and keys.
struct Prebuilt {
    regions: Vec<MessageRegion>,
    keys: Vec<Vec<u8>>,
    pool: Arc<MessagePool>,
    /// With `--verify`: where each pool message's tag goes.
    tag_positions: Option<Vec<usize>>,
}

impl Prebuilt {
    fn new(cfg: &ProduceConfig) -> Prebuilt {
        let mpf = cfg.messages_per_frame;
        // Enough regions to cycle through the whole pool, within ~64 MiB.
        let pool_len = DEFAULT_POOL.max(mpf);
        let frame_bytes = mpf * (cfg.payload.size + 4);
        let wanted = pool_len.div_ceil(mpf);
        let count = wanted.min((64 << 20) / frame_bytes.max(1)).max(1);
        let pool_len = pool_len.min(count * mpf).max(1);
        let pool = MessagePool::generate(cfg.payload, pool_len);
        let regions = (0..count)
            .map(|r| MessageRegion::new((0..mpf).map(|i| pool.get(r * mpf + i))))
            .collect();
        let keys = (0..cfg.keys)
            .map(|k| format!("key-{k}").into_bytes())
            .collect();
        let tag_positions = cfg.ledger.then(|| {
            (0..pool.len())
                .map(|i| tag_position(pool.get(i)).unwrap_or(0))
                .collect()
        });
        Prebuilt {
            regions,
            keys,
            pool: Arc::new(pool),
            tag_positions,
        }
    }

    /// The bytes of a frame's messages with each one tagged (`--verify`).
    fn tagged(&self, frame: u64, messages: usize, positions: &[usize]) -> Vec<u8> {
        let (region, first) = self.region_of(frame);
        let region = &self.regions[region];
        let mut bytes = region.first(messages).to_vec();
        for i in 0..messages {
            let pool_index = (first as usize + i) % self.pool.len();
            let at = region.message_start(i) + positions[pool_index];
            write_tag(&mut bytes[at..], frame, i as u16);
        }
        bytes
    }

    fn region_of(&self, frame: u64) -> (usize, u64) {
        let r = (frame % self.regions.len() as u64) as usize;
        (r, (r * self.regions[r].len()) as u64)
    }
}

/// State shared by all connections of a run.
struct RunState {
    cfg: ProduceConfig,
    prebuilt: Prebuilt,
    started: Instant,
    /// Closed loop: the next frame index to send.
    next_frame: AtomicU64,
    /// One past the highest frame index put in a batch.
    frames_sent: AtomicU64,
    total_frames: Option<u64>,
    deadline: Option<Instant>,
    /// Open loop: time between two frames (all connections together).
    period: Option<Duration>,
    /// Set when the run must stop early (a connection failed).
    abort: AtomicBool,
    failure: Mutex<Option<String>>,
    errors: ErrorLog,
}

impl RunState {
    fn fail(&self, what: String) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(what);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    fn interrupted(&self) -> bool {
        self.cfg
            .interrupt
            .is_some_and(|i| i.load(Ordering::Relaxed))
    }

    fn intended(&self, frame: u64) -> Option<Instant> {
        self.period.map(|p| self.started + p.mul_f64(frame as f64))
    }
}

/// A frame on its way: what is needed when its answer comes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: Instant,
    frame: u64,
    key: u32,
    messages: u32,
    bytes: u64,
    first_message: u64,
}

/// One connection's window of frames in flight, shared by its writer and reader.
struct Window {
    ids: StreamIds,
    slots: HashMap<u16, Slot>,
    writer_done: Option<Instant>,
    closed: bool,
}

struct Conn {
    index: usize,
    window: Mutex<Window>,
    /// Signalled when a slot frees up or the connection closes.
    freed: Condvar,
    stats: Arc<ConnStats>,
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the workload to the end. A connection failing mid-run ends the run early; the report
/// then says why in `failure`.
pub fn run(cfg: ProduceConfig) -> Result<ProduceOutcome, SetupError> {
    cfg.validate().map_err(SetupError)?;
    let cpus = cfg.cpus.clone();
    pin(&cpus, 0);
    let prebuilt = Prebuilt::new(&cfg);

    // Connect everything before the clock starts.
    let opts = ConnectOptions {
        topic: cfg.topic.clone(),
        handshake_timeout: cfg.handshake_timeout,
    };
    let mut sockets = Vec::with_capacity(cfg.connections);
    for i in 0..cfg.connections {
        let pair = framed::connect(&cfg.addr, &opts).map_err(|e| {
            SetupError(format!(
                "connection {} of {} to the framed endpoint {} failed: {e}",
                i + 1,
                cfg.connections,
                cfg.addr
            ))
        })?;
        sockets.push(pair);
    }

    let started = Instant::now();
    let period = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.messages_per_frame as f64 / r));
    let deadline = match cfg.stop {
        Stop::Duration(d) => Some(started + d),
        Stop::Messages(_) => None,
    };
    let state = Arc::new(RunState {
        total_frames: cfg.total_frames(),
        cfg,
        prebuilt,
        started,
        next_frame: AtomicU64::new(0),
        frames_sent: AtomicU64::new(0),
        deadline,
        period,
        abort: AtomicBool::new(false),
        failure: Mutex::new(None),
        errors: ErrorLog::default(),
    });

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut conns = Vec::new();
    let mut handles = Vec::new();
    for (index, (reader, writer)) in sockets.into_iter().enumerate() {
        let conn = Arc::new(Conn {
            index,
            window: Mutex::new(Window {
                ids: StreamIds::new(),
                slots: HashMap::new(),
                writer_done: None,
                closed: false,
            }),
            freed: Condvar::new(),
            stats: Arc::new(ConnStats::default()),
        });
        conns.push(conn.clone());
        let (s, c, cpus_w) = (state.clone(), conn.clone(), cpus.clone());
        let w = thread::Builder::new()
            .name(format!("produce-w{index}"))
            .spawn(move || {
                pin(&cpus_w, index);
                write_loop(&s, &c, writer)
            })
            .expect("spawn writer thread");
        let (s, c, cpus_r, tx) = (state.clone(), conn.clone(), cpus.clone(), done_tx.clone());
        let r = thread::Builder::new()
            .name(format!("produce-r{index}"))
            .spawn(move || {
                pin(&cpus_r, index);
                let ledger = read_loop(&s, &c, reader);
                let _ = tx.send(());
                ledger
            })
            .expect("spawn reader thread");
        handles.push((w, r));
    }
    drop(done_tx);

    // Collect once a second until every reader has finished.
    let mut collector = Collector::new(
        conns.iter().map(|c| c.stats.clone()).collect(),
        started,
        state.cfg.warmup,
        state.cfg.progress,
    );
    let mut last_tick = started;
    let mut running = conns.len();
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
    let mut ledgers = Vec::new();
    for (w, r) in handles {
        let _ = w.join();
        if let Ok(l) = r.join() {
            ledgers.push(l);
        }
    }
    let end = Instant::now();
    collector.finish(end, last_tick);

    let unanswered: u64 = conns.iter().map(|c| c.lock().slots.len() as u64).sum();
    let measured = measure(&collector.total, collector.measure_from(), end);
    let mut settings = state.cfg.settings();
    settings.insert("unanswered_frames".into(), unanswered.into());
    settings.insert("interrupted".into(), state.interrupted().into());
    let failure = state
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let report = Report {
        workload: "produce".into(),
        measured,
        settings,
        error_codes: state.errors.by_code(),
        failure,
    };
    let ledger = state.cfg.ledger.then(|| AckLedger::merge(ledgers));
    let sent = state
        .prebuilt
        .tag_positions
        .as_ref()
        .map(|positions| SentMessages {
            pool: state.prebuilt.pool.clone(),
            regions: state.prebuilt.regions.len(),
            messages_per_frame: state.cfg.messages_per_frame,
            tag_positions: positions.clone(),
            frames: state.frames_sent.load(Ordering::SeqCst),
        });
    Ok(ProduceOutcome {
        report,
        ledger,
        unanswered,
        sent,
    })
}

/// The measured window runs from the end of the warmup to the last answer.
fn measure(total: &Interval, from: Instant, end: Instant) -> Measured {
    let until = total.last_answer.unwrap_or(end).max(from);
    Measured::from_interval(total, until - from)
}

fn pin(cpus: &Option<Vec<usize>>, n: usize) {
    if let Some(cpus) = cpus {
        let id = cpus[n % cpus.len()];
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Frames waiting for one vectored write.
struct Batch {
    prefixes: Vec<u8>,
    /// `(prefix end in prefixes, region, messages, stream id)`
    items: Vec<(usize, usize, usize, u16)>,
    /// With `--verify`: each item's tagged copy of its messages, sent instead of the region.
    tagged: Vec<Vec<u8>>,
    bytes: usize,
}

impl Batch {
    const MAX_FRAMES: usize = 64;
    const MAX_BYTES: usize = 256 * 1024;

    fn full(&self) -> bool {
        self.items.len() >= Self::MAX_FRAMES || self.bytes >= Self::MAX_BYTES
    }
}

fn write_loop(state: &RunState, conn: &Conn, mut writer: FrameWriter) {
    let cfg = &state.cfg;
    let conns = cfg.connections as u64;
    let mut batch = Batch {
        prefixes: Vec::with_capacity(64 * Batch::MAX_FRAMES),
        items: Vec::with_capacity(Batch::MAX_FRAMES),
        tagged: Vec::new(),
        bytes: 0,
    };
    let open_loop = state.period.is_some();
    let mut k = 0u64;
    let result: Result<(), String> = loop {
        if state.aborted() || state.interrupted() {
            break Ok(());
        }
        // Which frame is next.
        let frame = if open_loop {
            let f = conn.index as u64 + k * conns;
            k += 1;
            f
        } else {
            state.next_frame.fetch_add(1, Ordering::Relaxed)
        };
        if state.total_frames.is_some_and(|t| frame >= t) {
            break Ok(());
        }
        let intended = state.intended(frame);
        let due = intended.unwrap_or_else(Instant::now);
        if state.deadline.is_some_and(|d| due >= d) {
            break Ok(());
        }
        // Open loop: wait for the frame's time, sending what is batched first.
        if let Some(at) = intended {
            if at > Instant::now() {
                if let Err(e) = flush(state, conn, &mut writer, &mut batch) {
                    break Err(e);
                }
                sleep_until(state, at);
            }
        }
        // Reserve a stream id; a full window first sends what is batched, then waits.
        let messages = cfg.messages_in(frame);
        let (region, first_message) = state.prebuilt.region_of(frame);
        let key = cfg.key_of(frame);
        let reserved = loop {
            let mut w = conn.lock();
            if w.closed || state.aborted() || state.interrupted() {
                break None;
            }
            if w.slots.len() < cfg.in_flight {
                let Some(id) = w.ids.allocate() else {
                    break None;
                };
                let bytes = state.prebuilt.regions[region].payload_bytes(messages);
                w.slots.insert(
                    id,
                    Slot {
                        start: due,
                        frame,
                        key,
                        messages: messages as u32,
                        bytes,
                        first_message,
                    },
                );
                break Some(id);
            }
            if !batch.items.is_empty() {
                drop(w);
                if let Err(e) = flush(state, conn, &mut writer, &mut batch) {
                    state.fail(format!("connection {}: {e}", conn.index));
                    break None;
                }
                continue;
            }
            let _ = conn.freed.wait_timeout(w, Duration::from_millis(100));
        };
        let Some(stream_id) = reserved else {
            break Ok(());
        };
        let key_bytes: &[u8] = if key == KEYLESS {
            b""
        } else {
            &state.prebuilt.keys[key as usize]
        };
        let region_bytes = state.prebuilt.regions[region].first(messages);
        ProducePrefix::encode(
            &mut batch.prefixes,
            stream_id,
            cfg.timestamps.then(now_us),
            key_bytes,
            region_bytes.len(),
        );
        batch
            .items
            .push((batch.prefixes.len(), region, messages, stream_id));
        if let Some(positions) = &state.prebuilt.tag_positions {
            batch
                .tagged
                .push(state.prebuilt.tagged(frame, messages, positions));
        }
        state.frames_sent.fetch_max(frame + 1, Ordering::SeqCst);
        batch.bytes += region_bytes.len();
        let behind = intended.is_some_and(|at| at <= Instant::now());
        if batch.full() || (open_loop && !behind) {
            if let Err(e) = flush(state, conn, &mut writer, &mut batch) {
                break Err(e);
            }
        }
    };
    let result = result.and_then(|()| flush(state, conn, &mut writer, &mut batch));
    if let Err(e) = result {
        state.fail(format!("connection {}: {e}", conn.index));
    }
    let mut w = conn.lock();
    w.writer_done = Some(Instant::now());
    drop(w);
    conn.freed.notify_all();
}

/// Sends the batch with one vectored write (several if the kernel takes less).
fn flush(
    state: &RunState,
    conn: &Conn,
    writer: &mut FrameWriter,
    batch: &mut Batch,
) -> Result<(), String> {
    if batch.items.is_empty() {
        return Ok(());
    }
    // Closed loop: latency runs from now, the moment the frames go out.
    if state.period.is_none() {
        let now = Instant::now();
        let mut w = conn.lock();
        for &(_, _, _, id) in &batch.items {
            if let Some(slot) = w.slots.get_mut(&id) {
                slot.start = now;
            }
        }
    }
    let mut slices = Vec::with_capacity(batch.items.len() * 2);
    let mut prefix_start = 0;
    for (n, &(prefix_end, region, messages, _)) in batch.items.iter().enumerate() {
        slices.push(IoSlice::new(&batch.prefixes[prefix_start..prefix_end]));
        match batch.tagged.get(n) {
            Some(tagged) => slices.push(IoSlice::new(tagged)),
            None => slices.push(IoSlice::new(state.prebuilt.regions[region].first(messages))),
        }
        prefix_start = prefix_end;
    }
    let result = writer
        .write_all_vectored(&mut slices)
        .map_err(|e| format!("sending to the broker failed: {e}"));
    batch.prefixes.clear();
    batch.items.clear();
    batch.tagged.clear();
    batch.bytes = 0;
    result
}

fn sleep_until(state: &RunState, at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at || state.aborted() || state.interrupted() {
            return;
        }
        let left = at - now;
        if left > Duration::from_micros(200) {
            thread::sleep((left - Duration::from_micros(100)).min(Duration::from_millis(100)));
        } else {
            thread::yield_now();
        }
    }
}

/// An answer, copied out of the read buffer.
enum Answer {
    Ack(u16),
    Error(u16, u8, String),
    Ready,
    Other(u16, u8),
}

fn answer_of(frame: Frame<'_>) -> Answer {
    let id = frame.header.stream_id;
    match OpCode::from_u8(frame.header.opcode) {
        Ok(OpCode::ProduceResponse) => Answer::Ack(id),
        Ok(OpCode::Ready) => Answer::Ready,
        Ok(OpCode::Error) => match framed::Response::from_frame(&frame) {
            framed::Response::Error { code, message, .. } => Answer::Error(id, code, message),
            _ => unreachable!("an ERROR frame classifies as an error"),
        },
        _ => Answer::Other(id, frame.header.opcode),
    }
}

fn read_loop(state: &RunState, conn: &Conn, mut reader: FrameReader) -> Ledger {
    let cfg = &state.cfg;
    let mut ledger = Ledger::default();
    let mut answers: Vec<Answer> = Vec::with_capacity(256);
    let mut answered: Vec<(Slot, Result<(), ()>)> = Vec::with_capacity(256);
    let mut last_data = Instant::now();
    if let Err(e) = reader.set_read_timeout(Some(Duration::from_millis(50))) {
        state.fail(format!(
            "connection {}: cannot set a read timeout: {e}",
            conn.index
        ));
    }
    let failure: Option<String> = loop {
        if state.aborted() {
            break None;
        }
        let outcome = match reader.read_frames(|f| answers.push(answer_of(f))) {
            Ok(o) => o,
            Err(e) => break Some(e.to_string()),
        };
        let now = Instant::now();
        if outcome == ReadOutcome::Data {
            last_data = now;
        }
        // Match answers to frames.
        let mut fatal = None;
        let mut stray = 0u64;
        let (in_flight, writer_done) = {
            let mut w = conn.lock();
            for a in answers.drain(..) {
                match a {
                    Answer::Ack(id) | Answer::Error(id, ..) if w.slots.contains_key(&id) => {
                        let slot = w.slots.remove(&id).expect("checked");
                        w.ids.release(id);
                        let ok = match a {
                            Answer::Error(_, code, message) => {
                                state.errors.report(code, &message, cfg.print_errors);
                                if code == shardlog::wire::ErrorCode::Protocol as u8 {
                                    fatal = Some(format!(
                                        "broker reported a protocol error and closes the connection: {message}"
                                    ));
                                }
                                Err(())
                            }
                            _ => Ok(()),
                        };
                        answered.push((slot, ok));
                    }
                    Answer::Ack(id) => {
                        stray += 1;
                        state.errors.report(
                            255,
                            &format!("harness: PRODUCE_RESPONSE on stream id {id}, which has no frame in flight"),
                            cfg.print_errors,
                        )
                    }
                    Answer::Error(id, code, message) => {
                        stray += 1;
                        state.errors.report(code, &message, cfg.print_errors);
                        if code == shardlog::wire::ErrorCode::Protocol as u8 || id == 0 {
                            fatal = Some(format!(
                                "broker answered ERROR {} ({code}) on stream id {id}: {message}",
                                framed::code_name(code)
                            ));
                        }
                    }
                    Answer::Ready => {}
                    Answer::Other(id, op) => {
                        stray += 1;
                        state.errors.report(
                            255,
                            &format!("harness: unexpected opcode {op} on stream id {id}"),
                            cfg.print_errors,
                        )
                    }
                }
            }
            (w.slots.len(), w.writer_done)
        };
        if !answered.is_empty() {
            conn.freed.notify_all();
            conn.stats.with(|i| {
                for (slot, ok) in &answered {
                    match ok {
                        Ok(()) => i.record_ack(
                            now.saturating_duration_since(slot.start),
                            slot.messages as u64,
                            slot.bytes,
                            now,
                        ),
                        Err(()) => i.record_error(slot.messages as u64, now),
                    }
                }
            });
            if cfg.ledger {
                for (slot, ok) in &answered {
                    if ok.is_ok() {
                        ledger.push(AckEntry {
                            frame: slot.frame,
                            key: slot.key,
                            messages: slot.messages,
                            first_message: slot.first_message,
                            connection: conn.index as u32,
                            sent: slot.start.saturating_duration_since(state.started),
                            acked: now.saturating_duration_since(state.started),
                        });
                    }
                }
            }
            answered.clear();
        }
        if stray > 0 {
            conn.stats
                .with(|i| (0..stray).for_each(|_| i.record_error(0, now)));
        }
        if in_flight == 0 {
            // Nothing is owed: silence is not a stall.
            last_data = now;
        }
        if let Some(f) = fatal {
            break Some(f);
        }
        if let Some(done) = writer_done {
            if in_flight == 0 {
                break None;
            }
            if (state.deadline.is_some() || state.interrupted())
                && now.saturating_duration_since(done) > cfg.drain_timeout
            {
                // A timed or interrupted run: what is still unanswered is reported, not
                // waited for forever.
                break None;
            }
        }
        if outcome == ReadOutcome::Eof {
            break Some(ClientError::Closed { in_flight }.to_string());
        }
        if in_flight > 0 && now.saturating_duration_since(last_data) > cfg.response_timeout {
            break Some(format!(
                "no answer from the broker for {:?} with {in_flight} frame(s) in flight",
                cfg.response_timeout
            ));
        }
    };
    if let Some(f) = failure {
        state.fail(format!("connection {}: {f}", conn.index));
    }
    conn.lock().closed = true;
    conn.freed.notify_all();
    ledger
}
