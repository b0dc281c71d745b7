//! The PRODUCE body:
//!
//! ```text
//! [timestamp μs i64, if flag 0x01] | key len u8 | key | (msg len u32 | msg)*
//! ```
//!
//! Parsing validates the whole body once (every length in bounds, at least one message) and
//! records where things are, so the write path can walk the messages again without checks and
//! without copying them: each `msg len u32 | msg` run is byte-for-byte the `length | body` tail
//! of a stored record.

use super::reader::Reader;
use super::writer::Put;
use super::WireError;

/// A validated PRODUCE body, borrowing the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceBody<'a> {
    /// Client-supplied timestamp (μs since the epoch), when the frame had flag 0x01.
    pub timestamp: Option<i64>,
    pub key: &'a [u8],
    /// The `(len u32 | msg)*` region.
    pub messages: &'a [u8],
    /// Number of messages in `messages` (at least 1).
    pub count: u32,
}

/// Where a validated body's parts sit, so they can be found again in an owned buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceLayout {
    pub timestamp: Option<i64>,
    pub key_start: usize,
    pub key_len: usize,
    pub messages_start: usize,
    pub count: u32,
}

impl<'a> ProduceBody<'a> {
    /// Decodes and validates a body. `with_timestamp` is the header's flag 0x01.
    pub fn decode(body: &'a [u8], with_timestamp: bool) -> Result<ProduceBody<'a>, WireError> {
        let layout = ProduceLayout::decode(body, with_timestamp)?;
        Ok(layout.view(body))
    }

    /// Same as [`ProduceBody::decode`].
    pub fn parse(body: &'a [u8], with_timestamp: bool) -> Result<ProduceBody<'a>, WireError> {
        ProduceBody::decode(body, with_timestamp)
    }

    /// Appends the body; the header needs flag 0x01 when `timestamp` is set.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        encode_head(self.timestamp, self.key, dst);
        dst.put_slice(self.messages);
    }

    /// Iterates the message payloads.
    pub fn iter(&self) -> MessageIter<'a> {
        MessageIter {
            rest: self.messages,
        }
    }
}

impl ProduceLayout {
    /// Validates a body (see [`ProduceBody::decode`]) and says where its parts are.
    pub fn decode(body: &[u8], with_timestamp: bool) -> Result<ProduceLayout, WireError> {
        let mut r = Reader::new(body);
        let timestamp = if with_timestamp {
            Some(r.i64("flag 0x01 set but no 8-byte timestamp")?)
        } else {
            None
        };
        let key_len = r.u8("missing partition key length")? as usize;
        let key_start = r.position();
        r.skip(key_len, "partition key runs past the body")?;
        let messages_start = r.position();
        let mut count: u32 = 0;
        while !r.is_empty() {
            // The hot path of every PRODUCE: `try_` getters keep the loop free of error values.
            let available = r.remaining();
            let Some(len) = r.try_u32() else {
                return Err(overrun(count, 4, available));
            };
            if r.try_bytes(len as usize).is_none() {
                return Err(overrun(count, len, available - 4));
            }
            count += 1;
        }
        if count == 0 {
            return Err(WireError::NoMessages);
        }
        Ok(ProduceLayout {
            timestamp,
            key_start,
            key_len,
            messages_start,
            count,
        })
    }

    /// Same as [`ProduceLayout::decode`].
    pub fn parse(body: &[u8], with_timestamp: bool) -> Result<ProduceLayout, WireError> {
        ProduceLayout::decode(body, with_timestamp)
    }

    /// The body this layout was decoded from, viewed again. `body` must be that same body.
    pub fn view<'a>(&self, body: &'a [u8]) -> ProduceBody<'a> {
        ProduceBody {
            timestamp: self.timestamp,
            key: &body[self.key_start..self.key_start + self.key_len],
            messages: &body[self.messages_start..],
            count: self.count,
        }
    }
}

#[cold]
fn overrun(index: u32, len: u32, available: usize) -> WireError {
    WireError::MessageOverrun {
        index: index as usize,
        len,
        available,
    }
}

/// Iterates `(len u32 | msg)*` regions that [`ProduceLayout::decode`] has validated (on any
/// other bytes it stops at the first incomplete length and cuts an overlong message short).
#[derive(Debug, Clone)]
pub struct MessageIter<'a> {
    rest: &'a [u8],
}

