//! The messages of PRODUCE frames, encoded once: a [`MessageRegion`] holds the
//! `(len u32 | msg)*` part of a body, and each frame's body is its `[timestamp] | key len |
//! key` head ([`write_head`]) followed by the first `k` messages of a region, the two copied
//! once into the frame (`shardlog_client::mux::Mux::send_parts`). Per frame only the head is
//! encoded.

use shardlog_wire::produce::encode_produce_body;

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

/// Writes the head of a PRODUCE body, `[timestamp] | key len | key`; the encoded
/// `(len u32 | msg)*` part (from a region, or a tagged copy of one) follows it.
pub fn write_head(dst: &mut Vec<u8>, timestamp_us: Option<i64>, key: &[u8]) {
    encode_produce_body(timestamp_us, key, std::iter::empty::<&[u8]>(), dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardlog_wire::produce::ProduceBody;

    #[test]
    fn head_and_region_make_the_codec_body() {
        let msgs: Vec<&[u8]> = vec![b"hello", b"", b"world!", b"x"];
        let region = MessageRegion::new(msgs.iter().copied());
        assert_eq!(region.len(), 4);
        assert_eq!(region.payload_bytes(4), 12);
        assert_eq!(region.message_start(1), 9 + 4);
        for (ts, key) in [(None, &b""[..]), (Some(1_700_000_000_123_456i64), b"key-7")] {
            for k in 1..=4 {
                let mut body = Vec::new();
                write_head(&mut body, ts, key);
                body.extend_from_slice(region.first(k));
                let mut expected = Vec::new();
                encode_produce_body(ts, key, msgs[..k].iter().copied(), &mut expected);
                assert_eq!(body, expected);
                let p = ProduceBody::parse(&body, ts.is_some()).unwrap();
                assert_eq!(p.count as usize, k);
                assert_eq!(p.key, key);
                assert_eq!(p.timestamp, ts);
            }
        }
    }
}
