//! Whole frames of the framed protocol: a [`FrameHeader`] and its body. Opcodes 1–6 are
//! PolarStreams'; the consumer operations come after them.

use super::header::{FrameHeader, HEADER_LEN, VERSION};
use super::WireError;

/// Operation codes (fixed numbers, never reordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpCode {
    Startup = 1,
    Ready = 2,
    Error = 3,
    Produce = 4,
    ProduceResponse = 5,
    Heartbeat = 6,
    /// Consumer operations (shardlog's, after PolarStreams' six; see `wire::consumer`).
    Register = 7,
    Poll = 8,
    PollResponse = 9,
    Commit = 10,
    Goodbye = 11,
}

impl OpCode {
    pub fn from_u8(op: u8) -> Result<OpCode, WireError> {
        Ok(match op {
            1 => OpCode::Startup,
            2 => OpCode::Ready,
            3 => OpCode::Error,
            4 => OpCode::Produce,
            5 => OpCode::ProduceResponse,
            6 => OpCode::Heartbeat,
            7 => OpCode::Register,
            8 => OpCode::Poll,
            9 => OpCode::PollResponse,
            10 => OpCode::Commit,
            11 => OpCode::Goodbye,
            other => return Err(WireError::UnknownOpcode(other)),
        })
    }
}

/// Header flag bits.
pub struct Flags;

impl Flags {
    /// The PRODUCE body starts with a client timestamp (μs since the epoch).
    pub const WITH_TIMESTAMP: u8 = 0b0000_0001;
}

/// A complete frame borrowed from a read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Parses one frame from the start of `buf`: `Ok(None)` until the header and the whole body
    /// are there, then the frame and the number of bytes it used.
    pub fn parse(buf: &'a [u8], max_body: u32) -> Result<Option<(Frame<'a>, usize)>, WireError> {
        let Some(header) = FrameHeader::parse(buf, max_body)? else {
            return Ok(None);
        };
        let end = HEADER_LEN + header.body_len as usize;
        if buf.len() < end {
            return Ok(None);
        }
        Ok(Some((
            Frame {
                header,
                body: &buf[HEADER_LEN..end],
            },
            end,
        )))
    }
}

/// Appends a frame with `body` to `dst`.
pub fn encode_frame(dst: &mut Vec<u8>, opcode: OpCode, flags: u8, stream_id: u16, body: &[u8]) {
    let header = FrameHeader {
        version: VERSION,
        flags,
        stream_id,
        opcode: opcode as u8,
        body_len: body.len() as u32,
    };
    dst.extend_from_slice(&header.encode());
    dst.extend_from_slice(body);
}

/// Appends a frame whose body is written by `write_body` straight into `dst` (no temporary
/// buffer); the header's length and CRC are filled in afterwards.
pub fn encode_frame_with(
    dst: &mut Vec<u8>,
    opcode: OpCode,
    flags: u8,
    stream_id: u16,
    write_body: impl FnOnce(&mut Vec<u8>),
) {
    let start = dst.len();
    dst.extend_from_slice(&[0u8; HEADER_LEN]);
    write_body(dst);
    let body_len = (dst.len() - start - HEADER_LEN) as u32;
    let header = FrameHeader {
        version: VERSION,
        flags,
        stream_id,
        opcode: opcode as u8,
        body_len,
    };
    dst[start..start + HEADER_LEN].copy_from_slice(&header.encode());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_waits_for_the_whole_body() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, OpCode::Startup, 0, 7, b"\x03abc");
        encode_frame(&mut buf, OpCode::Heartbeat, 0, 8, b"");
        let first_len = HEADER_LEN + 4;
        for n in 0..first_len {
            assert_eq!(Frame::parse(&buf[..n], 1024).unwrap(), None);
        }
        let (f, used) = Frame::parse(&buf, 1024).unwrap().unwrap();
        assert_eq!(used, first_len);
        assert_eq!(f.header.stream_id, 7);
        assert_eq!(f.body, b"\x03abc");
        let (f, used) = Frame::parse(&buf[first_len..], 1024).unwrap().unwrap();
        assert_eq!((f.header.opcode, used), (6, HEADER_LEN));
    }

    #[test]
    fn encode_with_matches_encode() {
        let mut a = Vec::new();
        encode_frame(&mut a, OpCode::Produce, 1, 3, b"body");
        let mut b = Vec::new();
        encode_frame_with(&mut b, OpCode::Produce, 1, 3, |d| {
            d.extend_from_slice(b"body")
        });
        assert_eq!(a, b);
    }

    #[test]
    fn opcodes() {
        for op in 1..=11u8 {
            assert_eq!(OpCode::from_u8(op).unwrap() as u8, op);
        }
        assert_eq!(OpCode::from_u8(0), Err(WireError::UnknownOpcode(0)));
        assert_eq!(OpCode::from_u8(12), Err(WireError::UnknownOpcode(12)));
        assert_eq!(OpCode::from_u8(200), Err(WireError::UnknownOpcode(200)));
    }
}
