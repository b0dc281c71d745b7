//! The JSON form of a poll response (`Accept: application/json`): PolarStreams' array of one
//! object per item, each with its records' bodies in `values`.
//!
//! This is the one poll path that decompresses, so it is bounded and shares the shard:
//!
//! - **Bounded output.** Items are rendered in order until the JSON would pass `bound` bytes
//!   (`--max-poll-bytes`); the first item is always sent, whatever its size. A compressed
//!   poll of 1 MiB can hold hundreds of MiB of compressible records, so the binary budget
//!   alone does not bound the JSON. The caller records positions for the items rendered only
//!   ([`Rendered::items`]): the rest are read again by the next poll.
//! - **Shared shard.** Rendering yields to the shard's other tasks between items, between
//!   records and between pieces of a long body, so the shard's other connections keep being
//!   served while a big response renders. What runs between two yields is at most one chunk's
//!   decompression, one record's UTF-8 and JSON checks, or [`PIECE`] bytes of escaping.
//! - **Every byte survives.** A record body that is one JSON value is written as it is
//!   (surrounding whitespace dropped), any other UTF-8 body as a JSON string. An item with a
//!   body that is not UTF-8 is marked `"encoding":"base64"` and then every one of its values
//!   is the base64 string ([`crate::wire::base64`]) of its body's exact bytes; `encoding=base64`
//!   in the query asks for that form for every item.

use crate::rt;
use crate::storage::chunk::{decode_payload, max_decoded_len};
use crate::storage::ChunkError;
use crate::wire::base64;
use crate::wire::poll::{parse_poll_response, PollItemHeader};
use crate::wire::record::RecordIter;

/// Bytes of one body escaped or encoded between two chances to yield (a multiple of 3, so
/// base64 pieces concatenate into the encoding of the whole).
const PIECE: usize = 48 << 10;

/// How the values of an item are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// JSON values as they are, other UTF-8 as strings; base64 for an item with a body that
    /// is not UTF-8.
    Auto,
    /// Every item in base64: byte-exact, for clients that want the stored bytes.
    Base64,
}

impl Encoding {
    /// The `encoding` query parameter: absent or empty is [`Encoding::Auto`].
    pub fn parse(v: Option<&str>) -> Option<Encoding> {
        match v {
            None | Some("") => Some(Encoding::Auto),
            Some("base64") => Some(Encoding::Base64),
            Some(_) => None,
        }
    }
}

/// Why a poll response could not be rendered as JSON: a stored chunk that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// A rendered response: the JSON array, and how many of the poll's items it holds.
#[derive(Debug)]
pub struct Rendered {
    pub json: Vec<u8>,
    pub items: usize,
}

/// Renders the first items of a binary poll response as a JSON array of at most about
/// `bound` bytes (always at least one item, if any). `max_frame` is the broker's largest
/// frame ([`crate::config::Config::max_frame_bytes`]): a chunk decompressing to more than a
/// chunk can hold under it is refused as corrupt ([`max_decoded_len`]; a poll item does not
/// carry its record count). A chunk that does not decode is an error when it is the first
/// item; after it, the response ends before it.
pub async fn render(
    body: &[u8],
    bound: usize,
    max_frame: usize,
    encoding: Encoding,
) -> Result<Rendered, RenderError> {
    let items = parse_poll_response(body)?;
    let mut out = Vec::with_capacity(bound.min(body.len().saturating_mul(2)).max(2));
    out.push(b'[');
    let mut rendered = 0;
    for item in &items {
        let start = out.len();
        let decoded = decode_payload(item.payload, max_decoded_len(None, max_frame));
        rt::yield_if_needed().await;
        let raw = match decoded {
            Ok(raw) => raw,
            // The items before a chunk that does not decode are sent; the next poll starts
            // at that chunk, and fails on it.
            Err(_) if rendered > 0 => break,
            Err(e) => return Err(e.into()),
        };
        // First pass: the records are well formed, the least room they take (whatever the
        // form, at least their trimmed bytes), and whether they are all UTF-8. Two passes
        // rather than a list of the bodies: a chunk may hold a million tiny records.
        let mut least = 0usize;
        let mut base64 = encoding == Encoding::Base64;
        for r in RecordIter::new(&raw) {
            match r {
                Ok(r) => {
                    least = least.saturating_add(r.body.trim_ascii().len());
                    base64 = base64 || std::str::from_utf8(r.body).is_err();
                }
                Err(_) if rendered > 0 => return Ok(finish(out, rendered)),
                Err(e) => return Err(e.into()),
            }
        }
        // An item that cannot fit is not rendered at all.
        if rendered > 0 && start.saturating_add(least) >= bound {
            break;
        }
        if rendered > 0 {
            out.push(b',');
        }
        push_header(&item.header, base64, &mut out);
        for (j, r) in RecordIter::new(&raw).flatten().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            push_value(r.body, base64, &mut out).await;
            rt::yield_if_needed().await;
        }
        out.extend_from_slice(b"]}");
        if rendered > 0 && out.len() >= bound {
            out.truncate(start);
            break;
        }
        rendered += 1;
    }
    Ok(finish(out, rendered))
}

fn finish(mut out: Vec<u8>, items: usize) -> Rendered {
    out.push(b']');
    Rendered { json: out, items }
}

/// An item's fields before its values (64-bit numbers as strings, as PolarStreams writes them).
fn push_header(h: &PollItemHeader, base64: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"topic\":\"");
    escape_into(h.topic.as_bytes(), out);
    out.extend_from_slice(
        format!(
            "\",\"token\":\"{}\",\"rangeIndex\":{},\"version\":{},\"startOffset\":\"{}\",",
            h.token, h.range_index, h.gen_version, h.offset
        )
        .as_bytes(),
    );
    if base64 {
        out.extend_from_slice(b"\"encoding\":\"base64\",");
    }
    out.extend_from_slice(b"\"values\":[");
}

/// Appends one record body: base64, or as it is when it is one JSON value, or as a JSON
/// string. Not base64 means the caller checked the body is UTF-8.
async fn push_value(body: &[u8], base64: bool, out: &mut Vec<u8>) {
    if !base64 && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        out.extend_from_slice(body.trim_ascii());
        return;
    }
    out.push(b'"');
    if base64 {
        for piece in body.chunks(PIECE) {
            base64::encode_into(piece, out);
            rt::yield_if_needed().await;
        }
    } else {
        for piece in body.chunks(PIECE) {
            escape_into(piece, out);
            rt::yield_if_needed().await;
        }
    }
    out.push(b'"');
}

/// Appends `s` escaped as the inside of a JSON string. Only `"`, `\` and control characters
/// are escaped, byte by byte, so UTF-8 passes through unchanged and `s` may be cut anywhere.
fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut plain = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&s[plain..i]);
        out.extend_from_slice(esc);
        plain = i + 1;
    }
    out.extend_from_slice(&s[plain..]);
}

#[cfg(test)]
#[path = "poll_json_tests.rs"]
mod tests;
