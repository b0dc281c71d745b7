//! The compressed PRODUCE body (header flag `0x08`): the producer sends its records already
//! compressed, in the chunk payload format, so the broker stores and serves them as they came
//! instead of compressing them on its own core (as Kafka and Redpanda do with producer batches).
//!
//! ```text
//! key len u8 | key | record count u32 | payload
//! payload: one or more zstd frames, each with a content checksum, of the records
//!          (timestamp μs i64 | length u32 | body)*
//! ```
//!
//! The records carry their own timestamps (the producer's clock), so flag `0x01` is not allowed
//! with `0x08`. [`CompressedLayout::decode`] checks the body's shape; the broker then checks
//! what it is about to store with [`verify`]: bounded decompression (every checksum), well-formed
//! records, exactly `record count` of them. [`CompressedEncoder`] is the producer's side.

use zstd::zstd_safe::{self, CCtx, CParameter};

use super::payload::{self, PayloadError};
use super::reader::Reader;
use super::record::{RecordIter, RECORD_HEADER_LEN};
use super::writer::Put;
use super::WireError;

/// Where a compressed body's parts are (the body itself is kept by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedLayout {
    pub key_start: usize,
    pub key_len: usize,
    /// Records the payload holds, as the producer declares (checked by [`verify`]).
    pub count: u32,
    pub payload_start: usize,
}

impl CompressedLayout {
    /// Checks the body's shape: a key, a record count of at least 1, and a payload that starts
    /// like a zstd frame. The payload itself is checked by [`verify`].
    pub fn decode(body: &[u8]) -> Result<CompressedLayout, WireError> {
        let mut r = Reader::new(body);
        let key_len = r.u8("missing partition key length")? as usize;
        let key_start = r.position();
        r.skip(key_len, "partition key runs past the body")?;
        let count = r.u32("missing record count")?;
        if count == 0 {
            return Err(WireError::NoMessages);
        }
        let payload_start = r.position();
        if r.remaining() < 4 || body[payload_start..payload_start + 4] != [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(WireError::Malformed(
                "a compressed PRODUCE's records must be zstd frames".into(),
            ));
        }
        Ok(CompressedLayout {
            key_start,
            key_len,
            count,
            payload_start,
        })
    }

    pub fn key<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        &body[self.key_start..self.key_start + self.key_len]
    }

    pub fn payload<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        &body[self.payload_start..]
    }
}

/// What [`verify`] learnt of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Bytes of the records decompressed (headers included): what the payload stands for.
    pub raw_len: usize,
    /// The newest record timestamp, for the time index.
    pub max_timestamp_us: i64,
}

/// Why a compressed body's records were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressedError {
    #[error("compressed records: {0}")]
    Payload(#[from] PayloadError),
    #[error("compressed records: a record is malformed: {0}")]
    BadRecord(WireError),
    #[error(
        "compressed records: the body declares {declared} records but the payload holds {actual}"
    )]
    RecordCount { declared: u32, actual: u64 },
}

/// Checks a compressed payload before it is stored: decompresses it into `scratch` (at most
/// `limit` bytes, every frame's checksum verified) and walks its records, which must be
/// exactly `count` well-formed ones. `scratch` is reused from call to call.
pub fn verify(
    payload: &[u8],
    count: u32,
    limit: usize,
    scratch: &mut Vec<u8>,
) -> Result<Verified, CompressedError> {
    payload::decode_into(payload, limit, scratch)?;
    let mut n = 0u64;
    let mut max_timestamp_us = i64::MIN;
    for r in RecordIter::new(scratch) {
        let r = r.map_err(CompressedError::BadRecord)?;
        max_timestamp_us = max_timestamp_us.max(r.timestamp_us);
        n += 1;
    }
    if n != u64::from(count) {
        return Err(CompressedError::RecordCount {
            declared: count,
            actual: n,
        });
    }
    Ok(Verified {
        raw_len: scratch.len(),
        max_timestamp_us,
    })
}

/// Why [`CompressedEncoder`] could not encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("zstd: {0}")]
    Zstd(&'static str),
    #[error("a compressed PRODUCE needs at least one message")]
    NoMessages,
    #[error("a message of {0} bytes does not fit a record")]
    MessageTooLarge(usize),
}

fn zstd_err(code: usize) -> EncodeError {
    EncodeError::Zstd(zstd_safe::get_error_name(code))
}

/// The producer's side: encodes compressed PRODUCE bodies with one reused zstd context and
/// staging buffer (one per producer thread or connection).
pub struct CompressedEncoder {
    cctx: CCtx<'static>,
    records: Vec<u8>,
}

