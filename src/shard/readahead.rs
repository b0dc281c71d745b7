//! Read-ahead for consumers draining a cold backlog. After a read served from the segment
//! files, the owning shard starts reading the ranges that follow, so the consumer's next polls
//! find their chunks in memory (or already on their way) and the disk always has a request
//! queued instead of sitting idle while a response travels and the next poll arrives.
//!
//! Each partition keeps a chain of up to [`DEPTH`] reads, each starting where the one before
//! ended (known once that one is done); a poll claims the first, and the chain refills behind
//! it. A chain is for one reader: a read from any other offset (or of another size) replaces
//! it. A read nobody claims within [`STALE_AFTER`] drops the chain. The bytes held across a
//! shard's partitions are bounded by [`ReadAheadBudget`]; when it is spent, reads simply go to
//! the disk.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::rt;
use crate::storage::{PartitionLog, StoredChunk};

use super::notify::LocalNotify;

/// How long a read-ahead waits to be claimed before its memory is released.
pub const STALE_AFTER: Duration = Duration::from_secs(1);

/// Bytes of read-ahead a shard may hold at once.
pub const SHARD_BUDGET: usize = 32 << 20;

/// Reads a partition keeps ahead of its reader: two, so that one is on the device while the
/// consumer takes the other (measured: one alone left the disk idle between polls).
pub const DEPTH: usize = 2;

/// The shard-wide bound on read-ahead memory.
#[derive(Debug)]
pub struct ReadAheadBudget {
    used: Cell<usize>,
    cap: usize,
}

impl ReadAheadBudget {
    pub fn new(cap: usize) -> Rc<ReadAheadBudget> {
        Rc::new(ReadAheadBudget {
            used: Cell::new(0),
            cap,
        })
    }

    /// Bytes reserved by read-aheads in memory or in flight.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    fn try_reserve(self: &Rc<Self>, bytes: usize) -> Option<Reservation> {
        let used = self.used.get();
        if used + bytes > self.cap {
            return None;
        }
        self.used.set(used + bytes);
        Some(Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

/// Budget held by one read-ahead; given back when it is dropped.
struct Reservation {
    budget: Rc<ReadAheadBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.set(self.budget.used.get() - self.bytes);
    }
}

/// One read in flight or done. `None` once finished means the read failed (or found nothing):
/// the claimant reads again itself and reports any error properly.
struct Pending {
    result: RefCell<Option<Vec<StoredChunk>>>,
    finished: Cell<bool>,
    done: LocalNotify,
    _reserved: Reservation,
}

impl Pending {
    /// Where the read ended, once it is done and found chunks.
    fn end(&self) -> Option<i64> {
        if !self.finished.get() {
            return None;
        }
        let result = self.result.borrow();
        result.as_ref()?.last().map(StoredChunk::end_offset)
    }
}

struct Slot {
    from: i64,
    generation: u64,
    pending: Rc<Pending>,
}

/// What a chain reads from, and with how much budget. The log is held weakly: a read-ahead
/// never keeps a partition open.
struct Source {
    log: Weak<PartitionLog>,
    max_bytes: usize,
    budget: Rc<ReadAheadBudget>,
}

/// A partition's read-ahead chain.
#[derive(Default)]
pub struct ReadAhead {
    slots: RefCell<VecDeque<Slot>>,
    source: RefCell<Option<Source>>,
    generation: Cell<u64>,
}

impl ReadAhead {
    /// Claims the read-ahead that starts at `from` with the same byte bound, waiting for it if
    /// it is still in flight. `None` when there is none (the chain is then dropped) or when it
    /// failed.
    pub async fn take(self: &Rc<Self>, from: i64, max_bytes: usize) -> Option<Vec<StoredChunk>> {
        let slot = {
            let mut slots = self.slots.borrow_mut();
            let same_size = self
                .source
                .borrow()
                .as_ref()
                .is_some_and(|s| s.max_bytes == max_bytes);
            match slots.front() {
                Some(first) if first.from == from && same_size => slots.pop_front(),
                _ => {
                    slots.clear();
                    None
                }
            }
        }?;
        self.refill();
        loop {
            let done = slot.pending.done.notified();
            if slot.pending.finished.get() {
                break;
            }
            done.await;
        }
        let chunks = slot.pending.result.borrow_mut().take();
        chunks
    }

    /// Drops the chain and what it read, giving its budget back (the partition was deleted).
    pub fn clear(&self) {
        self.slots.borrow_mut().clear();
        *self.source.borrow_mut() = None;
    }

