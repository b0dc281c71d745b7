//! Measurements: per-connection counters and latency histograms, merged once a second into a
//! progress line and into the run's totals; the final summary as text or one JSON object.
//!
//! Each connection owns a [`ConnStats`] (a mutex nobody else takes except the collector, once a
//! second), so recording costs one uncontended lock per batch of answers. The [`Collector`]
//! drains every connection's interval into the second's histogram, prints the progress line,
//! and adds the second to the totals unless it belongs to the warmup.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms hold (one hour, in μs); larger values are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in μs, 1 μs to an hour, 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Counters and latencies of one stretch of time.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Acknowledgement latency in μs, one sample per acknowledged frame.
    pub latency: Histogram<u64>,
    pub acked_messages: u64,
    pub acked_frames: u64,
    /// Message payload bytes acknowledged (without framing or length prefixes).
    pub acked_bytes: u64,
    /// Frames answered with an ERROR.
    pub errors: u64,
    /// Messages in those frames.
    pub failed_messages: u64,
    /// When the last answer in this interval arrived.
    pub last_answer: Option<Instant>,
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            latency: new_histogram(),
            acked_messages: 0,
            acked_frames: 0,
            acked_bytes: 0,
            errors: 0,
            failed_messages: 0,
            last_answer: None,
        }
    }
}

impl Interval {
    pub fn record_ack(&mut self, latency: Duration, messages: u64, bytes: u64, at: Instant) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.latency.saturating_record(us);
        self.acked_frames += 1;
        self.acked_messages += messages;
        self.acked_bytes += bytes;
        self.answered(at);
    }

    pub fn record_error(&mut self, messages: u64, at: Instant) {
        self.errors += 1;
        self.failed_messages += messages;
        self.answered(at);
    }

    fn answered(&mut self, at: Instant) {
        self.last_answer = Some(self.last_answer.map_or(at, |t| t.max(at)));
    }

    pub fn add(&mut self, other: &Interval) {
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        self.acked_messages += other.acked_messages;
        self.acked_frames += other.acked_frames;
        self.acked_bytes += other.acked_bytes;
        self.errors += other.errors;
        self.failed_messages += other.failed_messages;
        if let Some(t) = other.last_answer {
            self.answered(t);
        }
    }

    pub fn reset(&mut self) {
        self.latency.reset();
        self.acked_messages = 0;
        self.acked_frames = 0;
        self.acked_bytes = 0;
        self.errors = 0;
        self.failed_messages = 0;
        self.last_answer = None;
    }
}

/// One connection's counters since the collector last drained them.
#[derive(Debug, Default)]
pub struct ConnStats {
    current: Mutex<Interval>,
}

impl ConnStats {
    /// Runs `f` with the connection's current interval (hold it briefly: one batch of answers).
    pub fn with<R>(&self, f: impl FnOnce(&mut Interval) -> R) -> R {
        f(&mut self.current.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Adds the current interval to `into` and starts a new one.
    pub fn drain_into(&self, into: &mut Interval) {
        self.with(|i| {
            into.add(i);
            i.reset();
        })
    }
}

/// ERROR answers: counted per code, each distinct message printed once (and at most
/// [`ErrorLog::MAX_PRINTED`] of them, so a broker answering every frame with a different message
/// cannot flood the terminal).
#[derive(Debug, Default)]
pub struct ErrorLog {
    inner: Mutex<ErrorLogInner>,
}

#[derive(Debug, Default)]
struct ErrorLogInner {
    distinct: HashMap<(u8, String), u64>,
    by_code: BTreeMap<u8, u64>,
    printed: usize,
    suppressed_note: bool,
}

impl ErrorLog {
    pub const MAX_PRINTED: usize = 20;

    /// Counts one ERROR; prints it on stderr the first time its message is seen (when `print`).
    pub fn report(&self, code: u8, message: &str, print: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.by_code.entry(code).or_default() += 1;
        if inner.distinct.len() >= 1000 && !inner.distinct.contains_key(&(code, message.into())) {
            return;
        }
        let count = inner
            .distinct
            .entry((code, message.to_string()))
            .or_default();
        *count += 1;
        if *count == 1 && print {
            if inner.printed < Self::MAX_PRINTED {
                inner.printed += 1;
                eprintln!(
                    "broker error {} ({code}): {message}",
                    crate::framed::code_name(code)
                );
            } else if !inner.suppressed_note {
                inner.suppressed_note = true;
                eprintln!(
                    "(more distinct broker errors; not printing them, see the counts per code)"
                );
            }
        }
    }

    /// ERROR count per code name, e.g. `{"unavailable(6)": 12}`.
    pub fn by_code(&self) -> BTreeMap<String, u64> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .by_code
            .iter()
            .map(|(c, n)| (format!("{}({c})", crate::framed::code_name(*c)), *n))
            .collect()
    }
}

/// Merges the connections' intervals once a second.
pub struct Collector {
    conns: Vec<Arc<ConnStats>>,
    started: Instant,
    measure_from: Instant,
    progress: bool,
    /// What the progress line calls the running count ("acked", "consumed").
    label: &'static str,
    second: Interval,
    /// Everything after the warmup.
    pub total: Interval,
    /// Everything, warmup included (progress totals).
    pub all: Interval,
}

impl Collector {
    pub fn new(
        conns: Vec<Arc<ConnStats>>,
        started: Instant,
        warmup: Duration,
        progress: bool,
    ) -> Collector {
        Collector {
            conns,
            started,
            measure_from: started + warmup,
            progress,
            label: "acked",
            second: Interval::default(),
            total: Interval::default(),
            all: Interval::default(),
        }
    }

