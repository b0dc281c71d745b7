//! The consumer poll response, fixed by the seed (`network-formats.md`):
//!
//! ```text
//! items u16, then per item:
//!   token i64 | range index u8 | gen version u32 | topic len u8 | topic | offset i64
//!   | payload len i32 | payload (a zstd frame with content checksum)
//! ```
//!
//! The broker writes each item as a small encoded header followed by the chunk's compressed
//! bytes exactly as stored, so encoding here covers only the headers; clients parse the whole.

use super::reader::Reader;
use super::writer::Put;
use super::WireError;

/// The partition an item comes from and the offset of its first record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollItemHeader<'a> {
    pub token: i64,
    pub range_index: u8,
    pub gen_version: u32,
    pub topic: &'a str,
    pub offset: i64,
    pub payload_len: u32,
}

impl<'a> PollItemHeader<'a> {
    /// Encoded size: 8 + 1 + 4 + 1 + topic + 8 + 4.
    pub fn encoded_len(&self) -> usize {
        26 + self.topic.len()
    }

    /// Reads an item header (everything before the payload) at the cursor.
    pub fn decode_from(r: &mut Reader<'a>) -> Result<PollItemHeader<'a>, WireError> {
        let token = r.i64("token")?;
        let range_index = r.u8("range index")?;
        let gen_version = r.u32("gen version")?;
        let topic_len = r.u8("topic length")?;
        let topic = std::str::from_utf8(r.bytes(topic_len as usize, "topic")?)
            .map_err(|_| WireError::Malformed("topic is not UTF-8".into()))?;
        let offset = r.i64("offset")?;
        let payload_len = r.i32("payload length")?;
        let payload_len = u32::try_from(payload_len)
            .map_err(|_| WireError::Malformed(format!("negative payload length {payload_len}")))?;
        Ok(PollItemHeader {
            token,
            range_index,
            gen_version,
            topic,
            offset,
            payload_len,
        })
    }

    /// Appends the item header (everything before the payload).
    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_i64(self.token);
        dst.put_u8(self.range_index);
        dst.put_u32(self.gen_version);
        dst.put_str_u8(self.topic);
        dst.put_i64(self.offset);
        dst.put_i32(self.payload_len as i32);
    }
}

/// One parsed item, borrowing the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollItem<'a> {
    pub header: PollItemHeader<'a>,
    pub payload: &'a [u8],
}

impl<'a> PollItem<'a> {
    /// Reads an item (header and payload) at the cursor.
    pub fn decode_from(r: &mut Reader<'a>) -> Result<PollItem<'a>, WireError> {
        let header = PollItemHeader::decode_from(r)?;
        let payload = r.bytes(header.payload_len as usize, "payload")?;
        Ok(PollItem { header, payload })
    }

    /// Appends the item; `header.payload_len` must be `payload.len()`.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        self.header.encode(dst);
        dst.put_slice(self.payload);
    }
}

/// A whole poll response: `items u16 | item*`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollResponse<'a> {
    pub items: Vec<PollItem<'a>>,
}

impl<'a> PollResponse<'a> {
    pub fn decode(buf: &'a [u8]) -> Result<PollResponse<'a>, WireError> {
        let mut r = Reader::new(buf);
        let count = r.u16("item count")?;
        let mut items = Vec::with_capacity(count as usize);
        for _ in 0..count {
            items.push(PollItem::decode_from(&mut r)?);
        }
        if !r.is_empty() {
            return Err(WireError::Malformed(format!(
                "{} trailing bytes after {count} items",
                r.remaining()
            )));
        }
        Ok(PollResponse { items })
    }

    /// Appends the response (at most 65535 items: the broker never builds more).
    pub fn encode(&self, dst: &mut Vec<u8>) {
        let items = &self.items[..self.items.len().min(u16::MAX as usize)];
        dst.put_u16(items.len() as u16);
        for item in items {
            item.encode(dst);
        }
    }
}

/// Parses a complete poll response.
pub fn parse_poll_response(buf: &[u8]) -> Result<Vec<PollItem<'_>>, WireError> {
    PollResponse::decode(buf).map(|p| p.items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_two_items() {
        let mut buf = 2u16.to_be_bytes().to_vec();
        for (i, payload) in [&b"zstd-1"[..], b"zs2"].iter().enumerate() {
            let h = PollItemHeader {
                token: -9223372036854775808 + i as i64,
                range_index: i as u8,
                gen_version: 1,
                topic: "t",
                offset: 100 * i as i64,
                payload_len: payload.len() as u32,
            };
            let before = buf.len();
            h.encode(&mut buf);
            assert_eq!(buf.len() - before, h.encoded_len());
            buf.extend_from_slice(payload);
        }
        let items = parse_poll_response(&buf).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].header.offset, 100);
        assert_eq!(items[1].payload, b"zs2");
        assert_eq!(items[0].header.token, i64::MIN);
    }

    #[test]
    fn decode_encode_round_trip() {
        let topics = ["a", "bb"];
        let resp = PollResponse {
            items: (0..2)
                .map(|i| PollItem {
                    header: PollItemHeader {
                        token: i64::MAX - i as i64,
                        range_index: 3,
                        gen_version: 1,
                        topic: topics[i],
                        offset: 7,
                        payload_len: 2,
                    },
                    payload: b"pp",
                })
                .collect(),
        };
        let mut b = Vec::new();
        resp.encode(&mut b);
        assert_eq!(PollResponse::decode(&b).unwrap(), resp);
        let mut empty = Vec::new();
        PollResponse::default().encode(&mut empty);
        assert_eq!(empty, [0, 0]);
        let neg = {
            let mut b = 1u16.to_be_bytes().to_vec();
            resp.items[0].header.encode(&mut b);
            let at = b.len() - 4;
            b[at..].copy_from_slice(&(-1i32).to_be_bytes());
            b
        };
        assert!(matches!(
            PollResponse::decode(&neg),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn truncation_is_an_error() {
        let mut buf = 1u16.to_be_bytes().to_vec();
        PollItemHeader {
            token: 1,
            range_index: 0,
            gen_version: 1,
            topic: "abc",
            offset: 0,
            payload_len: 3,
        }
        .encode(&mut buf);
        buf.extend_from_slice(b"xyz");
        assert!(parse_poll_response(&buf).is_ok());
        for n in 0..buf.len() {
            assert!(matches!(
                parse_poll_response(&buf[..n]),
                Err(WireError::Truncated(_))
            ));
        }
        buf.push(0);
        assert!(matches!(
            parse_poll_response(&buf),
            Err(WireError::Malformed(_))
        ));
    }
}
