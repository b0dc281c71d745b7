//! Run control shared by every workload: the [`Workload`] contract, and the pieces each run is
//! built from.
//!
//! - [`control`]: the run's shared state (first failure, abort, Ctrl-C, deadline) and the worker
//!   threads that signal when they are done.
//! - [`cpus`]: the one `--cpus` check, and pinning a thread to its CPU.
//! - [`pacing`]: when a run stops ([`Stop`]), how units (frames, calls) split the messages, which
//!   key each unit gets ([`KeyOrder`]), and the open-loop schedule.
//! - [`progress`]: per-connection intervals, drained once a second into the progress line and the
//!   run's totals.
//! - [`report`]: the measured window, the end-of-run [`Report`], broker ERROR counts.

use std::sync::atomic::AtomicBool;
use std::time::{SystemTime, UNIX_EPOCH};

pub mod control;
pub mod cpus;
pub mod pacing;
pub mod progress;
pub mod report;

pub use control::RunControl;
pub use pacing::{KeyOrder, Stop};
pub use progress::{Collector, ConnStats, Interval};
pub use report::{ErrorLog, Measured, Report, Settings};

/// The contract every broker workload follows (`produce`, `consume`, `e2e`, `grpc-produce`,
/// `grpc-consume`); the CLI drives them all the same way through it.
///
/// - [`Workload::validate`] runs before anything connects; its message names the flag to
///   change (the CLI exits 2).
/// - [`Workload::run`] fails only when the run cannot start (a connection refused, STARTUP or
///   REGISTER refused: the CLI exits 1 without a report). Once running, a failure ends the run
///   early and becomes the report's `failure`.
/// - The report's `workload` is [`Workload::NAME`] and its settings start with
///   [`Workload::settings`]; the run adds what it found (`interrupted`, ...).
/// - After [`Workload::stop_on`], the run stops sending when the flag turns true (Ctrl-C),
///   drains what is in flight, and still reports.
pub trait Workload: Sized {
    /// `"workload"` in the report.
    const NAME: &'static str;
    /// What a run hands back: its report, and whatever else the caller needs (e.g. produce's
    /// ledger for `--verify`).
    type Outcome: AsRef<Report>;

    /// Checks the settings; the message says what to change.
    fn validate(&self) -> Result<(), String>;

    /// The workload's settings, for the report.
    fn settings(&self) -> Settings;

    /// Stop (and drain, and report) once `flag` turns true.
    fn stop_on(&mut self, flag: &'static AtomicBool);

    /// Runs the workload to the end.
    fn run(self) -> Result<Self::Outcome, SetupError>;
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

impl From<String> for SetupError {
    fn from(s: String) -> SetupError {
        SetupError(s)
    }
}

/// Wall-clock time in μs since the epoch (the broker's record timestamps).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
