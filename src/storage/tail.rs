//! The hot tail: the most recent chunks of a partition kept in memory, compressed, exactly as
//! written. Consumers that keep up with producers read from here and never touch the disk;
//! everything older is read from the segment files with O_DIRECT. Bounded in bytes; the
//! oldest chunks are dropped first.

use std::collections::VecDeque;

use super::chunk::StoredChunk;

#[derive(Debug, Default)]
pub(crate) struct HotTail {
    chunks: VecDeque<StoredChunk>,
    bytes: usize,
    max_bytes: usize,
}

impl HotTail {
    pub fn new(max_bytes: usize) -> HotTail {
        HotTail {
            chunks: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Adds the newest chunk (offsets must follow the previous one), evicting the oldest
    /// while over budget. A chunk larger than the whole budget is not kept.
    pub fn push(&mut self, chunk: StoredChunk) {
        if self.max_bytes == 0 || chunk.payload.len() > self.max_bytes {
            self.clear();
            return;
        }
        if let Some(last) = self.chunks.back() {
            if last.end_offset() != chunk.start_offset {
                self.clear();
            }
        }
        self.bytes += chunk.payload.len();
        self.chunks.push_back(chunk);
        while self.bytes > self.max_bytes {
            if let Some(old) = self.chunks.pop_front() {
                self.bytes -= old.payload.len();
            }
        }
    }

    pub fn clear(&mut self) {
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

    #[test]
    fn serves_recent_offsets_and_evicts_old_ones() {
        let mut t = HotTail::new(300);
        t.push(chunk(0, 10, 100));
        t.push(chunk(10, 10, 100));
        t.push(chunk(20, 10, 100));
        assert_eq!(t.read(15, 1000).unwrap().len(), 2);
        assert_eq!(
            t.read(30, 1000).unwrap().len(),
            0,
            "at the end: nothing yet"
        );
        assert_eq!(t.read(0, 150).unwrap().len(), 1, "byte bound, at least one");
        t.push(chunk(30, 10, 100));
        assert_eq!(t.bytes(), 300);
        assert!(t.read(5, 1000).is_none(), "evicted: read the disk");
        assert_eq!(t.read(10, 1000).unwrap()[0].start_offset, 10);
    }

    #[test]
    fn gaps_and_oversized_chunks_reset_it() {
        let mut t = HotTail::new(300);
        t.push(chunk(0, 10, 100));
        t.push(chunk(50, 10, 100));
        assert!(t.read(0, 1000).is_none());
        assert_eq!(t.read(50, 1000).unwrap().len(), 1);
        t.push(chunk(60, 10, 1000));
        assert!(t.read(60, 1000).is_none());
        let mut off = HotTail::new(0);
        off.push(chunk(0, 1, 1));
        assert!(off.read(0, 10).is_none());
    }
}
