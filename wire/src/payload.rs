//! Chunk payloads as they travel in poll responses: exactly one zstd frame with a content
//! checksum, holding records (`record.rs`). Decoding is bounded: a small payload crafted to
//! expand enormously costs at most the caller's limit, never what the frame asks for.

use zstd::zstd_safe::{self, DCtx, InBuffer, OutBuffer};

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not one zstd frame with a content checksum: {0}")]
    BadFrame(&'static str),
    #[error("zstd: {0}")]
    Zstd(String),
    #[error("payload decompresses to more than {limit} bytes")]
    TooLarge { limit: usize },
}

fn zstd_err(code: usize) -> PayloadError {
    PayloadError::Zstd(zstd_safe::get_error_name(code).to_string())
}

/// Checks that `payload` is exactly one zstd frame with a content checksum, decompresses it
/// (verifying the checksum) and returns the records, refusing with [`PayloadError::TooLarge`]
/// to produce more than `limit` bytes (a bound the caller knows: the broker's is `storage::chunk::max_decoded_len`). Memory grows with the output
/// actually produced (or is the frame's declared content size, when that is within the
/// limit), so a small payload crafted to expand enormously costs at most `limit` bytes.
pub fn decode(payload: &[u8], limit: usize) -> Result<Vec<u8>, PayloadError> {
    // Frame header descriptor: byte 4, bit 2 = content checksum flag.
    if payload.len() < 6 || payload[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(PayloadError::BadFrame("no zstd magic number"));
    }
    if payload[4] & 0x04 == 0 {
        return Err(PayloadError::BadFrame("no content checksum"));
    }
    match zstd_safe::find_frame_compressed_size(payload) {
        Ok(n) if n == payload.len() => {}
        Ok(_) => return Err(PayloadError::BadFrame("bytes after the frame")),
        Err(e) => return Err(zstd_err(e)),
    }
    match zstd_safe::get_frame_content_size(payload) {
        Ok(Some(n)) if n > limit as u64 => Err(PayloadError::TooLarge { limit }),
        Ok(Some(n)) => {
            // Declared and within the limit: one shot into exactly that much (zstd fails if
            // the frame produces more than it declared).
            let mut out = Vec::with_capacity(n as usize);
            zstd_safe::decompress(&mut out, payload).map_err(zstd_err)?;
            if out.len() as u64 != n {
                return Err(PayloadError::BadFrame(
                    "content size does not match the header",
                ));
            }
            Ok(out)
        }
        Ok(None) => decode_streaming(payload, limit),
        Err(_) => Err(PayloadError::BadFrame("unreadable frame header")),
    }
}

/// Decompresses a frame that does not declare its size, stopping once it passes `limit`. The
/// output buffer grows (doubling) up to `limit + 1` bytes and no further.
fn decode_streaming(payload: &[u8], limit: usize) -> Result<Vec<u8>, PayloadError> {
    let mut dctx = DCtx::try_create().ok_or(PayloadError::Zstd("out of memory".into()))?;
    let cap = limit.saturating_add(1);
    let mut out: Vec<u8> = Vec::with_capacity(payload.len().saturating_mul(4).max(4096).min(cap));
    let mut input = InBuffer::around(payload);
    loop {
        if out.len() == out.capacity() {
            let grown = out.capacity().saturating_mul(2).min(cap);
            out.reserve_exact(grown - out.len());
        }
        let pos = out.len();
        let before = (input.pos(), pos);
        let hint = {
            let mut ob = OutBuffer::around_pos(&mut out, pos);
            dctx.decompress_stream(&mut ob, &mut input)
                .map_err(zstd_err)?
        };
        if out.len() > limit {
            return Err(PayloadError::TooLarge { limit });
        }
        if hint == 0 {
            // The frame is complete and its checksum verified.
            return Ok(out);
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
    fn refuses_what_is_not_one_checksummed_frame() {
        assert!(matches!(
            decode(b"nope", 10),
            Err(PayloadError::BadFrame(_))
        ));
        assert!(matches!(
            decode(&frame(b"abc", false), 10),
            Err(PayloadError::BadFrame(_))
        ));
        let mut two = frame(b"abc", true);
        two.extend(frame(b"def", true));
        assert!(matches!(decode(&two, 10), Err(PayloadError::BadFrame(_))));
        let p = frame(&[1u8; 5000], true);
        assert!(decode(&p[..p.len() - 3], 10_000).is_err());
    }
}
