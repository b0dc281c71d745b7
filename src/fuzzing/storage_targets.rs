//! Targets for what the broker reads back from disk: a chunk (header, bounded decompression,
//! records), and recovery of a whole segment directory written from the fuzz input.

use std::path::{Path, PathBuf};

use crate::storage::chunk::{
    max_decoded_len, trim_front, verify_chunk, ChunkEncoder, ChunkHeader, HEADER_LEN,
};
use crate::storage::{
    index_file_name, log_file_name, Durability, LogConfig, PartitionLog, RecordBuf, StoredChunk,
};
use crate::wire::payload;
use crate::wire::record::RecordIter;

use super::split_control;

/// The frame limit chunks are checked against: the broker's default `--max-frame-size`.
const MAX_FRAME: usize = 4 << 20;

/// A chunk as it sits in a segment: a header that parses re-encodes to the bytes read; a
/// payload that verifies holds exactly its record count; re-encoding its records makes a
/// chunk that verifies to the same records; trimming its front keeps exactly the later ones.
pub fn chunk(data: &[u8]) {
    let Ok(Some(header)) = ChunkHeader::parse(data) else {
        return;
    };
    let mut again = [0u8; HEADER_LEN];
    header.encode(&mut again);
    assert_eq!(&again[..], &data[..HEADER_LEN]);
    let Some(payload) = data.get(HEADER_LEN..HEADER_LEN + header.length as usize) else {
        return;
    };
    if verify_chunk(&header, payload, MAX_FRAME).is_err() {
        return;
    }
    let limit = max_decoded_len(Some(header.record_count), MAX_FRAME);
    let raw = payload::decode(payload, limit).expect("verified payloads decode");
    let mut batch = RecordBuf::default();
    for r in RecordIter::new(&raw) {
        let r = r.expect("verified records decode");
        batch.push(r.timestamp_us, r.body);
    }
    assert_eq!(batch.count, header.record_count);
    assert_eq!(batch.bytes, raw);
    if let Some(end) = header.checked_end_offset() {
        // The encoder's output is a chunk that verifies to the same records.
        let mut enc = ChunkEncoder::new(1).expect("a zstd context");
        let mut out = vec![0u8; ChunkEncoder::max_encoded_len(raw.len())];
        let (h, padded) = enc
            .encode(header.start_offset, &batch, &mut out)
            .expect("records that decoded encode");
        assert_eq!(padded % 4096, 0);
        assert_eq!(
            (h.start_offset, h.record_count),
            (header.start_offset, header.record_count)
        );
        let p = &out[HEADER_LEN..HEADER_LEN + h.length as usize];
        verify_chunk(&h, p, MAX_FRAME).expect("an encoded chunk verifies");
        assert_eq!(payload::decode(p, limit).as_deref(), Ok(&raw[..]));
        // Trimming the front after the first record keeps exactly the records after it.
        if header.record_count > 1 {
            let stored = StoredChunk {
                start_offset: header.start_offset,
                record_count: header.record_count,
                payload: bytes::Bytes::copy_from_slice(payload),
            };
            let pick = data.last().copied().unwrap_or(0);
            let skip = 1 + u32::from(pick) % (header.record_count - 1);
            let from = header.start_offset + i64::from(skip);
            let trimmed = trim_front(&stored, from, 1, MAX_FRAME).expect("a trim inside the chunk");
            assert_eq!(trimmed.start_offset, from);
            assert_eq!(trimmed.end_offset(), end);
            let rest = payload::decode(&trimmed.payload, limit).expect("a trimmed chunk decodes");
            assert!(raw.ends_with(&rest));
        }
    }
}

/// One file of a segment directory built from fuzz input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirFile {
    Log {
        base: i64,
        bytes: Vec<u8>,
    },
    Index {
        base: i64,
        bytes: Vec<u8>,
    },
    /// The clean-shutdown marker.
    Clean {
        bytes: Vec<u8>,
    },
}

/// Most files one input makes.
const MAX_FILES: usize = 8;

impl DirFile {
    fn name(&self) -> String {
        match self {
            DirFile::Log { base, .. } => log_file_name(*base),
            DirFile::Index { base, .. } => index_file_name(*base),
            DirFile::Clean { .. } => "clean".to_string(),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            DirFile::Log { bytes, .. }
            | DirFile::Index { bytes, .. }
            | DirFile::Clean { bytes } => bytes,
        }
    }

    /// Appends the file in the input format [`decode_dir`] reads:
    /// `kind u8 (0 log, 1 index, 2 clean) | base i64 | length u32 | bytes`, big-endian.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        let (kind, base) = match self {
            DirFile::Log { base, .. } => (0u8, *base),
            DirFile::Index { base, .. } => (1, *base),
            DirFile::Clean { .. } => (2, 0),
        };
        dst.push(kind);
        dst.extend_from_slice(&base.to_be_bytes());
        dst.extend_from_slice(&(self.bytes().len() as u32).to_be_bytes());
        dst.extend_from_slice(self.bytes());
    }
}

/// The files an input describes (see [`DirFile::encode`]); a length past the end takes what
/// is left, an unknown kind is a log, and at most [`MAX_FILES`] are read.
pub fn decode_dir(mut data: &[u8]) -> Vec<DirFile> {
    let mut files = Vec::new();
    while data.len() >= 13 && files.len() < MAX_FILES {
        let kind = data[0];
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[1..9]);
        let base = i64::from_be_bytes(b);
        let len = u32::from_be_bytes([data[9], data[10], data[11], data[12]]) as usize;
        let rest = &data[13..];
        let (bytes, next) = rest.split_at(len.min(rest.len()));
        let bytes = bytes.to_vec();
        files.push(match kind % 3 {
            1 => DirFile::Index { base, bytes },
            2 => DirFile::Clean { bytes },
            _ => DirFile::Log { base, bytes },
        });
        data = next;
    }
    files
}

