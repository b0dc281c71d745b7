//! The framed-protocol header, fixed by the seed (`network-formats.md`):
//!
//! ```text
//! version u8 | flags u8 | stream id u16 | opcode u8 | body length u32 | head crc u32
//! ```
//!
//! All big-endian; the head CRC is CRC-32 (IEEE) of the first 9 bytes.

use super::reader::Reader;
use super::writer::Put;
use super::WireError;

/// The only protocol version shardlog speaks (PolarStreams' `messageVersion`).
pub const VERSION: u8 = 1;
/// Size of the encoded header in bytes.
pub const HEADER_LEN: usize = 13;
/// Where the head CRC starts: it covers the bytes before it.
const CRC_START: usize = 9;

/// A decoded, CRC-checked frame header. The opcode is kept raw so that an unknown opcode can be
/// answered on the right stream id without tearing down the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub version: u8,
    pub flags: u8,
    pub stream_id: u16,
    pub opcode: u8,
    pub body_len: u32,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`. `Ok(None)` when fewer than [`HEADER_LEN`]
    /// bytes are available. A CRC mismatch, an unsupported version or a body longer than
    /// `max_body` are errors after which the byte stream can no longer be trusted.
    #[inline]
    pub fn parse(buf: &[u8], max_body: u32) -> Result<Option<FrameHeader>, WireError> {
        let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        // The CRC first: the fields are read after the hash, so they need not be kept across it.
        let (fields, crc) = head.split_at(CRC_START);
        let expected = Reader::new(crc).u32("head crc")?;
        let actual = crc32fast::hash(fields);
        if expected != actual {
            return Err(WireError::HeadCrcMismatch { expected, actual });
        }
        let mut r = Reader::new(fields);
        let header = FrameHeader {
            version: r.u8("version")?,
            flags: r.u8("flags")?,
            stream_id: r.u16("stream id")?,
            opcode: r.u8("opcode")?,
            body_len: r.u32("body length")?,
        };
        if header.version != VERSION {
            return Err(WireError::UnsupportedVersion(header.version));
        }
        if header.body_len > max_body {
            return Err(WireError::BodyTooLarge {
                len: header.body_len,
                max: max_body,
            });
        }
        Ok(Some(header))
    }

    /// Encodes the header, computing its CRC.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = &mut out[..];
        w.put_u8(self.version);
        w.put_u8(self.flags);
        w.put_u16(self.stream_id);
        w.put_u8(self.opcode);
        w.put_u32(self.body_len);
        let crc = crc32fast::hash(&out[..CRC_START]);
        (&mut out[CRC_START..]).put_u32(crc);
        out
    }

    /// The stream id of a header that may be incomplete or invalid (bytes 2–3, unchecked),
    /// for answering a framing error on the right stream: 0 when fewer than 4 bytes arrived.
    pub fn peek_stream_id(buf: &[u8]) -> u16 {
        let mut r = Reader::new(buf);
        r.skip(2, "version and flags")
            .and_then(|()| r.u16("stream id"))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FrameHeader {
        FrameHeader {
            version: VERSION,
            flags: 1,
            stream_id: 0xBEEF,
            opcode: 4,
            body_len: 42,
        }
    }

    #[test]
    fn round_trip() {
        let bytes = sample().encode();
        assert_eq!(FrameHeader::parse(&bytes, 100).unwrap(), Some(sample()));
    }

    #[test]
    fn layout_is_big_endian_with_ieee_crc() {
        let bytes = sample().encode();
        assert_eq!(&bytes[..9], &[1, 1, 0xBE, 0xEF, 4, 0, 0, 0, 42]);
        let crc = crc32fast::hash(&bytes[..9]);
        assert_eq!(&bytes[9..], &crc.to_be_bytes());
    }

    #[test]
    fn incomplete_is_none() {
        let bytes = sample().encode();
        for n in 0..HEADER_LEN {
            assert_eq!(FrameHeader::parse(&bytes[..n], 100).unwrap(), None);
        }
    }

    #[test]
    fn peek_stream_id_of_a_partial_header() {
        let bytes = sample().encode();
        for n in 0..HEADER_LEN {
            let want = if n >= 4 { 0xBEEF } else { 0 };
            assert_eq!(FrameHeader::peek_stream_id(&bytes[..n]), want, "{n}");
        }
    }

    #[test]
    fn bad_crc_version_and_size() {
        let mut bytes = sample().encode();
        bytes[12] ^= 1;
        assert!(matches!(
            FrameHeader::parse(&bytes, 100),
            Err(WireError::HeadCrcMismatch { .. })
        ));
        let mut h = sample();
        h.version = 2;
        assert_eq!(
            FrameHeader::parse(&h.encode(), 100),
            Err(WireError::UnsupportedVersion(2))
        );
        assert_eq!(
            FrameHeader::parse(&sample().encode(), 41),
            Err(WireError::BodyTooLarge { len: 42, max: 41 })
        );
    }
}
