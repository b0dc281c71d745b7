//! The gRPC length-prefixed message, as carried in HTTP/2 DATA frames:
//!
//! ```text
//! compressed flag u8 (0 or 1) | message length u32 (big-endian) | message
//! ```
//!
//! DATA frames may split a message anywhere, and one frame may hold several messages; the
//! parser therefore works on whatever bytes have arrived, answering `Ok(None)` until a whole
//! message is there. The length is checked against the maximum as soon as the 5-byte prefix
//! is visible, so an oversized message is refused before its body is buffered.
//!
//! Also here: the `grpc-timeout` header and the percent-encoding of `grpc-message`.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};

use super::reader::Reader;
use super::writer::Put;
use super::WireError;

/// Bytes of the prefix before each message.
pub const PREFIX_LEN: usize = 5;

/// One parsed message, borrowing the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcMessage<'a> {
    /// The compressed flag: the body is compressed with the call's `grpc-encoding`.
    pub compressed: bool,
    pub body: &'a [u8],
}

/// The prefix alone: what is known once 5 bytes have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcPrefix {
    pub compressed: bool,
    pub len: u32,
}

impl GrpcPrefix {
    /// Bytes of the whole message, prefix included.
    pub fn total_len(&self) -> usize {
        PREFIX_LEN + self.len as usize
    }

    /// Parses the prefix at the start of `buf`, checking the flag and `max_len`: `Ok(None)`
    /// until 5 bytes are there.
    pub fn parse(buf: &[u8], max_len: u32) -> Result<Option<GrpcPrefix>, WireError> {
        let Some(prefix) = buf.get(..PREFIX_LEN) else {
            return Ok(None);
        };
        let mut r = Reader::new(prefix);
        let compressed = match r.u8("compressed flag")? {
            0 => false,
            1 => true,
            other => return Err(WireError::GrpcBadFlag(other)),
        };
        let len = r.u32("message length")?;
        if len > max_len {
            return Err(WireError::GrpcMessageTooLarge { len, max: max_len });
        }
        Ok(Some(GrpcPrefix { compressed, len }))
    }

    pub fn encode(&self, dst: &mut [u8; PREFIX_LEN]) {
        let mut w = &mut dst[..];
        w.put_u8(u8::from(self.compressed));
        w.put_u32(self.len);
    }
}

impl<'a> GrpcMessage<'a> {
    /// Parses one whole message at the start of `buf`: the message and the bytes it used, or
    /// `None` when more bytes are needed.
    pub fn parse(
        buf: &'a [u8],
        max_len: u32,
    ) -> Result<Option<(GrpcMessage<'a>, usize)>, WireError> {
        let Some(prefix) = GrpcPrefix::parse(buf, max_len)? else {
            return Ok(None);
        };
        let used = prefix.total_len();
        let Some(body) = buf.get(PREFIX_LEN..used) else {
            return Ok(None);
        };
        let compressed = prefix.compressed;
        Ok(Some((GrpcMessage { compressed, body }, used)))
    }

    /// Appends the prefix (with this message's flag) and the body.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        let mut prefix = [0u8; PREFIX_LEN];
        GrpcPrefix {
            compressed: self.compressed,
            len: self.body.len() as u32,
        }
        .encode(&mut prefix);
        dst.put_slice(&prefix);
        dst.put_slice(self.body);
    }
}

/// Parses the prefix at the start of `buf` ([`GrpcPrefix::parse`]).
pub fn parse_prefix(buf: &[u8], max_len: u32) -> Result<Option<GrpcPrefix>, WireError> {
    GrpcPrefix::parse(buf, max_len)
}

/// Parses one whole message at the start of `buf` ([`GrpcMessage::parse`]).
pub fn parse(buf: &[u8], max_len: u32) -> Result<Option<(GrpcMessage<'_>, usize)>, WireError> {
    GrpcMessage::parse(buf, max_len)
}

/// A decoded message: its compressed flag and its body, a slice of the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    pub compressed: bool,
    pub body: Bytes,
}

/// Turns a stream of byte chunks (HTTP/2 DATA frames), split anywhere, into whole messages.
/// A message inside one chunk is sliced out of it without a copy; only a message straddling
/// chunks is assembled, in a buffer that never grows past the declared (and checked) length.
#[derive(Debug)]
pub struct MessageDecoder {
    /// The part of the last chunk not decoded yet.
    chunk: Bytes,
    /// A message straddling chunks, being assembled.
    partial: BytesMut,
    max_len: u32,
}

impl MessageDecoder {
    pub fn new(max_len: u32) -> MessageDecoder {
        MessageDecoder {
            chunk: Bytes::new(),
            partial: BytesMut::new(),
            max_len,
        }
    }