/// Recovery of a segment directory holding the files the input describes. Whatever the files
/// hold, opening must not panic; when it succeeds: every chunk it serves lies in order within
/// the log's offsets, every chunk of the last segment decodes to exactly its record count
/// (unless a clean marker told recovery to trust it), an append lands at the recovered end,
/// and recovering again (after a crash-like close) serves the same chunks, less any whose
/// payload does not decode.
pub fn recovery(data: &[u8]) {
    let (_, rest) = split_control(data);
    let files = decode_dir(rest);
    let dir = ScratchDir::new();
    for f in &files {
        // Two entries may name one file: the later one wins, as if rewritten.
        if std::fs::write(dir.path().join(f.name()), f.bytes()).is_err() {
            return;
        }
    }
    let trusted_tail = files.iter().any(|f| matches!(f, DirFile::Clean { .. }));
    let path = dir.path().to_path_buf();
    crate::rt::block_on_reused(check_recovery(path, trusted_tail));
}

fn fuzz_log_config() -> LogConfig {
    LogConfig {
        segment_size: 64 << 10,
        // Writes need not reach the platter for this: recovery reads what the files hold.
        durability: Durability::Write,
        zstd_level: 1,
        retention_age: None,
        retention_bytes: None,
        tail_bytes: 0,
        reclaim_step: LogConfig::RECLAIM_STEP,
    }
}

async fn check_recovery(dir: PathBuf, trusted_tail: bool) {
    let Ok((log, report)) = PartitionLog::open(&dir, fuzz_log_config()).await else {
        return;
    };
    assert_eq!(log.next_offset(), report.next_offset);
    let last_base = log.state.borrow().segments.back().map(|s| s.base);
    let before = served_chunks(&log).await;
    for c in &before {
        let in_last = last_base.is_some_and(|b| c.start_offset >= b);
        let limit = max_decoded_len(Some(c.record_count), MAX_FRAME);
        match payload::decode(&c.payload, limit) {
            Ok(raw) => {
                let n = RecordIter::new(&raw).take_while(Result::is_ok).count();
                if in_last && !trusted_tail {
                    assert_eq!(
                        n as u64,
                        u64::from(c.record_count),
                        "chunk at {}",
                        c.start_offset
                    );
                    assert!(RecordIter::new(&raw).all(|r| r.is_ok()));
                }
            }
            // A closed segment is checked by head CRC only (docs/storage.md): a bad payload
            // there is found by the reader's checksum, not by recovery.
            Err(e) => assert!(
                !in_last || trusted_tail,
                "recovery kept an undecodable chunk at {} of the last segment: {e}",
                c.start_offset
            ),
        }
    }
    let mut batch = RecordBuf::default();
    batch.push(1, b"after recovery");
    let mut after = before;
    if let Ok(info) = log.append(&batch).await {
        assert_eq!(info.start_offset, report.next_offset);
        assert_eq!(log.next_offset(), report.next_offset + 1);
        after = served_chunks(&log).await;
        let last = after.last().expect("the chunk just appended");
        assert_eq!(last.start_offset, info.start_offset);
    }
    if log.close().await.is_err() {
        return;
    }
    let (again, _) = PartitionLog::open(&dir, fuzz_log_config())
        .await
        .expect("a directory recovery left reopens");
    let served = served_chunks(&again).await;
    // The second recovery (after a crash-like close, so without a clean marker) may check more
    // than the first did: a chunk whose payload does not decode, served after a clean marker
    // told the first to trust the last segment, may now be a hole. Nothing else changes.
    for c in &served {
        assert!(
            after.contains(c),
            "a second recovery served a new chunk at {}",
            c.start_offset
        );
    }
    for c in after.iter().filter(|c| decodes(c)) {
        assert!(
            served.contains(c),
            "a second recovery lost the good chunk at {}",
            c.start_offset
        );
    }
    let _ = again.close().await;
}

/// Whether a chunk's payload decompresses to exactly its record count of records.
fn decodes(c: &StoredChunk) -> bool {
    let limit = max_decoded_len(Some(c.record_count), MAX_FRAME);
    payload::decode(&c.payload, limit).is_ok_and(|raw| {
        let mut n = 0u64;
        RecordIter::new(&raw).all(|r| {
            n += 1;
            r.is_ok()
        }) && n == u64::from(c.record_count)
    })
}

/// Every chunk the log serves, from its start, checked to be in order and within its offsets.
async fn served_chunks(log: &PartitionLog) -> Vec<StoredChunk> {
    let mut out: Vec<StoredChunk> = Vec::new();
    let mut from = log.start_offset();
    loop {
        let chunks = log
            .read(from, 4 << 20)
            .await
            .expect("reads of a recovered log");
        let Some(last) = chunks.last() else {
            return out;
        };
        let next = last.end_offset();
        for c in chunks {
            assert!(c.record_count > 0);
            assert!(
                c.end_offset() <= log.next_offset(),
                "a chunk past the log's end"
            );
            if let Some(prev) = out.last() {
                assert!(c.start_offset >= prev.end_offset(), "chunks out of order");
            }
            out.push(c);
        }
        assert!(next > from, "reads do not advance");
        from = next;
    }
}

/// A directory of this thread's own under the system's temporary directory, emptied when
/// made and removed when dropped. On a real file system (O_DIRECT needs one; not tmpfs).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> ScratchDir {
        let name = format!(
            "shardlog-fuzz-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a scratch directory");
        ScratchDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
