//! Poll responses: the items' zstd payloads (one or more frames each) decompressed with one reused context, and their
//! records walked with the broker's own codecs (`shardlog_wire::poll`, `shardlog_wire::record`).

use shardlog_wire::poll::{parse_poll_response, PollItemHeader};
use shardlog_wire::record::RecordIter;

/// Decompresses poll item payloads with one reused zstd context and output buffer.
pub struct Decoder {
    dctx: zstd::bulk::Decompressor<'static>,
    out: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            dctx: zstd::bulk::Decompressor::new().expect("a zstd context"),
            out: Vec::new(),
        }
    }

    /// The decompressed records of one payload: one or more zstd frames (a chunk holding
    /// frames producers compressed is their concatenation), sized by what the frames declare.
    pub fn decode(&mut self, payload: &[u8]) -> Result<&[u8], String> {
        let size = match shardlog_wire::payload::content_size(payload) {
            Some(n) => n as usize,
            None => {
                self.out = zstd::stream::decode_all(payload).map_err(|e| format!("zstd: {e}"))?;
                return Ok(&self.out);
            }
        };
        self.out.clear();
        self.out.reserve(size);
        self.dctx
            .decompress_to_buffer(payload, &mut self.out)
            .map_err(|e| format!("zstd: {e}"))?;
        Ok(&self.out)
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// The uncompressed size a payload's zstd frames announce, summed (0 if one does not).
pub fn content_size(payload: &[u8]) -> u64 {
    shardlog_wire::payload::content_size(payload).unwrap_or(0)
}

/// Calls `record(item header, offset, timestamp μs, body)` for every record of a poll
/// response, decoding the payloads. Returns the number of records.
pub fn for_each_record(
    decoder: &mut Decoder,
    body: &[u8],
    mut record: impl FnMut(&PollItemHeader<'_>, i64, i64, &[u8]),
) -> Result<u64, String> {
    let items = parse_poll_response(body).map_err(|e| format!("bad poll response: {e}"))?;
    let mut n = 0u64;
    for it in &items {
        let raw = decoder.decode(it.payload)?;
        for (i, r) in RecordIter::new(raw).enumerate() {
            let r = r.map_err(|e| format!("bad record in a poll item: {e}"))?;
            record(
                &it.header,
                it.header.offset + i as i64,
                r.timestamp_us,
                r.body,
            );
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(raw: &[u8]) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        c.include_checksum(true).unwrap();
        c.compress(raw).unwrap()
    }

    #[test]
    fn decodes_payloads_of_several_frames() {
        let (a, b) = (vec![1u8; 3000], vec![2u8; 9000]);
        let mut p = frame(&a);
        p.extend(frame(&b));
        assert_eq!(content_size(&p), 12_000);
        let mut d = Decoder::new();
        assert_eq!(d.decode(&p).unwrap(), [a, b].concat());
        assert_eq!(d.decode(&frame(b"one")).unwrap(), b"one");
    }
}