impl<'a> MessageIter<'a> {
    /// The next message with its prefix, and the message alone.
    #[inline]
    fn split_next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let mut r = Reader::new(self.rest);
        let len = r.try_u32()?;
        let msg = r.try_bytes((len as usize).min(r.remaining()))?;
        let (with_prefix, rest) = self.rest.split_at_checked(r.position())?;
        self.rest = rest;
        Some((with_prefix, msg))
    }

    /// Yields each message together with its 4-byte length prefix (`len u32 | msg`), which is
    /// exactly the `length | body` part of a stored record.
    pub fn next_with_prefix(&mut self) -> Option<&'a [u8]> {
        self.split_next().map(|(with_prefix, _)| with_prefix)
    }
}

impl<'a> Iterator for MessageIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.split_next().map(|(_, msg)| msg)
    }
}

/// `[timestamp] | key len u8 | key`.
fn encode_head(timestamp: Option<i64>, key: &[u8], dst: &mut Vec<u8>) {
    if let Some(ts) = timestamp {
        dst.put_i64(ts);
    }
    dst.put_bytes_u8(key);
}

/// Encodes a PRODUCE body. The caller sets flag 0x01 in the header when `timestamp` is given.
pub fn encode_produce_body<'m>(
    timestamp: Option<i64>,
    key: &[u8],
    messages: impl IntoIterator<Item = &'m [u8]>,
    dst: &mut Vec<u8>,
) {
    encode_head(timestamp, key, dst);
    for m in messages {
        dst.put_u32(m.len() as u32);
        dst.put_slice(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_and_without_timestamp() {
        for ts in [None, Some(1_700_000_000_000_000i64)] {
            let mut b = Vec::new();
            encode_produce_body(ts, b"k1", [&b"hello"[..], b"", b"world!"], &mut b);
            let p = ProduceBody::parse(&b, ts.is_some()).unwrap();
            assert_eq!(p.timestamp, ts);
            assert_eq!(p.key, b"k1");
            assert_eq!(p.count, 3);
            let msgs: Vec<&[u8]> = p.iter().collect();
            assert_eq!(msgs, vec![&b"hello"[..], b"", b"world!"]);
            let mut it = p.iter();
            assert_eq!(it.next_with_prefix().unwrap(), b"\0\0\0\x05hello");
        }
    }

    #[test]
    fn decode_encode_and_every_truncation() {
        for ts in [None, Some(-5i64)] {
            let mut b = Vec::new();
            encode_produce_body(ts, b"key", [&b"one"[..], b"", b"three"], &mut b);
            let p = ProduceBody::decode(&b, ts.is_some()).unwrap();
            let mut again = Vec::new();
            p.encode(&mut again);
            assert_eq!(again, b);
            assert_eq!(ProduceBody::decode(&again, ts.is_some()).unwrap(), p);
            for n in 0..b.len() {
                // A cut body is an error (not a panic), unless it ends between messages.
                match ProduceBody::decode(&b[..n], ts.is_some()) {
                    Ok(cut) => assert!(cut.count < 3 && cut.count > 0, "{n}"),
                    Err(e) => assert!(
                        matches!(
                            e,
                            WireError::Truncated(_)
                                | WireError::MessageOverrun { .. }
                                | WireError::NoMessages
                        ),
                        "{n}: {e}"
                    ),
                }
            }
        }
    }

    #[test]
    fn empty_key_is_allowed() {
        let mut b = Vec::new();
        encode_produce_body(None, b"", [&b"x"[..]], &mut b);
        assert_eq!(b, b"\x00\0\0\0\x01x");
        assert_eq!(ProduceBody::parse(&b, false).unwrap().key, b"");
    }

    #[test]
    fn rejects_bad_bodies() {
        assert_eq!(
            ProduceBody::parse(b"", false),
            Err(WireError::Truncated("missing partition key length"))
        );
        assert!(matches!(
            ProduceBody::parse(b"\x01\x02\x03", true),
            Err(WireError::Truncated(_))
        ));
        assert!(matches!(
            ProduceBody::parse(b"\x05ab", false),
            Err(WireError::Truncated(_))
        ));
        assert_eq!(
            ProduceBody::parse(b"\x00", false),
            Err(WireError::NoMessages)
        );
        assert_eq!(
            ProduceBody::parse(b"\x00\0\0\0\x09abc", false),
            Err(WireError::MessageOverrun {
                index: 0,
                len: 9,
                available: 3
            })
        );
        assert!(matches!(
            ProduceBody::parse(b"\x00\0\0\0\x01a\0\0", false),
            Err(WireError::MessageOverrun { index: 1, .. })
        ));
    }
}
