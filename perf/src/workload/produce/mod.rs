//! The framed produce workload.
//!
//! Each connection is one task on a tokio runtime pinned to `--cpus`, over the client's
//! pipelined connection (`shardlog_client::mux::Mux`): it keeps at most `in_flight` frames
//! outstanding, each frame built by the harness (K messages copied from regions prebuilt once,
//! [`MessageRegion`], so per frame only the head and an optional timestamp are encoded) and
//! sent with its own stream id; the answer with that id, in any order, ends the frame's
//! latency. Frames handed over together leave in one vectored write.
//!
//! - **Closed loop** (no `rate`): every connection keeps `in_flight` frames outstanding; a
//!   frame's latency runs from the write that sent it.
//! - **Open loop** (`rate`): frame `f` is due at `start + f × period` (frames spread over the
//!   connections round-robin), and its latency runs from that *intended* time. When the broker
//!   stalls and the window fills, later frames are sent late and their latency shows the
//!   stall, instead of the stall being hidden by not sending (coordinated omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardlog_wire::startup::validate_topic;

use crate::client::framed::{connect_producer, MAX_IN_FLIGHT};
use crate::payload::{MessagePool, PayloadSpec, DEFAULT_POOL};
use crate::run::pacing::Schedule;
use crate::run::report::settings;
use crate::run::{
    cpus, Collector, ConnStats, ErrorLog, KeyOrder, Measured, Report, RunControl, Settings,
    SetupError, Stop, Workload,
};
use crate::verify::{tag_position, write_tag, AckLedger, KEYLESS, TAG_LEN};

mod conn;
mod region;

pub use region::MessageRegion;

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
    /// Compress each frame's records in the harness at this zstd level and send them with
    /// flag 0x08 (the broker stores them as they come).
    pub producer_compress: Option<i32>,
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
            producer_compress: None,
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

impl Workload for ProduceConfig {
    const NAME: &'static str = "produce";
    type Outcome = ProduceOutcome;

    fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.in_flight == 0 || self.in_flight > MAX_IN_FLIGHT {
            return Err(format!(
                "--in-flight must be between 1 and {MAX_IN_FLIGHT} (half the stream ids of one connection)"
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
        self.stop.validate()?;
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err("--rate must be a positive number of messages per second".into());
            }
        }
        cpus::check_if_any(&self.cpus)
    }

    fn settings(&self) -> Settings {
        settings(serde_json::json!({
            "mode": if self.rate.is_some() { "open-loop" } else { "closed-loop" },
            "rate": self.rate,
            "connections": self.connections,
            "in_flight": self.in_flight,
            "messages_per_frame": self.messages_per_frame,
            "message_size": self.payload.size,
            "randomness": self.payload.randomness,
            "payload": self.payload.kind.name(),
            "keys": self.keys,
            "key_order": self.key_order.name(),
            "topic": self.topic,
            "timestamps": self.timestamps,
            "producer_compress": self.producer_compress,
            "verify": self.ledger,
            "warmup_s": self.warmup.as_secs_f64(),
            "target": self.addr,
        }))
    }

    fn stop_on(&mut self, flag: &'static AtomicBool) {
        self.interrupt = Some(flag);
    }

    fn run(self) -> Result<ProduceOutcome, SetupError> {
        run(self)
    }
}

impl ProduceConfig {
    /// Messages in frame `frame` (the last frame of a `Messages` run may be short).
    fn messages_in(&self, frame: u64) -> usize {
        self.stop.messages_in(frame, self.messages_per_frame)
    }

    fn key_of(&self, frame: u64) -> u32 {
        if self.keys == 0 {
            return KEYLESS;
        }
        self.key_order.pick(frame, self.keys, self.payload.seed) as u32
    }
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

impl AsRef<Report> for ProduceOutcome {
    fn as_ref(&self) -> &Report {
        &self.report
    }
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
        let at = self.region_of(frame);
        let region = &self.regions[at.index];
        let mut bytes = region.first(messages).to_vec();
        for i in 0..messages {
            let pool_index = (at.first_message as usize + i) % self.pool.len();
            let at = region.message_start(i) + positions[pool_index];
            write_tag(&mut bytes[at..], frame, i as u16);
        }
        bytes
    }

    /// The region frame `frame` sends its messages from.
    fn region_of(&self, frame: u64) -> RegionOf {
        let index = (frame % self.regions.len() as u64) as usize;
        RegionOf {
            index,
            first_message: (index * self.regions[index].len()) as u64,
        }
    }
}

