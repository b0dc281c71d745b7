//! The hot tail: the most recent chunks of a partition kept in memory, compressed, exactly as
//! written. Consumers that keep up with producers read from here and never touch the disk;
//! everything older is read from the segment files with O_DIRECT.
//!
//! The memory is bounded per shard, not per partition or topic: every log of a shard charges
//! its chunks to one [`TailBudget`], and while the budget is exceeded the chunk appended
//! longest ago, whichever log holds it, is dropped first. So a shard with many topics keeps
//! the most recently appended chunks of all of them within `--hot-tail` bytes, and a topic
//! that stops receiving writes gives its memory to the ones that still do.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use super::chunk::StoredChunk;

/// The bytes the hot tails of one shard may hold together, and the order their chunks were
/// appended in (oldest first), across logs.
#[derive(Debug)]
pub struct TailBudget {
    max_bytes: usize,
    used: Cell<usize>,
    /// Chunks held by the tails charged to this budget.
    chunks: Cell<usize>,
    /// One entry per chunk pushed, oldest first. An entry whose chunk has left its tail some
    /// other way (a gap cleared it, its log was closed) is stale and skipped.
    order: RefCell<VecDeque<Appended>>,
}

#[derive(Debug)]
struct Appended {
    tail: Weak<RefCell<HotTail>>,
    start_offset: i64,
}

impl Default for TailBudget {
    /// No hot tail.
    fn default() -> TailBudget {
        TailBudget {
            max_bytes: 0,
            used: Cell::new(0),
            chunks: Cell::new(0),
            order: RefCell::new(VecDeque::new()),
        }
    }
}

impl TailBudget {
    pub fn new(max_bytes: usize) -> Rc<TailBudget> {
        Rc::new(TailBudget {
            max_bytes,
            ..TailBudget::default()
        })
    }

    /// Bytes the tails hold now.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn release(&self, bytes: usize, chunks: usize) {
        self.used.set(self.used.get() - bytes);
        self.chunks.set(self.chunks.get() - chunks);
    }

    /// Charges a chunk just added to `tail`, then drops the chunks appended longest ago,
    /// from whichever tails hold them, while over budget. O(1) amortized: every entry is
    /// pushed once and popped or compacted away once.
    fn charge(&self, tail: &Rc<RefCell<HotTail>>, start_offset: i64, len: usize) {
        self.used.set(self.used.get() + len);
        self.chunks.set(self.chunks.get() + 1);
        let mut order = self.order.borrow_mut();
        order.push_back(Appended {
            tail: Rc::downgrade(tail),
            start_offset,
        });
        while self.used.get() > self.max_bytes {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            if let Some(t) = oldest.tail.upgrade() {
                t.borrow_mut().drop_oldest_if(oldest.start_offset);
            }
        }
        // Stale entries (chunks gone by other ways) are dropped once they outnumber the
        // chunks held, so the order stays proportional to what the tails hold.
        if order.len() > 2 * self.chunks.get() + 64 {
            order.retain(|e| {
                e.tail
                    .upgrade()
                    .is_some_and(|t| t.borrow().holds_chunk(e.start_offset))
            });
        }
    }
}

/// One partition's newest chunks, charged to its shard's [`TailBudget`].
#[derive(Debug)]
pub(crate) struct HotTail {
    chunks: VecDeque<StoredChunk>,
    bytes: usize,
    budget: Rc<TailBudget>,
}

