//! The report: throughput and latency of the measured window, the end-of-run summary as text
//! or one JSON object, and the count of error answers per code.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::progress::Interval;

/// A workload's settings (and what its run found), as the report's JSON object holds them.
pub type Settings = serde_json::Map<String, serde_json::Value>;

/// The object of a `json!({...})`.
pub fn settings(v: serde_json::Value) -> Settings {
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("a json! object"),
    }
}

/// Error answers: counted per code, each distinct message printed once on stderr (and at most
/// [`ErrorLog::MAX_PRINTED`] of them, so a broker answering every frame with a different
/// message cannot flood the terminal).
#[derive(Debug, Default)]
pub struct ErrorLog {
    inner: Mutex<ErrorLogInner>,
}

#[derive(Debug, Default)]
struct ErrorLogInner {
    by_code: BTreeMap<String, u64>,
    /// (code, message) pairs seen, at most [`ErrorLog::MAX_DISTINCT`].
    seen: HashSet<(String, String)>,
    printed: usize,
    suppressed_note: bool,
}

impl ErrorLog {
    pub const MAX_PRINTED: usize = 20;
    const MAX_DISTINCT: usize = 1000;

    /// Counts one broker ERROR; prints it the first time its message is seen (when `print`).
    pub fn report(&self, code: u8, message: &str, print: bool) {
        let name = crate::client::error::code_name(code);
        self.count(format!("{name}({code})"), message, print, true, || {
            format!("broker error {name} ({code}): {message}")
        });
    }

    /// Counts one error under `code` (e.g. `unavailable(6)`); the first time `message` is seen
    /// with it (when `print`), prints `line()`. With `note`, says once when it stops printing.
    pub fn count(
        &self,
        code: String,
        message: &str,
        print: bool,
        note: bool,
        line: impl FnOnce() -> String,
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.by_code.entry(code.clone()).or_default() += 1;
        if inner.seen.len() >= Self::MAX_DISTINCT || !inner.seen.insert((code, message.into())) {
            return;
        }
        if !print {
            return;
        }
        if inner.printed < Self::MAX_PRINTED {
            inner.printed += 1;
            eprintln!("{}", line());
        } else if note && !inner.suppressed_note {
            inner.suppressed_note = true;
            eprintln!("(more distinct broker errors; not printing them, see the counts per code)");
        }
    }

    /// Error count per code name, e.g. `{"unavailable(6)": 12}`.
    pub fn by_code(&self) -> BTreeMap<String, u64> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_code
            .clone()
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
    /// The measured window runs from the end of the warmup (`from`) to the last answer (or
    /// `end`, when nothing was answered).
    pub fn window(total: &Interval, from: Instant, end: Instant) -> Measured {
        let until = total.last_answer.unwrap_or(end).max(from);
        Measured::from_interval(total, until - from)
    }

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

impl AsRef<Report> for Report {
    fn as_ref(&self) -> &Report {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