    /// Adds the next chunk. Call only once [`MessageDecoder::next_message`] has answered `None`.
    pub fn push(&mut self, chunk: Bytes) {
        debug_assert!(
            self.chunk.is_empty(),
            "push before the last chunk was decoded"
        );
        self.chunk = chunk;
    }

    /// Bytes of an incomplete message held (non-zero at the end of a stream means the stream
    /// was cut inside a message).
    pub fn pending(&self) -> usize {
        self.partial.len() + self.chunk.len()
    }

    /// The next whole message, or `None` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<OwnedMessage>, WireError> {
        if self.partial.is_empty() {
            if let Some((msg, used)) = parse(&self.chunk, self.max_len)? {
                let compressed = msg.compressed;
                let body = self.chunk.slice(PREFIX_LEN..used);
                self.chunk.advance(used);
                return Ok(Some(OwnedMessage { compressed, body }));
            }
        }
        while !self.chunk.is_empty() {
            let need = match parse_prefix(&self.partial, self.max_len)? {
                Some(prefix) => {
                    self.partial
                        .reserve(prefix.total_len().saturating_sub(self.partial.len()));
                    prefix.total_len()
                }
                None => PREFIX_LEN,
            };
            let take = (need - self.partial.len()).min(self.chunk.len());
            self.partial.extend_from_slice(&self.chunk[..take]);
            self.chunk.advance(take);
            if let Some((msg, used)) = parse(&self.partial, self.max_len)? {
                let compressed = msg.compressed;
                let whole = self.partial.split_to(used).freeze();
                return Ok(Some(OwnedMessage {
                    compressed,
                    body: whole.slice(PREFIX_LEN..),
                }));
            }
        }
        Ok(None)
    }
}

/// Writes the prefix of an uncompressed message of `len` bytes.
pub fn encode_prefix(len: usize, dst: &mut [u8; PREFIX_LEN]) {
    GrpcPrefix {
        compressed: false,
        len: len as u32,
    }
    .encode(dst);
}

/// Appends an uncompressed message (prefix and body) to `dst`.
pub fn encode(body: &[u8], dst: &mut Vec<u8>) {
    GrpcMessage {
        compressed: false,
        body,
    }
    .encode(dst);
}

/// Parses a `grpc-timeout` header value: 1–8 ASCII digits and a unit (`H` hours, `M` minutes,
/// `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds).
pub fn parse_timeout(value: &[u8]) -> Result<Duration, WireError> {
    let bad = || {
        WireError::Malformed(format!(
            "grpc-timeout '{}' is not 1-8 digits followed by H, M, S, m, u or n",
            String::from_utf8_lossy(value)
        ))
    };
    let (&unit, digits) = value.split_last().ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let n: u64 = digits
        .iter()
        .fold(0, |acc, d| acc * 10 + u64::from(d - b'0'));
    Ok(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(bad()),
    })
}

