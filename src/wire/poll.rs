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

impl PollItemHeader<'_> {
    /// Encoded size: 8 + 1 + 4 + 1 + topic + 8 + 4.
    pub fn encoded_len(&self) -> usize {
        26 + self.topic.len()
    }

    /// Appends the item header (everything before the payload).
    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&self.token.to_be_bytes());
        dst.push(self.range_index);
        dst.extend_from_slice(&self.gen_version.to_be_bytes());
        let topic = &self.topic.as_bytes()[..self.topic.len().min(255)];
        dst.push(topic.len() as u8);
        dst.extend_from_slice(topic);
        dst.extend_from_slice(&self.offset.to_be_bytes());
        dst.extend_from_slice(&(self.payload_len as i32).to_be_bytes());
    }
}

/// One parsed item, borrowing the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollItem<'a> {
    pub header: PollItemHeader<'a>,
    pub payload: &'a [u8],
}

/// Parses a complete poll response.
pub fn parse_poll_response(buf: &[u8]) -> Result<Vec<PollItem<'_>>, WireError> {
    let mut r = Reader::new(buf);
    let count = u16::from_be_bytes(r.take(2, "item count")?.try_into().expect("2"));
    let mut items = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let token = i64::from_be_bytes(r.take(8, "token")?.try_into().expect("8"));
        let range_index = r.take(1, "range index")?[0];
        let gen_version = u32::from_be_bytes(r.take(4, "gen version")?.try_into().expect("4"));
        let topic_len = r.take(1, "topic length")?[0] as usize;
        let topic = std::str::from_utf8(r.take(topic_len, "topic")?)
            .map_err(|_| WireError::Malformed("topic is not UTF-8".into()))?;
        let offset = i64::from_be_bytes(r.take(8, "offset")?.try_into().expect("8"));
        let payload_len = i32::from_be_bytes(r.take(4, "payload length")?.try_into().expect("4"));
        if payload_len < 0 {
            return Err(WireError::Malformed(format!(
                "negative payload length {payload_len}"
            )));
        }
        let payload = r.take(payload_len as usize, "payload")?;
        items.push(PollItem {
            header: PollItemHeader {
                token,
                range_index,
                gen_version,
                topic,
                offset,
                payload_len: payload_len as u32,
            },
            payload,
        });
    }
    if r.rest() != 0 {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes after {count} items",
            r.rest()
        )));
    }
    Ok(items)
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
            assert!(parse_poll_response(&buf[..n]).is_err());
        }
    }
}
