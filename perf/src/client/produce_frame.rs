//! What a framed producer needs beyond the connection: stream ids that are never in flight
//! twice ([`StreamIds`]), and PRODUCE frames built without encoding messages per frame.
//!
//! A [`MessageRegion`] holds the `(len u32 | msg)*` part of a body once, and each frame is sent
//! as a small [`ProducePrefix`] (header, optional timestamp, key) followed by a slice of a
//! region, with one vectored write for many frames. Only the header (stream id, length, CRC) and
//! the timestamp change per frame.

use std::collections::HashSet;

use shardlog_wire::frame::{Flags, OpCode};
use shardlog_wire::header::{FrameHeader, HEADER_LEN, VERSION};
use shardlog_wire::produce::encode_produce_body;

/// Hands out stream ids: counting up with wrap-around, skipping ids still in flight, so no two
/// frames in flight on a connection ever share an id. Id 0 is used by STARTUP and is free again
/// once READY has arrived.
#[derive(Debug)]
pub struct StreamIds {
    next: u16,
    in_use: HashSet<u16>,
}

impl Default for StreamIds {
    fn default() -> Self {
        StreamIds::new()
    }
}

impl StreamIds {
    /// The most ids that can be in flight at once.
    pub const CAPACITY: usize = u16::MAX as usize + 1;

    pub fn new() -> StreamIds {
        StreamIds {
            next: 1,
            in_use: HashSet::new(),
        }
    }

    /// The next free id, or `None` when all 65536 are in flight.
    pub fn allocate(&mut self) -> Option<u16> {
        if self.in_use.len() >= Self::CAPACITY {
            return None;
        }
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1);
            if self.in_use.insert(id) {
                return Some(id);
            }
        }
    }

    /// Frees `id`; false when it was not in flight (an answer nobody asked for).
    pub fn release(&mut self, id: u16) -> bool {
        self.in_use.remove(&id)
    }

    pub fn in_flight(&self) -> usize {
        self.in_use.len()
    }
}

/// The `(len u32 | msg)*` part of a PRODUCE body, encoded once and sent many times, with the
/// offset where each message ends so a frame can carry the first `k` messages only.
#[derive(Debug, Clone)]
pub struct MessageRegion {
    bytes: Vec<u8>,
    /// `ends[k - 1]` is the byte length of the first `k` messages.
    ends: Vec<usize>,
    /// `payload[k - 1]` is the payload bytes (without length prefixes) of the first `k`.
    payload: Vec<u64>,
}

impl MessageRegion {
    pub fn new<'m>(messages: impl IntoIterator<Item = &'m [u8]>) -> MessageRegion {
        let mut region = MessageRegion {
            bytes: Vec::new(),
            ends: Vec::new(),
            payload: Vec::new(),
        };
        let mut body = Vec::new();
        let mut payload = 0u64;
        for m in messages {
            // The codec writes `key len u8 | key | (len | msg)*`; with an empty key and one
            // message, everything after the first byte is this message's `len | msg`.
            body.clear();
            encode_produce_body(None, b"", [m], &mut body);
            region.bytes.extend_from_slice(&body[1..]);
            region.ends.push(region.bytes.len());
            payload += m.len() as u64;
            region.payload.push(payload);
        }
        region
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoded bytes of the first `k` messages (1 ≤ k ≤ len).
    pub fn first(&self, k: usize) -> &[u8] {
        &self.bytes[..self.ends[k - 1]]
    }

    /// Where message `i`'s bytes start (after its length prefix).
    pub fn message_start(&self, i: usize) -> usize {
        (if i == 0 { 0 } else { self.ends[i - 1] }) + 4
    }

    /// Payload bytes of the first `k` messages.
    pub fn payload_bytes(&self, k: usize) -> u64 {
        self.payload[k - 1]
    }
}

/// The first bytes of a PRODUCE frame: the header, then `[timestamp] | key len | key`. The
/// messages follow as a slice of a [`MessageRegion`].
pub struct ProducePrefix;

