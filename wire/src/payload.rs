//! Chunk payloads as they travel in poll responses: one or more zstd frames, each with a
//! content checksum, back to back, holding records (`record.rs`). The broker compresses a
//! chunk's records as one frame; a chunk that also holds frames a producer compressed itself
//! (PRODUCE flag `0x08`, [`crate::produce_compressed`]) is their concatenation, in offset order.
//! Decoding is bounded: a small payload crafted to expand enormously costs at most the caller's
//! limit, never what the frames ask for.

use zstd::zstd_safe::{self, DCtx, InBuffer, OutBuffer};

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not zstd frames with content checksums: {0}")]
    BadFrame(&'static str),
    #[error("zstd: {0}")]
    Zstd(String),
    #[error("payload decompresses to more than {limit} bytes")]
    TooLarge { limit: usize },
}

fn zstd_err(code: usize) -> PayloadError {
    PayloadError::Zstd(zstd_safe::get_error_name(code).to_string())
}

const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Walks the frames of `payload`, checking each starts with the zstd magic number, has a
/// content checksum and is whole. Returns the sum of the sizes the frames declare, or `None`
/// when one of them does not declare its size.
fn frames(payload: &[u8]) -> Result<Option<u64>, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::BadFrame("no zstd magic number"));
    }
    let mut rest = payload;
    let mut declared = Some(0u64);
    while !rest.is_empty() {
        // Frame header descriptor: byte 4, bit 2 = content checksum flag.
        if rest.len() < 6 || rest[..4] != MAGIC {
            return Err(PayloadError::BadFrame("no zstd magic number"));
        }
        if rest[4] & 0x04 == 0 {
            return Err(PayloadError::BadFrame("no content checksum"));
        }
        let n = zstd_safe::find_frame_compressed_size(rest).map_err(zstd_err)?;
        let size = match zstd_safe::get_frame_content_size(&rest[..n]) {
            Ok(size) => size,
            Err(_) => return Err(PayloadError::BadFrame("unreadable frame header")),
        };
        declared = match (declared, size) {
            (Some(sum), Some(size)) => Some(sum.saturating_add(size)),
            _ => None,
        };
        rest = &rest[n..];
    }
    Ok(declared)
}

/// The sum of the content sizes `payload`'s frames declare: the size of its records. `None`
/// when it is not well-formed frames or one frame does not declare its size.
pub fn content_size(payload: &[u8]) -> Option<u64> {
    frames(payload).ok().flatten()
}

/// Checks that `payload` is whole zstd frames with content checksums, decompresses them
/// (verifying every checksum) and returns the records, refusing with [`PayloadError::TooLarge`]
/// to produce more than `limit` bytes (a bound the caller knows: the broker's is
/// `storage::chunk::max_decoded_len`). Memory grows with the output actually produced (or is
/// the frames' declared content size, when that is within the limit), so a small payload
/// crafted to expand enormously costs at most `limit` bytes.
pub fn decode(payload: &[u8], limit: usize) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::new();
    decode_into(payload, limit, &mut out)?;
    Ok(out)
}

/// [`decode`] into `out` (cleared first), so a caller decoding many payloads reuses one buffer.
pub fn decode_into(payload: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), PayloadError> {
    out.clear();
    match frames(payload)? {
        Some(n) if n > limit as u64 => Err(PayloadError::TooLarge { limit }),
        Some(n) => {
            // Declared and within the limit: one shot into exactly that much (zstd fails if
            // a frame produces more than it declared, and decodes concatenated frames).
            out.reserve_exact(n as usize);
            zstd_safe::decompress(out, payload).map_err(zstd_err)?;
            if out.len() as u64 != n {
                return Err(PayloadError::BadFrame(
                    "content size does not match the header",
                ));
            }
            Ok(())
        }
        None => decode_streaming(payload, limit, out),
    }
}