    /// Makes sure the chain reads ahead from `from` in ranges of `max_bytes`: kept if it
    /// already starts there, replaced otherwise (unless the shard's budget is spent). Nothing
    /// is read where the disk holds nothing more than the hot tail.
    pub fn follow(
        self: &Rc<Self>,
        log: &Rc<PartitionLog>,
        from: i64,
        max_bytes: usize,
        budget: &Rc<ReadAheadBudget>,
    ) {
        let same_source = self.source.borrow().as_ref().is_some_and(|s| {
            s.max_bytes == max_bytes && s.log.upgrade().is_some_and(|l| Rc::ptr_eq(&l, log))
        });
        let continues = same_source && self.slots.borrow().front().is_some_and(|f| f.from == from);
        if continues {
            self.refill();
            return;
        }
        if !worth_reading(log, from) {
            return;
        }
        // Release the old chain's reservations before asking for new ones.
        self.slots.borrow_mut().clear();
        *self.source.borrow_mut() = Some(Source {
            log: Rc::downgrade(log),
            max_bytes,
            budget: budget.clone(),
        });
        self.start(log, from);
        self.refill();
    }

    /// Extends the chain behind its last read, when that one is done, up to [`DEPTH`] reads,
    /// while there is more on disk than in the hot tail.
    fn refill(self: &Rc<Self>) {
        loop {
            let log = {
                let source = self.source.borrow();
                match source.as_ref().and_then(|s| s.log.upgrade()) {
                    Some(log) => log,
                    None => return,
                }
            };
            let next = {
                let slots = self.slots.borrow();
                if slots.is_empty() || slots.len() >= DEPTH {
                    return;
                }
                match slots.back().and_then(|s| s.pending.end()) {
                    Some(end) => end,
                    None => return,
                }
            };
            if !worth_reading(&log, next) || !self.start(&log, next) {
                return;
            }
        }
    }

