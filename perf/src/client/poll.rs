//! Poll responses: the items' zstd payloads decompressed with one reused context, and their
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

    /// The decompressed records of one payload (a zstd frame with its content size).
    pub fn decode(&mut self, payload: &[u8]) -> Result<&[u8], String> {
        let size = match zstd::zstd_safe::get_frame_content_size(payload) {
            Ok(Some(n)) => n as usize,
            Ok(None) => {
                self.out = zstd::stream::decode_all(payload).map_err(|e| e.to_string())?;
                return Ok(&self.out);
            }
            Err(_) => return Err("the payload is not a zstd frame".into()),
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

/// The uncompressed size a payload's zstd frame header announces (0 if absent).
pub fn content_size(payload: &[u8]) -> u64 {
    zstd::zstd_safe::get_frame_content_size(payload)
        .ok()
        .flatten()
        .unwrap_or(0)
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