impl CompressedEncoder {
    /// An encoder at zstd `level` (the broker's default is 1; negative levels are fast modes).
    pub fn new(level: i32) -> Result<CompressedEncoder, EncodeError> {
        let mut cctx = CCtx::try_create().ok_or(EncodeError::Zstd("out of memory"))?;
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .map_err(zstd_err)?;
        cctx.set_parameter(CParameter::ChecksumFlag(true))
            .map_err(zstd_err)?;
        Ok(CompressedEncoder {
            cctx,
            records: Vec::new(),
        })
    }

    /// Appends a compressed PRODUCE body to `dst`: every message becomes a record stamped
    /// `timestamp_us`, and the records one zstd frame. The frame's header needs flag `0x08`.
    pub fn encode<'m>(
        &mut self,
        key: &[u8],
        timestamp_us: i64,
        messages: impl IntoIterator<Item = &'m [u8]>,
        dst: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        self.records.clear();
        let mut count: u32 = 0;
        for m in messages {
            let len = u32::try_from(m.len()).map_err(|_| EncodeError::MessageTooLarge(m.len()))?;
            self.records.reserve(RECORD_HEADER_LEN + m.len());
            self.records.put_i64(timestamp_us);
            self.records.put_u32(len);
            self.records.put_slice(m);
            count += 1;
        }
        if count == 0 {
            return Err(EncodeError::NoMessages);
        }
        dst.put_bytes_u8(key);
        dst.put_u32(count);
        let start = dst.len();
        dst.resize(start + zstd_safe::compress_bound(self.records.len()), 0);
        let n = self
            .cctx
            .compress2(&mut dst[start..], &self.records)
            .map_err(zstd_err)?;
        dst.truncate(start + n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(key: &[u8], msgs: &[&[u8]]) -> Vec<u8> {
        let mut b = Vec::new();
        let mut enc = CompressedEncoder::new(1).unwrap();
        enc.encode(key, 1_700_000_000_000_000, msgs.iter().copied(), &mut b)
            .unwrap();
        b
    }

    #[test]
    fn encoded_bodies_decode_and_verify() {
        let b = body(b"k", &[b"hello", b"", b"world!"]);
        let l = CompressedLayout::decode(&b).unwrap();
        assert_eq!((l.key(&b), l.count), (&b"k"[..], 3));
        let mut scratch = Vec::new();
        let v = verify(l.payload(&b), l.count, 1 << 20, &mut scratch).unwrap();
        assert_eq!(v.raw_len, 3 * RECORD_HEADER_LEN + 11);
        assert_eq!(v.max_timestamp_us, 1_700_000_000_000_000);
        let bodies: Vec<&[u8]> = RecordIter::new(&scratch).map(|r| r.unwrap().body).collect();
        assert_eq!(bodies, vec![&b"hello"[..], b"", b"world!"]);
    }

    #[test]
    fn a_wrong_count_or_a_bomb_is_refused() {
        let b = body(b"", &[b"one", b"two"]);
        let l = CompressedLayout::decode(&b).unwrap();
        let mut scratch = Vec::new();
        assert_eq!(
            verify(l.payload(&b), 3, 1 << 20, &mut scratch),
            Err(CompressedError::RecordCount {
                declared: 3,
                actual: 2
            })
        );
        assert!(matches!(
            verify(l.payload(&b), 2, 10, &mut scratch),
            Err(CompressedError::Payload(PayloadError::TooLarge {
                limit: 10
            }))
        ));
        // Records that are not records: a frame of raw bytes.
        let junk = zstd::bulk::Compressor::new(1)
            .and_then(|mut c| {
                c.include_checksum(true)?;
                c.compress(b"not records at all")
            })
            .unwrap();
        assert!(matches!(
            verify(&junk, 1, 1 << 20, &mut scratch),
            Err(CompressedError::BadRecord(_))
        ));
    }

    #[test]
    fn every_cut_of_a_body_is_an_error_not_a_panic() {
        let b = body(b"key", &[b"a message", b"another one"]);
        for n in 0..b.len() {
            let mut scratch = Vec::new();
            let checked = CompressedLayout::decode(&b[..n])
                .map(|l| verify(l.payload(&b[..n]), l.count, 1 << 20, &mut scratch));
            assert!(!matches!(checked, Ok(Ok(_))), "cut at {n}");
        }
        assert_eq!(
            CompressedLayout::decode(b"\x00\0\0\0\0\x28\xb5\x2f\xfd"),
            Err(WireError::NoMessages)
        );
    }
}
