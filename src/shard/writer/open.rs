//! Opening and closing a partition's log. A log is opened on first use (not at start), by one
//! open however many requests race for it, and closed again when the shard's open files
//! exceed `--max-open-files` and it is among the least recently used idle logs (see
//! [`crate::shard::open_files`]). A closed log is reopened on demand; the close leaves the
//! clean-shutdown marker, so the reopen checks the log without decompressing it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::rt;
use crate::shard::notify::LocalNotify;
use crate::storage::{retention_due, PartitionLog, StorageError};

use super::PartitionWriter;

/// What opening a partition's log gives.
pub(super) type OpenResult = Result<Rc<PartitionLog>, Arc<StorageError>>;

/// An open of a partition's log in progress: every caller that finds the log not open yet
/// waits for this one open instead of running its own (single-flight).
#[derive(Default)]
pub(super) struct OpenFlight {
    /// The open's result, once it has finished.
    result: RefCell<Option<OpenResult>>,
    /// Signalled when `result` is set.
    done: LocalNotify,
}

impl OpenFlight {
    /// Returns once the open has finished (its result is set).
    pub(super) async fn wait(&self) {
        loop {
            let done = self.done.notified();
            if self.result.borrow().is_some() {
                return;
            }
            done.await;
        }
    }
}

/// A close of the log in progress: the next open waits for it, so recovery never runs
/// against files a close is still writing.
#[derive(Default)]
pub(super) struct CloseFlight {
    finished: Cell<bool>,
    done: LocalNotify,
}

impl CloseFlight {
    async fn wait(&self) {
        loop {
            let done = self.done.notified();
            if self.finished.get() {
                return;
            }
            done.await;
        }
    }
}

impl PartitionWriter {
    /// Opens (and recovers) the partition's log if it is not open yet, and marks it used now
    /// (an O(1) touch of the shard's least-recently-used order).
    ///
    /// Single-flight: however many requests race for a partition that is not open, its log is
    /// opened (and recovered) once; every racer gets that open's log, or its error. The open
    /// runs in its own task, so a caller that gives up (a closed connection) does not cancel it
    /// for the others. A failed open is not kept: the next caller tries again. Recovery thus
    /// never runs against a log a writer holds: once a log is open, it is not opened again
    /// until it has been closed.
    pub async fn open(self: &Rc<Self>) -> OpenResult {
        if let Some(topic) = self.deleted.get() {
            // Opening would make the partition's directory again under the topic's name.
            return Err(Arc::new(StorageError::Failed {
                reason: format!("topic '{topic}' was deleted"),
                disk_full: false,
            }));
        }
        self.files.touch(&self.last_used);
        if let Some(log) = self.log.borrow().as_ref() {
            return Ok(log.clone());
        }
        let flight = self
            .opening
            .borrow_mut()
            .get_or_insert_with(|| self.start_open())
            .clone();
        loop {
            // Registered before the check, so a result set in between still wakes us.
            let done = flight.done.notified();
            let result = flight.result.borrow().clone();
            if let Some(result) = result {
                return self.finish_open(&flight, result);
            }
            done.await;
        }
    }

    /// Starts the one open of the log, in a task of its own (after any close in progress).
    fn start_open(&self) -> Rc<OpenFlight> {
        let flight = Rc::new(OpenFlight::default());
        let dir = self.dir.clone();
        let config = self.config.clone();
        let budget = self.tail_budget.clone();
        let metrics = self.metrics.clone();
        let closing = self.closing.borrow().clone();
        let slots = self.files.recovery_slots();
        let fs = self.fs.clone();
        let f = flight.clone();
        rt::spawn_detached(async move {
            if let Some(c) = closing {
                c.wait().await;
            }
            // Closed only if the shard is going away; then the open goes ahead unbounded.
            let _slot = slots.acquire_static_permit(1).await;
            let result = match PartitionLog::open_in(fs, dir.clone(), config, budget).await {
                Ok((log, report)) => {
                    // Partitions reopen whenever the open-files bound closed them: only a
                    // recovery that repaired something is worth more than a debug line.
                    if report.torn_bytes_cut > 0
                        || report.corrupt_chunks > 0
                        || report.index_rebuilt > 0
                    {
                        tracing::info!(dir = %dir.display(), ?report, "partition recovered");
                    } else {
                        tracing::debug!(dir = %dir.display(), ?report, "partition opened");
                    }
                    metrics.recovered(&report);
                    Ok(Rc::new(log))
                }
                Err(e) => Err(Arc::new(e)),
            };
            *f.result.borrow_mut() = Some(result);
            f.done.notify();
        });
        flight
    }

