//! The bound on a shard's open files (`--max-open-files`). Every partition in use holds
//! descriptors (its segment files and the index being written), so without a bound the
//! descriptors a broker needs grow with every topic it has ever served, and a restart of a
//! broker with many topics fails under a common `RLIMIT_NOFILE`. Partitions are therefore
//! opened on first use, not at start, and when a shard's open logs hold more files than the
//! bound, the least recently used idle ones are closed; a closed partition reopens on demand.
//!
//! The hot path pays one counter increment per use ([`OpenFiles::touch`]: a chunk written, a
//! read served). The search for what to close runs only when a log opens and once a second
//! (a log busy when the bound was passed may be idle by then): it walks the open logs, at
//! most a few per open file allowed, and closes down to 7/8 of the bound so that one open
//! does not pay for a walk each time.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::writer::PartitionWriter;
use crate::rt;

/// The shard's open partition logs and the order they were used in.
pub struct OpenFiles {
    max_files: usize,
    clock: Cell<u64>,
    /// Writers whose log is open (or was, until the last walk).
    open: RefCell<Vec<Rc<PartitionWriter>>>,
    /// Logs closed to stay within the bound, since start.
    closed: Cell<u64>,
    /// Opens (recoveries) running at once on the shard. Recovery decompresses a log's last
    /// segment: CPU work on this one core, so running more at once is no faster, while each
    /// holds a chunk and its decompressed records in memory. A poll over many cold partitions
    /// would otherwise recover them all at once.
    recoveries: Rc<rt::Semaphore>,
}

/// Logs one shard opens (recovers) at once.
const CONCURRENT_RECOVERIES: u64 = 2;

impl Default for OpenFiles {
    fn default() -> OpenFiles {
        OpenFiles {
            max_files: 1024,
            clock: Cell::new(0),
            open: RefCell::new(Vec::new()),
            closed: Cell::new(0),
            recoveries: Rc::new(rt::Semaphore::new(CONCURRENT_RECOVERIES)),
        }
    }
}

impl OpenFiles {
    pub fn new(max_files: usize) -> Rc<OpenFiles> {
        Rc::new(OpenFiles {
            max_files: max_files.max(1),
            ..OpenFiles::default()
        })
    }

    /// The permits an open (recovery) takes one of while it runs.
    pub fn recovery_slots(&self) -> Rc<rt::Semaphore> {
        self.recoveries.clone()
    }

    /// Marks a log used now. O(1): one counter, one store.
    pub fn touch(&self, last_used: &Cell<u64>) {
        let now = self.clock.get() + 1;
        self.clock.set(now);
        last_used.set(now);
    }

    /// A log was opened: keeps it, and closes idle ones if the shard is over its bound.
    pub fn opened(&self, writer: &Rc<PartitionWriter>) {
        self.open.borrow_mut().push(writer.clone());
        self.make_room(Some(writer));
    }

    /// Descriptors the shard's open logs hold.
    pub fn files(&self) -> usize {
        self.open.borrow().iter().map(|w| w.open_files()).sum()
    }

    /// Logs open now.
    pub fn open_logs(&self) -> usize {
        self.open
            .borrow()
            .iter()
            .filter(|w| w.log().is_some())
            .count()
    }

    /// Logs closed to stay within the bound, since start.
    pub fn closed(&self) -> u64 {
        self.closed.get()
    }

    /// While the open logs hold more files than the bound, closes the least recently used
    /// idle ones (never `keep`, just opened for a request), down to 7/8 of the bound. Logs in
    /// use stay open: the bound is passed until they are idle.
    pub fn make_room(&self, keep: Option<&Rc<PartitionWriter>>) {
        let mut total = self.files();
        if total > self.max_files {
            let target = self.max_files - self.max_files / 8;
            let mut idle: Vec<Rc<PartitionWriter>> = self
                .open
                .borrow()
                .iter()
                .filter(|w| !keep.is_some_and(|k| Rc::ptr_eq(k, w)) && w.is_idle())
                .cloned()
                .collect();
            idle.sort_unstable_by_key(|w| w.last_used());
            for w in idle {
                if total <= target {
                    break;
                }
                let files = w.open_files();
                if w.close_if_idle() {
                    total -= files;
                    self.closed.set(self.closed.get() + 1);
                }
            }
        }
        self.open.borrow_mut().retain(|w| w.log().is_some());
    }
}
