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
    /// Parses and validates a body. `with_timestamp` is the header's flag 0x01.
    pub fn parse(body: &'a [u8], with_timestamp: bool) -> Result<ProduceBody<'a>, WireError> {
        let layout = ProduceLayout::parse(body, with_timestamp)?;
        Ok(layout.view(body))
    }

    /// Iterates the message payloads.
    pub fn iter(&self) -> MessageIter<'a> {
        MessageIter {
            rest: self.messages,
        }
    }
}

impl ProduceLayout {
    pub fn parse(body: &[u8], with_timestamp: bool) -> Result<ProduceLayout, WireError> {
        let mut pos = 0;
        let timestamp = if with_timestamp {
            let ts = body.get(..8).ok_or(WireError::Truncated(
                "flag 0x01 set but no 8-byte timestamp",
            ))?;
            pos = 8;
            Some(i64::from_be_bytes(ts.try_into().expect("8 bytes")))
        } else {
            None
        };
        let key_len = *body
            .get(pos)
            .ok_or(WireError::Truncated("missing partition key length"))?
            as usize;
        let key_start = pos + 1;
        if body.len() < key_start + key_len {
            return Err(WireError::Truncated("partition key runs past the body"));
        }
        let messages_start = key_start + key_len;
        let mut rest = &body[messages_start..];
        let mut count: u32 = 0;
        while !rest.is_empty() {
            let index = count as usize;
            if rest.len() < 4 {
                return Err(WireError::MessageOverrun {
                    index,
                    len: 4,
                    available: rest.len(),
                });
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let available = rest.len() - 4;
            if len as usize > available {
                return Err(WireError::MessageOverrun {
                    index,
                    len,
                    available,
                });
            }
            rest = &rest[4 + len as usize..];
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

    /// The body this layout was parsed from, viewed again. `body` must be that same body.
    pub fn view<'a>(&self, body: &'a [u8]) -> ProduceBody<'a> {
        ProduceBody {
            timestamp: self.timestamp,
            key: &body[self.key_start..self.key_start + self.key_len],
            messages: &body[self.messages_start..],
            count: self.count,
        }
    }
}

/// Iterates `(len u32 | msg)*` regions that [`ProduceLayout::parse`] has validated.
#[derive(Debug, Clone)]
pub struct MessageIter<'a> {
    rest: &'a [u8],
}

impl<'a> MessageIter<'a> {
    /// Yields each message together with its 4-byte length prefix (`len u32 | msg`), which is
    /// exactly the `length | body` part of a stored record.
    pub fn next_with_prefix(&mut self) -> Option<&'a [u8]> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]]);
        let end = (4 + len as usize).min(self.rest.len());
        let (item, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(item)
    }
}

impl<'a> Iterator for MessageIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.next_with_prefix().map(|m| &m[4..])
    }
}

/// Encodes a PRODUCE body. The caller sets flag 0x01 in the header when `timestamp` is given.
pub fn encode_produce_body<'m>(
    timestamp: Option<i64>,
    key: &[u8],
    messages: impl IntoIterator<Item = &'m [u8]>,
    dst: &mut Vec<u8>,
) {
    if let Some(ts) = timestamp {
        dst.extend_from_slice(&ts.to_be_bytes());
    }
    let key = &key[..key.len().min(255)];
    dst.push(key.len() as u8);
    dst.extend_from_slice(key);
    for m in messages {
        dst.extend_from_slice(&(m.len() as u32).to_be_bytes());
        dst.extend_from_slice(m);
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
