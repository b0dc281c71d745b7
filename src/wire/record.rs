//! The record layout inside a chunk's (decompressed) payload, as in PolarStreams:
//!
//! ```text
//! timestamp μs i64 | length u32 | body
//! ```
//!
//! Record i of a chunk (or poll item) has offset `start + i`.

use super::WireError;

/// Bytes of a record's header.
pub const RECORD_HEADER_LEN: usize = 12;

/// One decoded record, borrowing the decompressed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp_us: i64,
    pub body: &'a [u8],
}

/// Appends one record to `dst`.
pub fn encode_record(timestamp_us: i64, body: &[u8], dst: &mut Vec<u8>) {
    dst.extend_from_slice(&timestamp_us.to_be_bytes());
    dst.extend_from_slice(&(body.len() as u32).to_be_bytes());
    dst.extend_from_slice(body);
}

/// Iterates the records of a decompressed payload, stopping with an error at the first one
/// that runs past the end.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
}

impl<'a> RecordIter<'a> {
    pub fn new(payload: &'a [u8]) -> RecordIter<'a> {
        RecordIter { rest: payload }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < RECORD_HEADER_LEN {
            self.rest = &[];
            return Some(Err(WireError::Truncated("record header")));
        }
        let ts = i64::from_be_bytes(self.rest[..8].try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(self.rest[8..12].try_into().expect("4 bytes")) as usize;
        if self.rest.len() - RECORD_HEADER_LEN < len {
            self.rest = &[];
            return Some(Err(WireError::Truncated("record body")));
        }
        let body = &self.rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len];
        self.rest = &self.rest[RECORD_HEADER_LEN + len..];
        Some(Ok(Record {
            timestamp_us: ts,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = Vec::new();
        encode_record(5, b"abc", &mut b);
        encode_record(-1, b"", &mut b);
        let recs: Vec<_> = RecordIter::new(&b).map(|r| r.unwrap()).collect();
        assert_eq!(
            recs[0],
            Record {
                timestamp_us: 5,
                body: b"abc"
            }
        );
        assert_eq!(
            recs[1],
            Record {
                timestamp_us: -1,
                body: b""
            }
        );
        assert_eq!(recs.len(), 2);
    }

    #[test]
    fn truncated_records_error() {
        let mut b = Vec::new();
        encode_record(5, b"abc", &mut b);
        for n in 1..b.len() {
            let r: Vec<_> = RecordIter::new(&b[..n]).collect();
            assert_eq!(r.len(), 1);
            assert!(r[0].is_err());
        }
    }
}
