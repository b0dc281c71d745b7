//! The timestamps of a chunk's records, read while decompressing it as a stream: what the time
//! index needs (rebuilding it, looking a time up) without holding the chunk's records, so a
//! damaged or crafted payload costs the decompressor's window, never the bytes it expands to.

use std::io::Read;

use super::ChunkError;

/// Bytes skipped at a time over a record's body.
const SKIP: usize = 16 << 10;

/// Calls `f(i, timestamp μs)` for records `i = 0, 1, …` of `payload` (one zstd frame of
/// `timestamp i64 | length u32 | body` records) until it returns `true` or `record_count`
/// records were seen. Refuses ([`ChunkError::TooLarge`]) to read more than `limit` bytes of
/// records; a payload that ends early, or is not zstd, is an error.
pub fn scan_timestamps(
    payload: &[u8],
    record_count: u32,
    limit: usize,
    f: &mut dyn FnMut(u32, i64) -> bool,
) -> Result<(), ChunkError> {
    let zstd = |e: std::io::Error| ChunkError::Zstd(e.to_string());
    let mut dec = zstd::stream::read::Decoder::with_buffer(payload)
        .map_err(zstd)?
        .single_frame();
    let mut read = 0usize;
    let mut scratch = [0u8; SKIP];
    for i in 0..record_count {
        let mut head = [0u8; 12];
        read = read.saturating_add(head.len());
        if read > limit {
            return Err(ChunkError::TooLarge { limit });
        }
        dec.read_exact(&mut head)
            .map_err(|e| ChunkError::BadRecord(format!("record {i} of {record_count}: {e}")))?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&head[..8]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[8..]);
        if f(i, i64::from_be_bytes(ts)) {
            return Ok(());
        }
        let mut body = u32::from_be_bytes(len) as usize;
        read = read.saturating_add(body);
        if read > limit {
            return Err(ChunkError::TooLarge { limit });
        }
        while body > 0 {
            let n = body.min(SKIP);
            dec.read_exact(&mut scratch[..n])
                .map_err(|e| ChunkError::BadRecord(format!("record {i} of {record_count}: {e}")))?;
            body -= n;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::chunk::{ChunkEncoder, HEADER_LEN};
    use crate::storage::RecordBuf;

    fn payload(records: &[(i64, usize)]) -> Vec<u8> {
        let mut b = RecordBuf::default();
        for &(ts, len) in records {
            b.push(ts, &vec![7u8; len]);
        }
        let mut out = vec![0u8; ChunkEncoder::max_encoded_len(b.bytes.len())];
        let (h, _) = ChunkEncoder::new(1)
            .unwrap()
            .encode(0, &b, &mut out)
            .unwrap();
        out[HEADER_LEN..HEADER_LEN + h.length as usize].to_vec()
    }

    #[test]
    fn reads_every_timestamp_and_stops_when_asked() {
        let p = payload(&[(5, 0), (3, 40_000), (9, 10)]);
        let mut seen = Vec::new();
        scan_timestamps(&p, 3, 1 << 20, &mut |i, t| {
            seen.push((i, t));
            false
        })
        .unwrap();
        assert_eq!(seen, [(0, 5), (1, 3), (2, 9)]);
        let mut first = None;
        scan_timestamps(&p, 3, 1 << 20, &mut |i, t| {
            first = Some(i);
            t > 4
        })
        .unwrap();
        assert_eq!(first, Some(0));
    }

    #[test]
    fn refuses_what_is_too_large_short_or_not_zstd() {
        let p = payload(&[(5, 0), (3, 40_000), (9, 10)]);
        let all = &mut |_: u32, _: i64| false;
        assert!(matches!(
            scan_timestamps(&p, 3, 1000, all),
            Err(ChunkError::TooLarge { limit: 1000 })
        ));
        assert!(
            scan_timestamps(&p, 4, 1 << 20, all).is_err(),
            "one record too many"
        );
        assert!(scan_timestamps(&p[..p.len() / 2], 3, 1 << 20, all).is_err());
        assert!(scan_timestamps(b"not zstd at all", 1, 1 << 20, all).is_err());
    }
}