/// Percent-encodes a `grpc-message` value: every byte outside printable ASCII (0x20–0x7E),
/// and `%` itself, becomes `%XX`. UTF-8 text is encoded byte by byte.
pub fn percent_encode_message(message: &str, dst: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            dst.push(b as char);
        } else {
            dst.push('%');
            dst.push(HEX[(b >> 4) as usize] as char);
            dst.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Decodes a percent-encoded `grpc-message` (invalid escapes are kept as they are, as the
/// gRPC spec asks).
pub fn percent_decode_message(value: &[u8]) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' && i + 2 < value.len() {
            if let (Some(h), Some(l)) = (hex(value[i + 1]), hex(value[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(value[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_incomplete() {
        let mut b = Vec::new();
        encode(b"hello", &mut b);
        encode(b"", &mut b);
        assert_eq!(&b[..5], b"\0\0\0\0\x05");
        let (m, used) = parse(&b, 100).unwrap().unwrap();
        assert_eq!(m.body, b"hello");
        assert!(!m.compressed);
        assert_eq!(used, 10);
        let (m, used) = parse(&b[10..], 100).unwrap().unwrap();
        assert_eq!((m.body, used), (&b""[..], 5));
        for n in 0..10 {
            assert_eq!(parse(&b[..n], 100).unwrap(), None, "{n} bytes");
        }
    }

    #[test]
    fn compressed_messages_round_trip() {
        for compressed in [false, true] {
            let m = GrpcMessage {
                compressed,
                body: b"abc",
            };
            let mut b = Vec::new();
            m.encode(&mut b);
            assert_eq!(GrpcMessage::parse(&b, 3).unwrap(), Some((m, 8)));
            for n in 0..b.len() {
                assert_eq!(GrpcMessage::parse(&b[..n], 3).unwrap(), None, "{n}");
            }
        }
    }

    #[test]
    fn limits_and_flags() {
        assert_eq!(
            parse(b"\0\0\0\x01\0", 255),
            Err(WireError::GrpcMessageTooLarge { len: 256, max: 255 })
        );
        // Refused from the prefix alone, before the body arrives.
        assert!(parse_prefix(b"\0\x10\0\0\0", 1024).is_err());
        assert_eq!(parse(b"\x02\0\0\0\0", 10), Err(WireError::GrpcBadFlag(2)));
        let (m, _) = parse(b"\x01\0\0\0\x01z", 10).unwrap().unwrap();
        assert!(m.compressed);
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"5S").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_timeout(b"100m").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_timeout(b"2H").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_timeout(b"99999999n").unwrap(),
            Duration::from_nanos(99999999)
        );
        for bad in [&b""[..], b"S", b"5", b"123456789S", b"5s", b"-1S", b"1.5S"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn percent_encoding() {
        let mut s = String::new();
        percent_encode_message("50% off: caf\u{e9}\n", &mut s);
        assert_eq!(s, "50%25 off: caf%C3%A9%0A");
        assert_eq!(percent_decode_message(s.as_bytes()), "50% off: caf\u{e9}\n");
        assert_eq!(percent_decode_message(b"%zz%4"), "%zz%4");
    }

    // The message decoder on its own: messages split across chunks at every byte position,
    // several messages in one chunk, limits.

    fn stream_of(bodies: &[&[u8]]) -> Vec<u8> {
        let mut b = Vec::new();
        for m in bodies {
            encode(m, &mut b);
        }
        b
    }

    /// Feeds `chunks` to a decoder, collecting the messages.
    fn decode(chunks: &[&[u8]], max: u32) -> Result<(Vec<OwnedMessage>, usize), WireError> {
        let mut d = MessageDecoder::new(max);
        let mut out = Vec::new();
        for c in chunks {
            d.push(Bytes::copy_from_slice(c));
            while let Some(m) = d.next_message()? {
                out.push(m);
            }
        }
        Ok((out, d.pending()))
    }

    #[test]
    fn every_single_split_position() {
        let bodies: [&[u8]; 4] = [b"first message", b"", b"x", &[7u8; 300]];
        let all = stream_of(&bodies);
        for cut in 0..=all.len() {
            let (msgs, pending) = decode(&[&all[..cut], &all[cut..]], 1024).unwrap();
            assert_eq!(pending, 0, "cut at {cut}");
            let got: Vec<&[u8]> = msgs.iter().map(|m| &m.body[..]).collect();
            assert_eq!(got, bodies, "cut at {cut}");
            assert!(msgs.iter().all(|m| !m.compressed));
        }
    }

    #[test]
    fn every_pair_of_split_positions() {
        let bodies: [&[u8]; 3] = [b"alpha", b"bravo charlie", b""];
        let all = stream_of(&bodies);
        for a in 0..=all.len() {
            for b in a..=all.len() {
                let (msgs, pending) = decode(&[&all[..a], &all[a..b], &all[b..]], 64).unwrap();
                assert_eq!(pending, 0, "cuts at {a}, {b}");
                let got: Vec<&[u8]> = msgs.iter().map(|m| &m.body[..]).collect();
                assert_eq!(got, bodies, "cuts at {a}, {b}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let bodies: [&[u8]; 2] = [b"hello", b"world!"];
        let all = stream_of(&bodies);
        let chunks: Vec<&[u8]> = all.chunks(1).collect();
        let (msgs, pending) = decode(&chunks, 64).unwrap();
        assert_eq!(pending, 0);
        assert_eq!(msgs.len(), 2);
        assert_eq!(&msgs[1].body[..], b"world!");
    }

    #[test]
    fn incomplete_stream_leaves_bytes_pending() {
        let all = stream_of(&[b"abcdef"]);
        for cut in 1..all.len() {
            let (msgs, pending) = decode(&[&all[..cut]], 64).unwrap();
            assert!(msgs.is_empty());
            assert_eq!(pending, cut);
        }
    }

    #[test]
    fn oversized_message_is_refused_from_its_prefix() {
        let all = stream_of(&[&[0u8; 100]]);
        // Only the prefix has arrived: already refused.
        for cut in 5..all.len() {
            let err = decode(&[&all[..cut]], 99).unwrap_err();
            assert_eq!(err, WireError::GrpcMessageTooLarge { len: 100, max: 99 });
        }
        // Split inside the prefix: refused once the prefix is whole.
        assert!(decode(&[&all[..3], &all[3..]], 99).is_err());
        assert!(decode(&[&all[..]], 100).is_ok());
    }

    #[test]
    fn compressed_flag_is_reported() {
        let (msgs, _) = decode(&[b"\x01\0\0\0\x02", b"hi"], 64).unwrap();
        assert!(msgs[0].compressed);
        assert_eq!(
            decode(&[b"\x05\0\0\0\0"], 64).unwrap_err(),
            WireError::GrpcBadFlag(5)
        );
    }
}