    /// Installs a finished open's log (the first of its waiters to wake does it, and tells
    /// the shard's open files) and ends the flight, so a failed open can be retried by the
    /// next caller.
    fn finish_open(self: &Rc<Self>, flight: &Rc<OpenFlight>, result: OpenResult) -> OpenResult {
        {
            let mut opening = self.opening.borrow_mut();
            if opening.as_ref().is_some_and(|f| Rc::ptr_eq(f, flight)) {
                *opening = None;
            }
        }
        let log = result?;
        if let Some(topic) = self.deleted.get() {
            // Finished after the topic was deleted: not kept (the fence closed the rest).
            return Err(Arc::new(StorageError::Failed {
                reason: format!("topic '{topic}' was deleted"),
                disk_full: false,
            }));
        }
        let (log, new) = {
            let mut slot = self.log.borrow_mut();
            let new = slot.is_none();
            (slot.get_or_insert(log).clone(), new)
        };
        if new {
            self.files.opened(self);
        }
        Ok(log)
    }

    /// The open log, if any.
    pub fn log(&self) -> Option<Rc<PartitionLog>> {
        self.log.borrow().clone()
    }

    /// Descriptors the log holds now (0 when it is closed).
    pub fn open_files(&self) -> usize {
        self.log.borrow().as_ref().map_or(0, |l| l.open_files())
    }

    /// When the log was last used, in the shard's use order.
    pub fn last_used(&self) -> u64 {
        self.last_used.get()
    }

    /// Whether the log is open and nothing uses it: no frame queued or being written, no open
    /// in progress, and no read, retention run or tailing reader holding it (each holds a
    /// reference to the log while it works).
    pub fn is_idle(&self) -> bool {
        !self.running.get()
            && self.queue.borrow().is_empty()
            && self.opening.borrow().is_none()
            && self
                .log
                .borrow()
                .as_ref()
                .is_some_and(|l| Rc::strong_count(l) == 1)
    }

    /// Closes the log if it is idle: writes its index, makes it durable and leaves the
    /// clean-shutdown marker, then closes its files, in a task of its own. Returns whether it
    /// started a close. The next [`open`](Self::open) waits for the close, then reopens.
    pub fn close_if_idle(&self) -> bool {
        if !self.is_idle() {
            return false;
        }
        let Some(log) = self.log.borrow_mut().take() else {
            return false;
        };
        self.closed_stats
            .set((log.segment_count() as u64, log.disk_bytes()));
        let flight = Rc::new(CloseFlight::default());
        *self.closing.borrow_mut() = Some(flight.clone());
        rt::spawn_detached(async move {
            if let Err(e) = log.close_clean().await {
                tracing::warn!(dir = %log.dir().display(), error = %e,
                    "could not close an idle partition cleanly; its next open checks it fully");
            }
            if let Ok(log) = Rc::try_unwrap(log) {
                let dir = log.dir().to_path_buf();
                if let Err(e) = log.close().await {
                    tracing::warn!(dir = %dir.display(), error = %e, "closing an idle partition");
                }
            }
            flight.finished.set(true);
            flight.done.notify();
        });
        true
    }

    /// Whether retention has work in the log while it is closed (see
    /// [`retention_due`]); an open log answers for itself when retention runs.
    pub async fn retention_due_while_closed(&self, now: std::time::SystemTime) -> bool {
        let closed = self.log.borrow().is_none();
        closed && retention_due(&self.fs, &self.dir, &self.config, now).await
    }

    /// Waits for a close in progress, if any (at shutdown: its marker must be written).
    pub async fn wait_closed(&self) {
        let closing = self.closing.borrow().clone();
        if let Some(c) = closing {
            c.wait().await;
        }
    }

    /// The log's segment count and bytes on disk: live while it is open, as they were when
    /// it was last closed otherwise (zero if it was never opened since start).
    pub fn disk_stats(&self) -> (u64, u64) {
        match self.log.borrow().as_ref() {
            Some(l) => (l.segment_count() as u64, l.disk_bytes()),
            None => self.closed_stats.get(),
        }
    }
}
