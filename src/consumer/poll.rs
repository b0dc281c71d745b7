//! Assembling a poll response without re-encoding. The seed's format (`wire::poll`) is
//! `items u16`, then per item a small header and the chunk's compressed payload. The response
//! is kept as a list of [`Bytes`]: the 2-byte count, then for each item its encoded header
//! and the stored chunk's zstd frame as a slice of the bytes storage returned (hot tail or
//! disk read) — never decompressed, recompressed or copied. The framed server writes the list
//! with one vectored write.
//!
//! An item's offset is its chunk's start offset. Positions handed out by the broker are
//! always chunk boundaries (the end of the last chunk returned, the start or end of a log), so
//! the first item of a partition normally starts exactly at the consumer's position; should a
//! chunk ever start before it, a client skips the records below the offset it expects next
//! for that partition, as PolarStreams clients do.

use bytes::{Bytes, BytesMut};

use super::assign::PartitionKey;
use crate::ring::PartitionId;
use crate::storage::StoredChunk;
use crate::wire::poll::PollItemHeader;

/// A finished poll response body, ready for vectored I/O.
#[derive(Debug, Clone, Default)]
pub struct PollResponse {
    /// The body's bytes in order; their concatenation is the seed's poll response.
    pub parts: Vec<Bytes>,
    pub items: u16,
    /// Total bytes of `parts`.
    pub len: usize,
}

impl PollResponse {
    /// The body as one buffer (copies; for tests and for transports without vectored I/O).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for p in &self.parts {
            v.extend_from_slice(p);
        }
        v
    }
}

/// The positions a poll's items take each partition to, item by item, so that a transport
/// that sends only the first items of a response (a JSON poll bounded by decoded bytes)
/// records positions for those alone: the items it leaves out are read again by the next poll.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    partitions: Vec<PartitionRead>,
    /// Per item, in response order: its partition (an index into `partitions`) and the
    /// offset after its last record.
    items: Vec<(usize, i64)>,
}

#[derive(Debug, Clone)]
struct PartitionRead {
    key: PartitionKey,
    /// Where the read started (the plan's offset, clamped into the log's range).
    from: i64,
    /// The offset the plan gave (`None`: earliest).
    planned: Option<i64>,
}

impl Positions {
    /// Notes a partition that was read; its items follow through [`Positions::item`].
    pub fn partition(&mut self, key: PartitionKey, from: i64, planned: Option<i64>) {
        self.partitions.push(PartitionRead { key, from, planned });
    }

    /// Notes the next item of the response, of the partition noted last, ending at `end`.
    pub fn item(&mut self, end: i64) {
        if let Some(p) = self.partitions.len().checked_sub(1) {
            self.items.push((p, end));
        }
    }

    /// The positions to record when all the items reach the client.
    pub fn all(&self) -> Vec<(PartitionKey, i64)> {
        self.first(self.items.len())
    }

    /// The positions to record when only the first `n` items reach the client: each
    /// partition ends after its last item among them, or where its read started. Only the
    /// partitions whose position moved are listed.
    pub fn first(&self, n: usize) -> Vec<(PartitionKey, i64)> {
        let mut at: Vec<i64> = self.partitions.iter().map(|p| p.from).collect();
        for &(p, end) in self.items.iter().take(n) {
            at[p] = end;
        }
        self.partitions
            .iter()
            .zip(at)
            .filter(|(p, at)| Some(*at) != p.planned)
            .map(|(p, at)| (p.key.clone(), at))
            .collect()
    }
}

/// Collects items up to a byte budget and the format's u16 item count.
pub struct PollAssembler {
    max_bytes: usize,
    headers: BytesMut,
    scratch: Vec<u8>,
    parts: Vec<Bytes>,
    items: u16,
    len: usize,
}

impl PollAssembler {
    /// An empty response that will hold at most about `max_bytes` (always at least one item).
    pub fn new(max_bytes: usize) -> PollAssembler {
        PollAssembler {
            max_bytes,
            headers: BytesMut::with_capacity(1024),
            scratch: Vec::with_capacity(300),
            parts: Vec::new(),
            items: 0,
            len: 2,
        }
    }

    /// Whether no more items can be added (the u16 count is exhausted).
    pub fn is_full(&self) -> bool {
        self.items == u16::MAX
    }

    pub fn items(&self) -> u16 {
        self.items
    }

    /// Adds `chunk` of partition `id` of `topic` as the next item if it fits; `false` when it
    /// does not (the caller then stops adding chunks of that partition, which must stay
    /// contiguous).
    pub fn try_push(&mut self, topic: &str, id: PartitionId, chunk: &StoredChunk) -> bool {
        let header = PollItemHeader {
            token: id.token,
            range_index: id.range_index,
            gen_version: id.gen,
            topic,
            offset: chunk.start_offset,
            payload_len: chunk.payload.len() as u32,
        };
        let item_len = header.encoded_len() + chunk.payload.len();
        if self.is_full()
            || chunk.payload.len() > i32::MAX as usize
            || topic.len() > 255
            || (self.items > 0 && self.len + item_len > self.max_bytes)
        {
            return false;
        }
        self.scratch.clear();
        header.encode(&mut self.scratch);
        self.headers.extend_from_slice(&self.scratch);
        self.parts.push(self.headers.split().freeze());
        if !chunk.payload.is_empty() {
            self.parts.push(chunk.payload.clone());
        }
        self.items += 1;
        self.len += item_len;
        true
    }

