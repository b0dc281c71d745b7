//! Progress: per-connection counters and latency histograms, merged once a second into a
//! progress line and into the run's totals.
//!
//! Each connection owns a [`ConnStats`] (a mutex nobody else takes except the collector, once a
//! second), so recording costs one uncontended lock per batch of answers. The [`Collector`]
//! drains every connection's interval into the second's histogram, prints the progress line,
//! and adds the second to the totals unless it belongs to the warmup.

use std::fmt::Write as _;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency the histograms hold (one hour, in μs); larger values are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in μs, 1 μs to an hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
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

/// Merges the connections' intervals once a second.
pub struct Collector {
    conns: Vec<Arc<ConnStats>>,
    started: Instant,
    measure_from: Instant,
    progress: bool,
    /// What the progress line calls the running count ("acked", "consumed").
    label: &'static str,
    second: Interval,
    /// When the collector last drained the connections.
    last_tick: Instant,
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
            last_tick: started,
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

    /// Ticks once a second until `running` workers have said they are done on `done` (or they
    /// are all gone, or `give_up` says a time that has passed).
    pub fn wait(
        &mut self,
        done: &mpsc::Receiver<()>,
        mut running: usize,
        give_up: impl Fn() -> Option<Instant>,
    ) {
        while running > 0 {
            let now = Instant::now();
            let mut next = self.next_tick(now);
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
                    if now >= self.next_tick(self.last_tick) {
                        self.tick(now);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// Drains the connections; prints a progress line if asked. `now` is the tick's time.
    pub fn tick(&mut self, now: Instant) {
        self.drain(now, self.progress);
    }

    /// The last drain at the end of a run: no progress line for its sliver of a second.
    pub fn finish(&mut self, now: Instant) {
        self.drain(now, false);
    }

    fn drain(&mut self, now: Instant, print: bool) {
        let last_tick = self.last_tick;
        self.last_tick = now;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::report::Measured;

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
        c.tick(now + Duration::from_secs(1));
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
        c.tick(start + Duration::from_secs(1));
        a.with(|i| i.record_ack(Duration::from_millis(1), 7, 7, start));
        c.tick(start + Duration::from_secs(2));
        a.with(|i| i.record_ack(Duration::from_millis(1), 11, 11, start));
        c.tick(start + Duration::from_secs(3));
        assert_eq!(c.total.acked_messages, 11);
        assert_eq!(c.all.acked_messages, 23);
        assert_eq!(
            c.next_tick(start + Duration::from_millis(1500)),
            start + Duration::from_secs(2)
        );
    }
}
