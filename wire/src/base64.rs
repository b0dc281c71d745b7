//! Base64 (RFC 4648 §4: the standard alphabet `A–Z a–z 0–9 + /`, padded with `=`), the one
//! encoding a record body that is not UTF-8 takes in JSON (a JSON poll item marked
//! `"encoding": "base64"`, see `docs/protocol.md`). Clients that print or send such bodies as
//! text use the same, so one body reads the same everywhere.
//!
//! [`encode_into`] appends, so a long body can be encoded piece by piece (any piece whose
//! length is a multiple of 3 followed by the rest gives the same text as one call).
//! [`decode`] is strict: padding required, no whitespace, no other alphabet, and the unused
//! bits of the last symbol must be zero, so every body has exactly one encoding.

use super::WireError;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The length of the encoding of `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Appends the encoding of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(bytes.len()));
    let mut groups = bytes.chunks_exact(3);
    for g in &mut groups {
        let n = (u32::from(g[0]) << 16) | (u32::from(g[1]) << 8) | u32::from(g[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *groups.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// The encoding of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    encode_into(bytes, &mut out);
    // The alphabet is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

fn symbol(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// The bytes `text` encodes; [`WireError::Malformed`] unless it is canonical base64.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, WireError> {
    let bad = |why: &str| WireError::Malformed(format!("base64: {why}"));
    if !text.len().is_multiple_of(4) {
        return Err(bad("the length is not a multiple of 4"));
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let last = text.len() / 4;
    for (i, q) in text.chunks_exact(4).enumerate() {
        let pad = match (q[2], q[3]) {
            (b'=', b'=') => 2,
            (_, b'=') => 1,
            _ => 0,
        };
        if pad > 0 && i + 1 != last {
            return Err(bad("padding before the end"));
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | symbol(c).ok_or_else(|| bad("a byte outside the alphabet"))?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return Err(bad("nonzero bits after the last byte"));
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_vectors() {
        for (raw, text) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(raw.as_bytes()), text);
            assert_eq!(decode(text.as_bytes()).unwrap(), raw.as_bytes());
        }
        assert_eq!(encode(&[0xff, 0xfe, 0x00, 0x80]), "//4AgA==");
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn every_byte_round_trips_and_pieces_concatenate() {
        let all: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for len in 0..40 {
            assert_eq!(decode(encode(&all[..len]).as_bytes()).unwrap(), &all[..len]);
        }
        let mut pieces = Vec::new();
        for p in all.chunks(3 * 7) {
            encode_into(p, &mut pieces);
        }
        assert_eq!(pieces, encode(&all).into_bytes());
        assert_eq!(encoded_len(all.len()), pieces.len());
    }

    #[test]
    fn only_canonical_text_decodes() {
        for bad in [
            &b"Zg="[..],
            b"Zg",
            b"Zg==Zm8=",
            b"Z===",
            b"Zh==",
            b"Zm9=",
            b"Zm 9",
            b"Zm9v\n",
            b"Zm-_",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
