//! The framed-protocol header, fixed by the seed (`network-formats.md`):
//!
//! ```text
//! version u8 | flags u8 | stream id u16 | opcode u8 | body length u32 | head crc u32
//! ```
//!
//! All big-endian; the head CRC is CRC-32 (IEEE) of the first 9 bytes.

use super::WireError;

/// The only protocol version shardlog speaks (PolarStreams' `messageVersion`).
pub const VERSION: u8 = 1;
/// Size of the encoded header in bytes.
pub const HEADER_LEN: usize = 13;

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
    pub fn parse(buf: &[u8], max_body: u32) -> Result<Option<FrameHeader>, WireError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let expected = u32::from_be_bytes([buf[9], buf[10], buf[11], buf[12]]);
        let actual = crc32fast::hash(&buf[..9]);
        if expected != actual {
            return Err(WireError::HeadCrcMismatch { expected, actual });
        }
        let header = FrameHeader {
            version: buf[0],
            flags: buf[1],
            stream_id: u16::from_be_bytes([buf[2], buf[3]]),
            opcode: buf[4],
            body_len: u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]),
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
        out[0] = self.version;
        out[1] = self.flags;
        out[2..4].copy_from_slice(&self.stream_id.to_be_bytes());
        out[4] = self.opcode;
        out[5..9].copy_from_slice(&self.body_len.to_be_bytes());
        let crc = crc32fast::hash(&out[..9]);
        out[9..13].copy_from_slice(&crc.to_be_bytes());
        out
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
