//! The state every connection (thread or task) of a run shares, and the threads themselves.
//!
//! A run keeps going until its stop condition; it ends early when a connection fails (the first
//! failure is kept for the report and every connection stops), and stops sending on Ctrl-C (the
//! `interrupt` flag), drains, and reports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::cpus;

/// A run's failure, abort, interrupt and deadline.
#[derive(Debug)]
pub struct RunControl {
    /// Set when the run must stop early (a connection failed).
    abort: AtomicBool,
    failure: Mutex<Option<String>>,
    interrupt: Option<&'static AtomicBool>,
    deadline: Option<Instant>,
}

impl RunControl {
    pub fn new(interrupt: Option<&'static AtomicBool>, deadline: Option<Instant>) -> RunControl {
        RunControl {
            abort: AtomicBool::new(false),
            failure: Mutex::new(None),
            interrupt,
            deadline,
        }
    }

    /// Ends the run early; the first failure is the one reported.
    pub fn fail(&self, what: String) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(what);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    /// A connection failed: everyone stops.
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Ctrl-C: stop sending, drain, report.
    pub fn interrupted(&self) -> bool {
        self.interrupt.is_some_and(|i| i.load(Ordering::Relaxed))
    }

    /// When a timed run stops sending.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Aborted, interrupted, or past the deadline.
    pub fn should_stop(&self) -> bool {
        self.aborted() || self.interrupted() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Why the run failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Starts a named thread pinned to the `cpu_index`-th CPU of `cpus` (if any) running `f`.
pub fn spawn_pinned<T: Send + 'static>(
    name: String,
    cpus: Option<Vec<usize>>,
    cpu_index: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            cpus::pin(&cpus, cpu_index);
            f()
        })
        .expect("spawn a harness thread")
}