impl HotTail {
    pub fn new(budget: Rc<TailBudget>) -> HotTail {
        HotTail {
            chunks: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Adds the newest chunk to `tail` (offsets must follow the previous one) and charges it
    /// to the budget, which drops the oldest chunks of the shard while over. A chunk larger
    /// than the whole budget is not kept.
    pub fn push(tail: &Rc<RefCell<HotTail>>, chunk: StoredChunk) {
        let (start, len, budget) = {
            let mut t = tail.borrow_mut();
            let max = t.budget.max_bytes;
            if max == 0 || chunk.payload.len() > max {
                t.clear();
                return;
            }
            if t.chunks
                .back()
                .is_some_and(|last| last.end_offset() != chunk.start_offset)
            {
                t.clear();
            }
            let (start, len) = (chunk.start_offset, chunk.payload.len());
            t.bytes += len;
            t.chunks.push_back(chunk);
            (start, len, t.budget.clone())
        };
        budget.charge(tail, start, len);
    }

    /// Drops the oldest chunk if it is the one starting at `start_offset`.
    fn drop_oldest_if(&mut self, start_offset: i64) {
        if self
            .chunks
            .front()
            .is_some_and(|c| c.start_offset == start_offset)
        {
            if let Some(old) = self.chunks.pop_front() {
                self.bytes -= old.payload.len();
                self.budget.release(old.payload.len(), 1);
            }
        }
    }

    /// Whether a chunk starting at `start_offset` is held.
    fn holds_chunk(&self, start_offset: i64) -> bool {
        self.chunks
            .binary_search_by_key(&start_offset, |c| c.start_offset)
            .is_ok()
    }

    pub fn clear(&mut self) {
        self.budget.release(self.bytes, self.chunks.len());
        self.chunks.clear();
        self.bytes = 0;
    }

    /// The chunks holding offsets `from` and up, at most about `max_bytes` of payload (at
    /// least one chunk), or `None` when `from` is older than the tail (read the disk).
    pub fn read(&self, from: i64, max_bytes: usize) -> Option<Vec<StoredChunk>> {
        let first = self.chunks.front()?;
        if from < first.start_offset {
            return None;
        }
        let i = self.chunks.partition_point(|c| c.end_offset() <= from);
        let mut out = Vec::new();
        let mut total = 0;
        for c in self.chunks.iter().skip(i) {
            if !out.is_empty() && total + c.payload.len() > max_bytes {
                break;
            }
            total += c.payload.len();
            out.push(c.clone());
        }
        Some(out)
    }

    /// Whether `from` can be served from memory (it is not older than the tail).
    pub fn holds(&self, from: i64) -> bool {
        self.chunks.front().is_some_and(|c| from >= c.start_offset)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for HotTail {
    /// A closed log's chunks leave the budget with it.
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(start: i64, count: u32, len: usize) -> StoredChunk {
        StoredChunk {
            start_offset: start,
            record_count: count,
            payload: Bytes::from(vec![0u8; len]),
        }
    }

    fn tail(budget: &Rc<TailBudget>) -> Rc<RefCell<HotTail>> {
        Rc::new(RefCell::new(HotTail::new(budget.clone())))
    }

    #[test]
    fn serves_recent_offsets_and_evicts_old_ones() {
        let b = TailBudget::new(300);
        let t = tail(&b);
        HotTail::push(&t, chunk(0, 10, 100));
        HotTail::push(&t, chunk(10, 10, 100));
        HotTail::push(&t, chunk(20, 10, 100));
        assert_eq!(t.borrow().read(15, 1000).unwrap().len(), 2);
        assert_eq!(
            t.borrow().read(30, 1000).unwrap().len(),
            0,
            "at the end: nothing yet"
        );
        let first = t.borrow().read(0, 150).unwrap();
        assert_eq!(first.len(), 1, "byte bound, at least one");
        HotTail::push(&t, chunk(30, 10, 100));
        assert_eq!((t.borrow().bytes(), b.used()), (300, 300));
        assert!(t.borrow().read(5, 1000).is_none(), "evicted: read the disk");
        assert_eq!(t.borrow().read(10, 1000).unwrap()[0].start_offset, 10);
    }

    #[test]
    fn gaps_and_oversized_chunks_reset_it() {
        let b = TailBudget::new(300);
        let t = tail(&b);
        HotTail::push(&t, chunk(0, 10, 100));
        HotTail::push(&t, chunk(50, 10, 100));
        assert!(t.borrow().read(0, 1000).is_none());
        assert_eq!(t.borrow().read(50, 1000).unwrap().len(), 1);
        HotTail::push(&t, chunk(60, 10, 1000));
        assert!(t.borrow().read(60, 1000).is_none());
        assert_eq!(b.used(), 0);
        let off = TailBudget::new(0);
        let o = tail(&off);
        HotTail::push(&o, chunk(0, 1, 1));
        assert!(o.borrow().read(0, 10).is_none());
    }

    /// One budget for many tails: the chunks appended longest ago go first, whichever tail
    /// holds them; a dropped tail gives its bytes back.
    #[test]
    fn the_budget_is_shared_and_evicts_the_least_recently_appended() {
        let b = TailBudget::new(1000);
        let tails: Vec<_> = (0..50).map(|_| tail(&b)).collect();
        for round in 0..4 {
            for t in &tails {
                HotTail::push(t, chunk(round * 10, 10, 100));
                assert!(b.used() <= 1000);
            }
        }
        assert_eq!(b.used(), 1000);
        // The last ten tails written hold their last chunk; the others hold nothing.
        let held: usize = tails.iter().map(|t| t.borrow().bytes()).sum();
        assert_eq!(held, 1000);
        assert!(tails[49].borrow().holds(30) && !tails[0].borrow().holds(30));
        // A busy tail keeps its recent chunks while idle ones give theirs up.
        for i in 4..20 {
            HotTail::push(&tails[0], chunk(i * 10, 10, 100));
        }
        assert_eq!(tails[0].borrow().bytes(), 1000);
        assert_eq!(b.used(), 1000);
        drop(tails);
        assert_eq!(b.used(), 0, "closed logs give their bytes back");
        assert!(b.order.borrow().len() <= 2 * 10 + 64 + 1);
    }

    /// Entries of chunks that left by other ways do not pile up.
    #[test]
    fn stale_entries_are_compacted() {
        let b = TailBudget::new(1 << 30);
        for i in 0..10_000 {
            let t = tail(&b);
            HotTail::push(&t, chunk(i, 1, 10));
        }
        assert_eq!(b.used(), 0);
        assert!(
            b.order.borrow().len() <= 64 + 1,
            "{}",
            b.order.borrow().len()
        );
    }
}