/// Decompresses frames of which one at least does not declare its size, stopping once the
/// output passes `limit`. The output buffer grows (doubling) up to `limit + 1` bytes and no
/// further.
fn decode_streaming(payload: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), PayloadError> {
    let mut dctx = DCtx::try_create().ok_or(PayloadError::Zstd("out of memory".into()))?;
    let cap = limit.saturating_add(1);
    out.reserve_exact(payload.len().saturating_mul(4).max(4096).min(cap));
    let mut input = InBuffer::around(payload);
    loop {
        if out.len() == out.capacity() {
            let grown = out.capacity().saturating_mul(2).min(cap);
            out.reserve_exact(grown - out.len());
        }
        let pos = out.len();
        let before = (input.pos(), pos);
        let hint = {
            let mut ob = OutBuffer::around_pos(out, pos);
            dctx.decompress_stream(&mut ob, &mut input)
                .map_err(zstd_err)?
        };
        if out.len() > limit {
            return Err(PayloadError::TooLarge { limit });
        }
        if hint == 0 && input.pos() == payload.len() {
            // The last frame is complete and every checksum verified.
            return Ok(());
        }
        if (input.pos(), out.len()) == before && out.len() < out.capacity() {
            return Err(PayloadError::BadFrame("truncated frame"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(raw: &[u8], checksum: bool) -> Vec<u8> {
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
        enc.include_checksum(checksum).unwrap();
        std::io::Write::write_all(&mut enc, raw).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn decodes_within_the_limit_and_refuses_past_it() {
        let raw = vec![7u8; 100_000];
        let p = frame(&raw, true);
        assert_eq!(decode(&p, 100_000).unwrap(), raw);
        assert_eq!(
            decode(&p, 99_999),
            Err(PayloadError::TooLarge { limit: 99_999 })
        );
    }

    #[test]
    fn refuses_what_is_not_checksummed_frames() {
        assert!(matches!(
            decode(b"nope", 10),
            Err(PayloadError::BadFrame(_))
        ));
        assert!(matches!(
            decode(&frame(b"abc", false), 10),
            Err(PayloadError::BadFrame(_))
        ));
        let mut two = frame(b"abc", true);
        two.extend(frame(b"def", false));
        assert!(matches!(decode(&two, 10), Err(PayloadError::BadFrame(_))));
        let mut junk = frame(b"abc", true);
        junk.extend(b"junk!!");
        assert!(matches!(decode(&junk, 10), Err(PayloadError::BadFrame(_))));
        let p = frame(&[1u8; 5000], true);
        assert!(decode(&p[..p.len() - 3], 10_000).is_err());
    }

    /// A frame that does not declare its size (a streaming encoder's, without a pledge).
    fn unsized_frame(raw: &[u8]) -> Vec<u8> {
        frame(raw, true)
    }

    /// A frame that declares its size, as the broker and producers write them.
    fn sized_frame(raw: &[u8]) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        c.include_checksum(true).unwrap();
        c.compress(raw).unwrap()
    }

    #[test]
    fn concatenated_frames_decode_in_order_within_the_limit() {
        let (a, b, c) = (vec![1u8; 3000], vec![2u8; 5000], vec![3u8; 7]);
        let whole: Vec<u8> = [&a[..], &b[..], &c[..]].concat();
        // Every frame sized, and one not (the streaming path).
        for unsized_middle in [false, true] {
            let mut p = sized_frame(&a);
            p.extend(if unsized_middle {
                unsized_frame(&b)
            } else {
                sized_frame(&b)
            });
            p.extend(sized_frame(&c));
            assert_eq!(decode(&p, whole.len()).unwrap(), whole, "{unsized_middle}");
            assert_eq!(
                decode(&p, whole.len() - 1),
                Err(PayloadError::TooLarge {
                    limit: whole.len() - 1
                })
            );
            assert_eq!(
                content_size(&p),
                (!unsized_middle).then_some(whole.len() as u64)
            );
            // Cut anywhere, or one checksum byte changed: refused, never a panic; a cut
            // between frames leaves whole frames, the first records.
            for cut in 1..p.len() {
                if let Ok(v) = decode(&p[..cut], 1 << 20) {
                    assert!(whole.starts_with(&v) && v.len() >= a.len(), "cut at {cut}");
                }
            }
            let mut bad = p.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(decode(&bad, 1 << 20).is_err());
        }
    }
}
