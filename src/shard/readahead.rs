//! Read-ahead for consumers draining a cold backlog. After a read served from the segment
//! files, the owning shard starts reading the range that follows, so the consumer's next poll
//! finds its chunks in memory (or already on their way) and the disk always has a request
//! queued instead of sitting idle while a response travels and the next poll arrives.
//!
//! One slot per partition, claimed by a read from exactly the offset it starts at; a slot
//! nobody claims within [`STALE_AFTER`] is dropped. The bytes held across a shard's partitions
//! are bounded by [`ReadAheadBudget`]; when it is spent, reads simply go to the disk.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use super::notify::LocalNotify;
use crate::rt;
use crate::storage::{PartitionLog, StoredChunk};

/// How long a read-ahead waits to be claimed before its memory is released.
pub const STALE_AFTER: Duration = Duration::from_secs(1);

/// Bytes of read-ahead a shard may hold at once.
pub const SHARD_BUDGET: usize = 32 << 20;

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

/// One read in flight or done. `None` once finished means the read failed: the claimant
/// reads again itself and reports the error properly.
struct Pending {
    result: RefCell<Option<Vec<StoredChunk>>>,
    finished: Cell<bool>,
    done: LocalNotify,
    _reserved: Reservation,
}

struct Slot {
    from: i64,
    max_bytes: usize,
    generation: u64,
    pending: Rc<Pending>,
}

/// A partition's read-ahead slot.
#[derive(Default)]
pub struct ReadAhead {
    slot: RefCell<Option<Slot>>,
    generation: Cell<u64>,
}

impl ReadAhead {
    /// Claims the read-ahead that starts at `from` with the same byte bound, waiting for it if
    /// it is still in flight. `None` when there is none (any other slot is dropped) or when it
    /// failed.
    pub async fn take(&self, from: i64, max_bytes: usize) -> Option<Vec<StoredChunk>> {
        let slot = self.slot.borrow_mut().take()?;
        if slot.from != from || slot.max_bytes != max_bytes {
            return None;
        }
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

    /// Starts reading `max_bytes` from `from` in the background, replacing any slot, unless
    /// the shard's budget is spent.
    pub fn start(
        self: &Rc<Self>,
        log: Rc<PartitionLog>,
        from: i64,
        max_bytes: usize,
        budget: &Rc<ReadAheadBudget>,
    ) {
        // Release the old slot's reservation before asking for a new one.
        self.slot.borrow_mut().take();
        let Some(reserved) = budget.try_reserve(max_bytes) else {
            return;
        };
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        let pending = Rc::new(Pending {
            result: RefCell::new(None),
            finished: Cell::new(false),
            done: LocalNotify::default(),
            _reserved: reserved,
        });
        *self.slot.borrow_mut() = Some(Slot {
            from,
            max_bytes,
            generation,
            pending: pending.clone(),
        });
        let me = self.clone();
        rt::spawn_detached(async move {
            let read = log.read(from, max_bytes).await;
            drop(log);
            *pending.result.borrow_mut() = read.ok().filter(|c| !c.is_empty());
            pending.finished.set(true);
            pending.done.notify();
            drop(pending);
            rt::sleep(STALE_AFTER).await;
            let mut slot = me.slot.borrow_mut();
            if slot.as_ref().is_some_and(|s| s.generation == generation) {
                *slot = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::block_on;
    use crate::storage::{LogConfig, RecordBuf};

    /// A log of 30 chunks of 10 incompressible 400-byte records each, with no hot tail.
    async fn log_of_30_chunks(dir: &std::path::Path) -> Rc<PartitionLog> {
        let cfg = LogConfig {
            zstd_level: 1,
            tail_bytes: 0,
            ..LogConfig::default()
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

    #[test]
    fn a_claimed_read_ahead_is_what_the_disk_holds_and_frees_its_budget() {
        block_on(async {
            let (_tmp, log, budget, ra) = setup(1 << 20).await;
            ra.start(log.clone(), 100, 16 << 10, &budget);
            assert_eq!(budget.used(), 16 << 10);
            let got = ra.take(100, 16 << 10).await.expect("read ahead");
            assert_eq!(got, log.read(100, 16 << 10).await.unwrap());
            assert_eq!(got[0].start_offset, 100);
            assert_eq!(budget.used(), 0, "claimed: its memory is the caller's now");
            assert!(ra.take(100, 16 << 10).await.is_none(), "claimed once");
        });
    }

    #[test]
    fn another_offset_or_size_drops_the_slot() {
        block_on(async {
            let (_tmp, log, budget, ra) = setup(1 << 20).await;
            ra.start(log.clone(), 100, 16 << 10, &budget);
            assert!(ra.take(110, 16 << 10).await.is_none());
            ra.start(log.clone(), 100, 16 << 10, &budget);
            assert!(ra.take(100, 8 << 10).await.is_none());
            // Starting again replaces the slot rather than stacking reservations.
            ra.start(log.clone(), 100, 16 << 10, &budget);
            ra.start(log.clone(), 120, 16 << 10, &budget);
            assert_eq!(ra.take(120, 16 << 10).await.unwrap()[0].start_offset, 120);
            rt::sleep(Duration::from_millis(10)).await;
            assert_eq!(budget.used(), 0);
        });
    }

    #[test]
    fn the_budget_bounds_memory_and_unclaimed_slots_expire() {
        block_on(async {
            let tmp = tempfile::TempDir::new().unwrap();
            let log = log_of_30_chunks(tmp.path()).await;
            let budget = ReadAheadBudget::new(20 << 10);
            let (a, b) = (Rc::new(ReadAhead::default()), Rc::new(ReadAhead::default()));
            a.start(log.clone(), 0, 16 << 10, &budget);
            b.start(log.clone(), 50, 16 << 10, &budget);
            assert_eq!(budget.used(), 16 << 10, "the second does not fit");
            assert!(b.take(50, 16 << 10).await.is_none());
            // Nobody claims `a`: after STALE_AFTER its memory is released.
            rt::sleep(STALE_AFTER + Duration::from_millis(100)).await;
            assert_eq!(budget.used(), 0);
            assert!(a.take(0, 16 << 10).await.is_none());
        });
    }
}