/// A frame's prebuilt region, and the pool index of its first message.
#[derive(Debug, Clone, Copy)]
struct RegionOf {
    index: usize,
    first_message: u64,
}

/// State shared by all connections of a run.
struct RunState {
    cfg: ProduceConfig,
    ctl: RunControl,
    prebuilt: Prebuilt,
    started: Instant,
    /// Closed loop: the next frame index to send.
    next_frame: AtomicU64,
    /// One past the highest frame index sent.
    frames_sent: AtomicU64,
    total_frames: Option<u64>,
    /// Open loop: when each frame is due (all connections together).
    schedule: Schedule,
    errors: ErrorLog,
}

impl RunState {
    /// Stop sending: a connection failed, or Ctrl-C.
    fn halted(&self) -> bool {
        self.ctl.aborted() || self.ctl.interrupted()
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

/// One connection's place in the run.
struct Conn {
    index: usize,
    stats: Arc<ConnStats>,
    /// Frames still unanswered when the connection's task ended.
    unanswered: AtomicU64,
}

/// Runs the workload to the end. A connection failing mid-run ends the run early; the report
/// then says why in `failure`.
pub fn run(cfg: ProduceConfig) -> Result<ProduceOutcome, SetupError> {
    cfg.validate()?;
    cpus::pin(&cfg.cpus, 0);
    let prebuilt = Prebuilt::new(&cfg);
    let rt = cpus::runtime(&cfg.cpus, "produce")?;

    // Connect everything before the clock starts.
    let muxes = rt.block_on(async {
        let mut muxes = Vec::with_capacity(cfg.connections);
        for i in 0..cfg.connections {
            let mux = connect_producer(
                &cfg.addr,
                &cfg.topic,
                cfg.in_flight,
                cfg.handshake_timeout,
                cfg.response_timeout,
            )
            .await
            .map_err(|e| {
                SetupError(format!(
                    "connection {} of {} to the framed endpoint {} failed: {e}",
                    i + 1,
                    cfg.connections,
                    cfg.addr
                ))
            })?;
            muxes.push(mux);
        }
        Ok::<_, SetupError>(muxes)
    })?;

    let started = Instant::now();
    let period = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.messages_per_frame as f64 / r));
    let state = Arc::new(RunState {
        total_frames: cfg.stop.units(cfg.messages_per_frame),
        ctl: RunControl::new(cfg.interrupt, cfg.stop.deadline(started)),
        cfg,
        prebuilt,
        started,
        next_frame: AtomicU64::new(0),
        frames_sent: AtomicU64::new(0),
        schedule: Schedule { started, period },
        errors: ErrorLog::default(),
    });

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut conns = Vec::new();
    let mut tasks = Vec::new();
    for (index, mux) in muxes.into_iter().enumerate() {
        let conn = Arc::new(Conn {
            index,
            stats: Arc::new(ConnStats::default()),
            unanswered: AtomicU64::new(0),
        });
        conns.push(conn.clone());
        let (s, tx) = (state.clone(), done_tx.clone());
        tasks.push(rt.spawn(async move {
            let ledger = conn::drive(&s, &conn, mux).await;
            let _ = tx.send(());
            ledger
        }));
    }
    drop(done_tx);

    // Collect once a second until every connection has finished.
    let mut collector = Collector::new(
        conns.iter().map(|c| c.stats.clone()).collect(),
        started,
        state.cfg.warmup,
        state.cfg.progress,
    );
    collector.wait(&done_rx, conns.len(), || None);
    let ledgers = rt.block_on(async {
        let mut ledgers = Vec::new();
        for t in tasks {
            match t.await {
                Ok(l) => ledgers.push(l),
                Err(e) => state.ctl.fail(format!("a connection task failed: {e}")),
            }
        }
        ledgers
    });
    let end = Instant::now();
    collector.finish(end);
    drop(rt);

    let unanswered: u64 = conns
        .iter()
        .map(|c| c.unanswered.load(Ordering::SeqCst))
        .sum();
    let measured = Measured::window(&collector.total, collector.measure_from(), end);
    let mut settings = state.cfg.settings();
    settings.insert("unanswered_frames".into(), unanswered.into());
    settings.insert("interrupted".into(), state.ctl.interrupted().into());
    let report = Report {
        workload: ProduceConfig::NAME.into(),
        measured,
        settings,
        error_codes: state.errors.by_code(),
        failure: state.ctl.failure(),
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