    /// The response body: the item count followed by the items.
    pub fn finish(self) -> PollResponse {
        let mut parts = Vec::with_capacity(self.parts.len() + 1);
        parts.push(Bytes::copy_from_slice(&self.items.to_be_bytes()));
        parts.extend(self.parts);
        PollResponse {
            parts,
            items: self.items,
            len: self.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::poll::parse_poll_response;

    fn pid(range: u8) -> PartitionId {
        PartitionId {
            gen: 1,
            token: -4611686018427387904,
            range_index: range,
        }
    }

    fn chunk(start: i64, n: u32, len: usize) -> StoredChunk {
        StoredChunk {
            start_offset: start,
            record_count: n,
            payload: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>()),
        }
    }

    #[test]
    fn exact_layout() {
        let mut a = PollAssembler::new(1 << 20);
        assert!(a.try_push("ab", pid(3), &chunk(7, 2, 3)));
        let r = a.finish();
        let mut expected = vec![0, 1];
        expected.extend_from_slice(&(-4611686018427387904i64).to_be_bytes());
        expected.push(3);
        expected.extend_from_slice(&1u32.to_be_bytes());
        expected.extend_from_slice(b"\x02ab");
        expected.extend_from_slice(&7i64.to_be_bytes());
        expected.extend_from_slice(&3i32.to_be_bytes());
        expected.extend_from_slice(&[0, 1, 2]);
        assert_eq!(r.to_vec(), expected);
        assert_eq!(r.len, expected.len());
        assert_eq!(r.items, 1);
    }

    #[test]
    fn payloads_are_the_stored_bytes_not_copies() {
        let c = chunk(0, 1, 100);
        let mut a = PollAssembler::new(1 << 20);
        assert!(a.try_push("t", pid(0), &c));
        let r = a.finish();
        assert_eq!(r.parts.len(), 3);
        assert_eq!(r.parts[2].as_ptr(), c.payload.as_ptr());
        let body = r.to_vec();
        let items = parse_poll_response(&body).unwrap();
        assert_eq!(items[0].payload, &c.payload[..]);
    }

    #[test]
    fn bounded_by_bytes_but_at_least_one_item() {
        let mut a = PollAssembler::new(100);
        assert!(a.try_push("t", pid(0), &chunk(0, 1, 500)));
        assert!(!a.try_push("t", pid(0), &chunk(1, 1, 1)));
        assert_eq!(a.finish().items, 1);

        let mut a = PollAssembler::new(200);
        // Each item is 27 + 40 = 67 bytes; 2 + 2 * 67 = 136 fits, a third does not.
        assert!(a.try_push("t", pid(0), &chunk(0, 1, 40)));
        assert!(a.try_push("t", pid(1), &chunk(0, 1, 40)));
        assert!(!a.try_push("t", pid(2), &chunk(0, 1, 40)));
        // A smaller item still fits.
        assert!(a.try_push("t", pid(2), &chunk(0, 1, 10)));
        let r = a.finish();
        assert!(r.len <= 200);
        assert_eq!(parse_poll_response(&r.to_vec()).unwrap().len(), 3);
    }

    #[test]
    fn bounded_by_the_u16_item_count() {
        let mut a = PollAssembler::new(usize::MAX);
        let c = chunk(0, 1, 0);
        let mut n = 0u32;
        while a.try_push("t", pid(0), &c) {
            n += 1;
        }
        assert_eq!(n, u16::MAX as u32);
        assert!(a.is_full());
        let r = a.finish();
        assert_eq!(r.items, u16::MAX);
        assert_eq!(parse_poll_response(&r.to_vec()).unwrap().len(), 65535);
    }

    #[test]
    fn empty_response_is_two_zero_bytes() {
        let r = PollAssembler::new(10).finish();
        assert_eq!(r.to_vec(), vec![0, 0]);
        assert_eq!(r.len, 2);
    }
    #[test]
    fn positions_of_the_first_items_only() {
        let mut p = Positions::default();
        p.partition(("t".into(), 0), 10, Some(10));
        p.item(12);
        p.item(15);
        p.partition(("t".into(), 1), 0, None);
        p.item(3);
        // Clamped by retention from 4 up to 7, nothing to read.
        p.partition(("t".into(), 2), 7, Some(4));
        let k = |i: u32| ("t".to_string(), i);
        assert_eq!(p.all(), vec![(k(0), 15), (k(1), 3), (k(2), 7)]);
        assert_eq!(p.first(2), vec![(k(0), 15), (k(1), 0), (k(2), 7)]);
        assert_eq!(p.first(1), vec![(k(0), 12), (k(1), 0), (k(2), 7)]);
        // Nothing sent: partition 0 stays where the plan had it.
        assert_eq!(p.first(0), vec![(k(1), 0), (k(2), 7)]);
        assert_eq!(p.first(9), p.all());
    }
}
