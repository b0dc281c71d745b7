//! The record layout inside a chunk's (decompressed) payload, as in PolarStreams:
//!
//! ```text
//! timestamp μs i64 | length u32 | body
//! ```
//!
//! Record i of a chunk (or poll item) has offset `start + i`.

use super::reader::Reader;
use super::writer::Put;
use super::WireError;

/// Bytes of a record's header.
pub const RECORD_HEADER_LEN: usize = 12;

/// One decoded record, borrowing the decompressed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp_us: i64,
    pub body: &'a [u8],
}

impl<'a> Record<'a> {
    /// Reads one record at the cursor.
    pub fn decode_from(r: &mut Reader<'a>) -> Result<Record<'a>, WireError> {
        let timestamp_us = r.i64("record header")?;
        let len = r.u32("record header")?;
        let body = r.bytes(len as usize, "record body")?;
        Ok(Record { timestamp_us, body })
    }

    /// Appends the record.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_i64(self.timestamp_us);
        dst.put_u32(self.body.len() as u32);
        dst.put_slice(self.body);
    }
}

/// Appends one record to `dst`.
pub fn encode_record(timestamp_us: i64, body: &[u8], dst: &mut Vec<u8>) {
    Record { timestamp_us, body }.encode(dst);
}

/// Iterates the records of a decompressed payload, stopping with an error at the first one
/// that runs past the end.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    r: Reader<'a>,
}

impl<'a> RecordIter<'a> {
    pub fn new(payload: &'a [u8]) -> RecordIter<'a> {
        RecordIter {
            r: Reader::new(payload),
        }
    }

    /// The bytes of the records not read yet (whole records, in the chunk's layout).
    pub fn remaining(&self) -> &'a [u8] {
        self.r.peek_rest()
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.r.is_empty() {
            return None;
        }
        let record = Record::decode_from(&mut self.r);
        if record.is_err() {
            self.r.rest_bytes();
        }
        Some(record)
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
            let want = if n < RECORD_HEADER_LEN {
                "record header"
            } else {
                "record body"
            };
            assert_eq!(r[0], Err(WireError::Truncated(want)), "{n}");
        }
    }
}