impl ProducePrefix {
    /// Appends the prefix of a frame whose messages part is `messages_len` bytes long.
    pub fn encode(
        dst: &mut Vec<u8>,
        stream_id: u16,
        timestamp_us: Option<i64>,
        key: &[u8],
        messages_len: usize,
    ) {
        let start = dst.len();
        dst.extend_from_slice(&[0u8; HEADER_LEN]);
        encode_produce_body(timestamp_us, key, std::iter::empty::<&[u8]>(), dst);
        let body_len = (dst.len() - start - HEADER_LEN + messages_len) as u32;
        let header = FrameHeader {
            version: VERSION,
            flags: if timestamp_us.is_some() {
                Flags::WITH_TIMESTAMP
            } else {
                0
            },
            stream_id,
            opcode: OpCode::Produce as u8,
            body_len,
        };
        dst[start..start + HEADER_LEN].copy_from_slice(&header.encode());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardlog_wire::frame::{encode_frame, Frame};
    use shardlog_wire::produce::ProduceBody;

    #[test]
    fn stream_ids_never_collide_and_wrap() {
        let mut ids = StreamIds::new();
        // Keep 1000 ids in flight while handing out several laps' worth of ids, releasing
        // out of order; no id may be handed out while it is in flight.
        let mut live: Vec<u16> = Vec::new();
        let mut live_set = HashSet::new();
        let mut wraps = 0;
        let mut last = 0u16;
        for i in 0..300_000usize {
            let id = ids.allocate().unwrap();
            assert!(live_set.insert(id), "id {id} handed out while in flight");
            if id < last {
                wraps += 1;
            }
            last = id;
            live.push(id);
            if live.len() > 1000 {
                // Release a pseudo-random one, not the oldest.
                let old = live.swap_remove((i * 7919) % live.len());
                assert!(live_set.remove(&old));
                assert!(ids.release(old));
            }
        }
        assert!(wraps >= 4, "only {wraps} wrap-arounds");
        assert_eq!(ids.in_flight(), live.len());
        // An answer for an id not in flight is reported, not trusted.
        let not_live = (0..=u16::MAX).find(|id| !live_set.contains(id)).unwrap();
        assert!(!ids.release(not_live));
    }

    #[test]
    fn stream_ids_skip_long_lived_ids() {
        let mut ids = StreamIds::new();
        let stuck = ids.allocate().unwrap();
        for _ in 0..200_000 {
            let id = ids.allocate().unwrap();
            assert_ne!(id, stuck);
            assert!(ids.release(id));
        }
        assert_eq!(ids.in_flight(), 1);
    }

    #[test]
    fn stream_ids_exhaust_at_capacity() {
        let mut ids = StreamIds::new();
        for _ in 0..StreamIds::CAPACITY {
            ids.allocate().unwrap();
        }
        assert_eq!(ids.allocate(), None);
        assert!(ids.release(7));
        assert_eq!(ids.allocate(), Some(7));
    }

    #[test]
    fn prefix_and_region_make_the_codec_frame() {
        let msgs: Vec<&[u8]> = vec![b"hello", b"", b"world!", b"x"];
        let region = MessageRegion::new(msgs.iter().copied());
        assert_eq!(region.len(), 4);
        assert_eq!(region.payload_bytes(4), 12);
        for (ts, key) in [(None, &b""[..]), (Some(1_700_000_000_123_456i64), b"key-7")] {
            for k in 1..=4 {
                let mut wire = Vec::new();
                ProducePrefix::encode(&mut wire, 0xABCD, ts, key, region.first(k).len());
                wire.extend_from_slice(region.first(k));

                let mut body = Vec::new();
                encode_produce_body(ts, key, msgs[..k].iter().copied(), &mut body);
                let mut expected = Vec::new();
                let flags = if ts.is_some() {
                    Flags::WITH_TIMESTAMP
                } else {
                    0
                };
                encode_frame(&mut expected, OpCode::Produce, flags, 0xABCD, &body);
                assert_eq!(wire, expected);

                let (frame, used) = Frame::parse(&wire, 1 << 20).unwrap().unwrap();
                assert_eq!(used, wire.len());
                let p = ProduceBody::parse(frame.body, ts.is_some()).unwrap();
                assert_eq!(p.count as usize, k);
                assert_eq!(p.key, key);
                assert_eq!(p.timestamp, ts);
            }
        }
    }
}