    /// Names the running count in the progress line (default "acked").
    pub fn with_label(mut self, label: &'static str) -> Collector {
        self.label = label;
        self
    }

    /// When the measured part of the run starts (after the warmup).
    pub fn measure_from(&self) -> Instant {
        self.measure_from
    }

    /// The next moment to call [`Collector::tick`]: each whole second, and the warmup's end.
    pub fn next_tick(&self, now: Instant) -> Instant {
        let elapsed = now.saturating_duration_since(self.started);
        let next_second = self.started + Duration::from_secs(elapsed.as_secs() + 1);
        if now < self.measure_from {
            next_second.min(self.measure_from)
        } else {
            next_second
        }
    }

    /// Drains the connections; prints a progress line if asked. `now` is the tick's time.
    pub fn tick(&mut self, now: Instant, last_tick: Instant) {
        self.drain(now, last_tick, self.progress);
    }

    /// The last drain at the end of a run: no progress line for its sliver of a second.
    pub fn finish(&mut self, now: Instant, last_tick: Instant) {
        self.drain(now, last_tick, false);
    }

    fn drain(&mut self, now: Instant, last_tick: Instant, print: bool) {
        self.second.reset();
        for c in &self.conns {
            c.drain_into(&mut self.second);
        }
        self.all.add(&self.second);
        let warmup = last_tick < self.measure_from;
        if !warmup {
            self.total.add(&self.second);
        }
        if print {
            let secs = now.saturating_duration_since(last_tick).as_secs_f64();
            eprintln!("{}", self.progress_line(now, secs, warmup));
        }
    }

    fn progress_line(&self, now: Instant, secs: f64, warmup: bool) -> String {
        let s = &self.second;
        let per = |v: u64| if secs > 0.0 { v as f64 / secs } else { 0.0 };
        let mut line = format!(
            "[{:>6.1}s] {:>10.0} msg/s {:>8.1} MB/s  {} {:>10}  errors {:>5}  p99 ",
            now.saturating_duration_since(self.started).as_secs_f64(),
            per(s.acked_messages),
            per(s.acked_bytes) / 1e6,
            self.label,
            self.all.acked_messages,
            self.all.errors,
        );
        if s.acked_frames > 0 {
            let _ = write!(line, "{} μs", s.latency.value_at_quantile(0.99));
        } else {
            line.push('-');
        }
        if warmup {
            line.push_str("  (warmup)");
        }
        line
    }
}

/// Throughput and latency of the measured part of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub duration_s: f64,
    /// Messages acknowledged.
    pub acked: u64,
    pub acked_frames: u64,
    /// Message payload bytes acknowledged.
    pub acked_bytes: u64,
    /// Frames answered with an ERROR.
    pub errors: u64,
    /// Messages in frames answered with an ERROR.
    pub failed_messages: u64,
    pub msgs_per_sec: f64,
    /// Payload megabytes (10^6 bytes) per second.
    pub mb_per_sec: f64,
    pub frames_per_sec: f64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Measured {
    /// Sums up `total` over `duration` (at least 1 μs).
    pub fn from_interval(total: &Interval, duration: Duration) -> Measured {
        let secs = duration.as_secs_f64().max(1e-6);
        let h = &total.latency;
        let q = |quantile: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(quantile)
            }
        };
        Measured {
            duration_s: secs,
            acked: total.acked_messages,
            acked_frames: total.acked_frames,
            acked_bytes: total.acked_bytes,
            errors: total.errors,
            failed_messages: total.failed_messages,
            msgs_per_sec: total.acked_messages as f64 / secs,
            mb_per_sec: total.acked_bytes as f64 / secs / 1e6,
            frames_per_sec: total.acked_frames as f64 / secs,
            min_us: if h.is_empty() { 0 } else { h.min() },
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if h.is_empty() { 0 } else { h.max() },
        }
    }
}