    /// Starts one read at `from` at the back of the chain; false when the budget is spent.
    fn start(self: &Rc<Self>, log: &Rc<PartitionLog>, from: i64) -> bool {
        let (max_bytes, reserved) = {
            let source = self.source.borrow();
            let Some(s) = source.as_ref() else {
                return false;
            };
            let Some(reserved) = s.budget.try_reserve(s.max_bytes) else {
                return false;
            };
            (s.max_bytes, reserved)
        };
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        let pending = Rc::new(Pending {
            result: RefCell::new(None),
            finished: Cell::new(false),
            done: LocalNotify::default(),
            _reserved: reserved,
        });
        self.slots.borrow_mut().push_back(Slot {
            from,
            generation,
            pending: pending.clone(),
        });
        let me = self.clone();
        let log = log.clone();
        rt::spawn_detached(async move {
            let read = log.read(from, max_bytes).await;
            drop(log);
            *pending.result.borrow_mut() = read.ok().filter(|c| !c.is_empty());
            pending.finished.set(true);
            pending.done.notify();
            drop(pending);
            me.refill();
            rt::sleep(STALE_AFTER).await;
            // Still unclaimed: the reader went away (or elsewhere); drop the chain.
            let mut slots = me.slots.borrow_mut();
            if slots.iter().any(|s| s.generation == generation) {
                slots.clear();
            }
        });
        true
    }
}

/// Whether a read from `from` would go to the disk: there is more stored, and the hot tail
/// does not hold it.
fn worth_reading(log: &PartitionLog, from: i64) -> bool {
    from < log.next_offset() && !log.tail_holds(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::block_on;
    use crate::storage::{LogConfig, RecordBuf};

    /// A log of 30 chunks of 10 incompressible 400-byte records each, with no hot tail.
    async fn log_of_30_chunks(dir: &std::path::Path) -> Rc<PartitionLog> {
        let cfg = LogConfig {
            tail_bytes: 0,
            ..crate::config::Config::default().log_config()
        };
        let (log, _) = PartitionLog::open(dir, cfg).await.unwrap();
        let mut x = 1u64;
        for c in 0..30 {
            let mut b = RecordBuf::default();
            for _ in 0..10 {
                let body: Vec<u8> = (0..400)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                b.push(c, &body);
            }
            log.append(&b).await.unwrap();
        }
        Rc::new(log)
    }

    /// A log, a budget of `cap` bytes and an empty slot.
    async fn setup(
        cap: usize,
    ) -> (
        tempfile::TempDir,
        Rc<PartitionLog>,
        Rc<ReadAheadBudget>,
        Rc<ReadAhead>,
    ) {
        let tmp = tempfile::TempDir::new().unwrap();
        let log = log_of_30_chunks(tmp.path()).await;
        (tmp, log, ReadAheadBudget::new(cap), Rc::default())
    }

    /// Lets the detached reads run to completion.
    async fn settle() {
        rt::sleep(Duration::from_millis(20)).await;
    }

    /// Lets the detached reads run until `done` holds, or 5 s pass (the assertion after it
    /// then says what is wrong): a fixed sleep is outrun by a loaded machine.
    async fn settle_until(done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            rt::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn claimed_read_aheads_are_what_the_disk_holds_and_the_chain_runs_two_deep() {
        block_on(async {
            let (_tmp, log, budget, ra) = setup(1 << 20).await;
            ra.follow(&log, 100, 16 << 10, &budget);
            assert_eq!(budget.used(), 16 << 10, "one read until its end is known");
            settle_until(|| budget.used() == 2 * (16 << 10)).await;
            assert_eq!(budget.used(), 2 * (16 << 10), "then a second behind it");
            let first = ra.take(100, 16 << 10).await.expect("read ahead");
            assert_eq!(first, log.read(100, 16 << 10).await.unwrap());
            assert_eq!(first[0].start_offset, 100);
            // The second read is claimed without anyone asking for it first, and is what the
            // disk holds there; the chain keeps refilling behind it.
            let next = first.last().unwrap().end_offset();
            let second = ra.take(next, 16 << 10).await.expect("second read ahead");
            assert_eq!(second, log.read(next, 16 << 10).await.unwrap());
            settle().await;
            let third = second.last().unwrap().end_offset();
            assert!(ra.take(third, 16 << 10).await.is_some(), "refilled");
            // Claimed once: the first one is gone.
            assert!(ra.take(100, 16 << 10).await.is_none());
            settle_until(|| budget.used() == 0).await;
            assert_eq!(budget.used(), 0, "a miss drops the chain and its memory");
        });
    }

    #[test]
    fn another_offset_or_size_drops_the_chain() {
        block_on(async {
            let (_tmp, log, budget, ra) = setup(1 << 20).await;
            ra.follow(&log, 100, 16 << 10, &budget);
            assert!(ra.take(110, 16 << 10).await.is_none());
            ra.follow(&log, 100, 16 << 10, &budget);
            assert!(ra.take(100, 8 << 10).await.is_none());
            // Following from where the chain starts keeps it; from elsewhere replaces it
            // rather than stacking reservations (a dropped read gives its budget back when
            // it completes).
            settle_until(|| budget.used() == 0).await;
            assert_eq!(budget.used(), 0);
            ra.follow(&log, 100, 16 << 10, &budget);
            ra.follow(&log, 100, 16 << 10, &budget);
            assert_eq!(budget.used(), 16 << 10);
            ra.follow(&log, 120, 16 << 10, &budget);
            settle_until(|| budget.used() == 2 * (16 << 10)).await;
            assert_eq!(
                budget.used(),
                2 * (16 << 10),
                "the chain from 120, two deep"
            );
            assert_eq!(ra.take(120, 16 << 10).await.unwrap()[0].start_offset, 120);
            rt::sleep(STALE_AFTER + Duration::from_millis(100)).await;
            assert_eq!(budget.used(), 0);
        });
    }

    #[test]
    fn the_chain_stops_at_the_end_of_the_log() {
        block_on(async {
            let (_tmp, log, budget, ra) = setup(1 << 20).await;
            // 300 records: reading 256 KiB from 250 takes everything left in one read.
            ra.follow(&log, 250, 256 << 10, &budget);
            settle_until(|| budget.used() == 256 << 10).await;
            assert_eq!(budget.used(), 256 << 10, "nothing after the end to read");
            let got = ra.take(250, 256 << 10).await.unwrap();
            assert_eq!(got.last().unwrap().end_offset(), 300);
        });
    }

    #[test]
    fn the_budget_bounds_memory_and_unclaimed_chains_expire() {
        block_on(async {
            let (_tmp, log, budget, a) = setup(20 << 10).await;
            let b = Rc::new(ReadAhead::default());
            a.follow(&log, 0, 16 << 10, &budget);
            b.follow(&log, 50, 16 << 10, &budget);
            assert_eq!(budget.used(), 16 << 10, "the second does not fit");
            assert!(b.take(50, 16 << 10).await.is_none());
            settle_until(|| budget.used() == 16 << 10).await;
            assert_eq!(
                budget.used(),
                16 << 10,
                "nor does a second read in the chain"
            );
            // Nobody claims `a`: after STALE_AFTER its memory is released.
            rt::sleep(STALE_AFTER + Duration::from_millis(100)).await;
            assert_eq!(budget.used(), 0);
            assert!(a.take(0, 16 << 10).await.is_none());
        });
    }

    #[test]
    fn a_read_ahead_does_not_keep_the_log_open() {
        block_on(async {
            let (_tmp, log, budget, ra) = setup(1 << 20).await;
            ra.follow(&log, 0, 16 << 10, &budget);
            settle_until(|| Rc::strong_count(&log) == 1).await;
            assert_eq!(Rc::strong_count(&log), 1, "only the test holds the log");
        });
    }
}
