//! Whole frames of the framed protocol: a [`FrameHeader`] and its body. Opcodes 1–6 are
//! PolarStreams'; the consumer operations come after them.

use super::header::{FrameHeader, HEADER_LEN, VERSION};
use super::table::code_table;
use super::writer::Put;
use super::WireError;

code_table! {
    /// Operation codes: one row each, `Variant = number, "name";` (numbers are fixed, never
    /// reordered; 1–6 are PolarStreams').
    pub enum OpCode {
        Startup = 1, "STARTUP";
        Ready = 2, "READY";
        Error = 3, "ERROR";
        Produce = 4, "PRODUCE";
        ProduceResponse = 5, "PRODUCE_RESPONSE";
        Heartbeat = 6, "HEARTBEAT";
        /// Consumer operations (shardlog's, after PolarStreams' six; see `wire::consumer`).
        Register = 7, "REGISTER";
        Poll = 8, "POLL";
        PollResponse = 9, "POLL_RESPONSE";
        Commit = 10, "COMMIT";
        Goodbye = 11, "GOODBYE";
        /// One partition from an offset, without a group (see `wire::fetch`); answered with
        /// POLL_RESPONSE.
        Fetch = 12, "FETCH";
        /// Broker to broker only (cluster mode): a consumer-group operation passed to the
        /// group's coordinator (see `wire::group`); refused on a connection whose STARTUP did
        /// not say it is a broker's.
        Group = 13, "GROUP";
        /// The coordinator's answer to GROUP.
        GroupAnswer = 14, "GROUP_ANSWER";
    }
}

impl OpCode {
    pub fn from_u8(op: u8) -> Result<OpCode, WireError> {
        OpCode::from_code(op).ok_or(WireError::UnknownOpcode(op))
    }
}

/// Header flag bits.
pub struct Flags;

impl Flags {
    /// The PRODUCE body starts with a client timestamp (μs since the epoch).
    pub const WITH_TIMESTAMP: u8 = 0b0000_0001;
    /// The FETCH body's `offset` field is a timestamp (μs since the epoch): read from the
    /// first record at or after it.
    pub const BY_TIME: u8 = 0b0000_0010;
    /// FETCH, cluster mode: read the partition here and never forward the read: what one
    /// broker's reads of a partition it does not lead send the leader, so a read takes at most
    /// one hop. A broker that does not lead the partition (any more) refuses it. Without it,
    /// a FETCH is answered from the partition's leader.
    pub const AT_THIS_BROKER: u8 = 0b0000_0100;
    /// PRODUCE: the body carries the records already compressed, in the chunk payload format
    /// (`produce_compressed`); stored and served as it came.
    pub const COMPRESSED: u8 = 0b0000_1000;
}

/// A complete frame borrowed from a read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// A version-1 frame carrying `body`.
    pub fn new(opcode: OpCode, flags: u8, stream_id: u16, body: &'a [u8]) -> Frame<'a> {
        Frame {
            header: FrameHeader {
                version: VERSION,
                flags,
                stream_id,
                opcode: opcode as u8,
                body_len: body.len() as u32,
            },
            body,
        }
    }

    /// Parses one frame from the start of `buf`: `Ok(None)` until the header and the whole body
    /// are there, then the frame and the number of bytes it used.
    pub fn parse(buf: &'a [u8], max_body: u32) -> Result<Option<(Frame<'a>, usize)>, WireError> {
        let Some(header) = FrameHeader::parse(buf, max_body)? else {
            return Ok(None);
        };
        let end = HEADER_LEN + header.body_len as usize;
        let Some(body) = buf.get(HEADER_LEN..end) else {
            return Ok(None);
        };
        Ok(Some((Frame { header, body }, end)))
    }

    /// Appends the frame: its header as it is (`body_len` included), then the body.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_slice(&self.header.encode());
        dst.put_slice(self.body);
    }
}

/// Appends a frame with `body` to `dst`.
pub fn encode_frame(dst: &mut Vec<u8>, opcode: OpCode, flags: u8, stream_id: u16, body: &[u8]) {
    Frame::new(opcode, flags, stream_id, body).encode(dst);
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
    let header = Frame::new(opcode, flags, stream_id, &dst[start + HEADER_LEN..]).header;
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
    fn encode_then_parse_and_every_truncation() {
        let f = Frame::new(
            OpCode::Produce,
            Flags::WITH_TIMESTAMP,
            0xABCD,
            b"\0\0\0\0\0\0\0\x01\x00",
        );
        let mut b = Vec::new();
        f.encode(&mut b);
        assert_eq!(Frame::parse(&b, 1024).unwrap(), Some((f, b.len())));
        for n in 0..b.len() {
            assert_eq!(Frame::parse(&b[..n], 1024).unwrap(), None, "{n}");
        }
    }

    #[test]
    fn opcodes() {
        crate::table::assert_unique(OpCode::TABLE, |op| op as u8);
        for op in 1..=12u8 {
            assert_eq!(OpCode::from_u8(op).unwrap() as u8, op);
        }
        assert_eq!(OpCode::ALL.len(), 14);
        assert_eq!(OpCode::from_u8(0), Err(WireError::UnknownOpcode(0)));
        assert_eq!(OpCode::from_u8(15), Err(WireError::UnknownOpcode(15)));
        assert_eq!(OpCode::from_u8(200), Err(WireError::UnknownOpcode(200)));
        assert_eq!(OpCode::ProduceResponse.name(), "PRODUCE_RESPONSE");
    }
}