/// The end-of-run report of any workload.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: String,
    #[serde(flatten)]
    pub measured: Measured,
    /// The workload's settings (connections, sizes, rate, ...), as a JSON object.
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// ERROR answers per code.
    pub error_codes: BTreeMap<String, u64>,
    /// Why the run stopped early, if it did.
    pub failure: Option<String>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }

    /// The human-readable summary.
    pub fn to_text(&self) -> String {
        let m = &self.measured;
        let mut s = String::new();
        let _ = writeln!(s, "workload     {}", self.workload);
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(t) => format!("{k}={t}"),
                other => format!("{k}={other}"),
            })
            .collect();
        let _ = writeln!(s, "settings     {}", settings.join(" "));
        let _ = writeln!(
            s,
            "duration     {:.2} s (measured, after warmup)",
            m.duration_s
        );
        let _ = writeln!(
            s,
            "acked        {} messages in {} frames, {:.1} MB",
            m.acked,
            m.acked_frames,
            m.acked_bytes as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "errors       {} frames ({} messages){}",
            m.errors,
            m.failed_messages,
            if self.error_codes.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.error_codes)
            }
        );
        let _ = writeln!(
            s,
            "throughput   {:.0} msg/s  {:.1} MB/s  {:.0} frames/s",
            m.msgs_per_sec, m.mb_per_sec, m.frames_per_sec
        );
        let _ = writeln!(
            s,
            "latency μs   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (min {}, mean {:.0})",
            m.p50_us, m.p90_us, m.p99_us, m.p999_us, m.max_us, m.min_us, m.mean_us
        );
        if let Some(f) = &self.failure {
            let _ = writeln!(s, "FAILED       {f}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_and_percentiles() {
        let now = Instant::now();
        let a = Arc::new(ConnStats::default());
        let b = Arc::new(ConnStats::default());
        a.with(|i| {
            for ms in 1..=100u64 {
                i.record_ack(Duration::from_millis(ms), 10, 1000, now);
            }
        });
        b.with(|i| {
            i.record_ack(Duration::from_secs(2), 10, 1000, now);
            i.record_error(10, now);
        });
        let mut c = Collector::new(vec![a.clone(), b], now, Duration::ZERO, false);
        c.tick(now + Duration::from_secs(1), now);
        assert_eq!(c.total.acked_messages, 1010);
        assert_eq!(c.total.errors, 1);
        let m = Measured::from_interval(&c.total, Duration::from_secs(2));
        assert_eq!(m.msgs_per_sec, 505.0);
        // 101 samples: the median is the 51st, 51 ms.
        assert!((50_900..=51_100).contains(&m.p50_us), "{}", m.p50_us);
        assert!(m.max_us >= 1_999_000);
        // Drained: nothing left in the connection.
        a.with(|i| assert_eq!(i.acked_frames, 0));
    }

    #[test]
    fn warmup_is_excluded_from_totals() {
        let start = Instant::now();
        let a = Arc::new(ConnStats::default());
        let mut c = Collector::new(vec![a.clone()], start, Duration::from_secs(2), false);
        a.with(|i| i.record_ack(Duration::from_millis(1), 5, 5, start));
        c.tick(start + Duration::from_secs(1), start);
        a.with(|i| i.record_ack(Duration::from_millis(1), 7, 7, start));
        c.tick(
            start + Duration::from_secs(2),
            start + Duration::from_secs(1),
        );
        a.with(|i| i.record_ack(Duration::from_millis(1), 11, 11, start));
        c.tick(
            start + Duration::from_secs(3),
            start + Duration::from_secs(2),
        );
        assert_eq!(c.total.acked_messages, 11);
        assert_eq!(c.all.acked_messages, 23);
        assert_eq!(
            c.next_tick(start + Duration::from_millis(1500)),
            start + Duration::from_secs(2)
        );
    }

    #[test]
    fn error_log_counts_by_code() {
        let log = ErrorLog::default();
        for _ in 0..3 {
            log.report(6, "disk nearly full", false);
        }
        log.report(3, "bad crc", false);
        let codes = log.by_code();
        assert_eq!(codes["unavailable(6)"], 3);
        assert_eq!(codes["protocol(3)"], 1);
    }
}
