//! Recovery of one segment at open: walk its chunks, find where the good ones end, skip
//! corrupt ones, and cut a torn tail. The rules are in the module docs of [`super`].

use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;

use super::chunk::{
    verify_chunk, ChunkError, ChunkHeader, ALIGNMENT, FLAG_ALIGNMENT, HEADER_LEN, MAX_FRAME_LIMIT,
};
use super::clean::CleanEnd;
use super::fs::{DmaBuf, FileSystem, SegmentFile};
use super::index::IndexFile;
use super::index::{parse_valid_prefix, IndexEntry};
use super::segment::{
    check_alignment, index_file_name, log_file_name, parse_log_file_name, Segment,
};
use super::time_index::TimeIndex;
use super::time_recovery::recover_time_index;
use super::StorageError;

/// Bytes read at a time while walking a segment.
const READ_AHEAD: u64 = 1 << 20;
/// Index entries tried from the back before the index is given up and rebuilt from 0.
const INDEX_TRIES: usize = 16;

/// What a walk of one segment found.
#[derive(Debug, Default)]
pub(crate) struct SegmentScan {
    pub entries: Vec<IndexEntry>,
    /// The time index of the chunks walked, when every payload was verified (which gives each
    /// chunk's newest timestamp).
    pub time: Option<TimeIndex>,
    /// End of the last good chunk, padding included.
    pub end_pos: u64,
    pub next_offset: i64,
    pub file_len: u64,
    pub chunks_verified: u64,
    pub corrupt_chunks: u64,
    /// The file's bytes past `end_pos` hold no good chunk and are not all zeros (a torn tail,
    /// stale chunks, garbage): in the last segment they are cut.
    pub tail_garbage: bool,
    /// Chunk headers (head CRC and flags valid) past `end_pos`: stale or damaged chunks that
    /// do not continue the log.
    pub tail_chunks: u64,
    /// The last good chunk is whole but its padding was cut: the file ends inside it.
    pub padding_cut: bool,
    /// The stored index did not describe the segment.
    pub index_stale: bool,
    /// Everything past `end_pos` is zeros: preallocated space not written yet (not a tear).
    pub preallocated_end: bool,
}

/// Reads a file through a window of up to [`READ_AHEAD`] bytes.
pub(super) struct Window<'a, T> {
    file: &'a T,
    path: &'a Path,
    file_len: u64,
    start: u64,
    data: Bytes,
}

impl<'a, T: SegmentFile> Window<'a, T> {
    pub(super) fn new(file: &'a T, path: &'a Path, file_len: u64) -> Window<'a, T> {
        Window {
            file,
            path,
            file_len,
            start: 0,
            data: Bytes::new(),
        }
    }

    /// `len` bytes at `pos`, or `None` if the file ends before.
    pub(super) async fn get(
        &mut self,
        pos: u64,
        len: usize,
    ) -> Result<Option<Bytes>, StorageError> {
        let end = pos + len as u64;
        if end > self.file_len {
            return Ok(None);
        }
        if pos < self.start || end > self.start + self.data.len() as u64 {
            let at = pos - pos % ALIGNMENT;
            let want = READ_AHEAD.max(end - at).min(self.file_len - at);
            self.data = self
                .file
                .read_at(at, want as usize)
                .await
                .map_err(StorageError::io("reading", self.path))?;
            self.start = at;
            if end > self.start + self.data.len() as u64 {
                return Ok(None);
            }
        }
        let rel = (pos - self.start) as usize;
        Ok(Some(self.data.slice(rel..rel + len)))
    }
}

/// What recovery found when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Chunks whose header (and, in the last segment, payload) was checked.
    pub chunks_verified: u64,
    /// Bytes cut from the end of the last segment: everything after its last good chunk that
    /// was not zeros (an incomplete last write, stale or damaged chunks).
    pub torn_bytes_cut: u64,
    /// Chunk headers (head CRC valid) among the bytes cut: chunks that did not continue the log.
    pub chunks_cut: u64,
    /// Bad chunks followed by good ones (or bad ends of closed segments): never served.
    pub corrupt_chunks: u64,
    /// Segments whose index file was missing or wrong and was rewritten.
    pub index_rebuilt: u64,
    /// Segments whose time index file was missing, short or wrong and was rebuilt.
    pub time_index_rebuilt: u64,
    /// The log had been closed gracefully (its marker matched): the last segment was checked
    /// like a sealed one, without decompressing it.
    pub clean_shutdown: bool,
    pub next_offset: i64,
}

/// Why recovery does not accept a chunk (reported in its warning).
#[derive(Debug, thiserror::Error)]
pub(super) enum Rejected {
    #[error("file ends inside the header")]
    HeaderCut,
    #[error("{0}")]
    Header(ChunkError),
    #[error("flags {0:#04x}")]
    Flags(u8),
    #[error("a zeroed header")]
    Zeroed,
    #[error("unexpected start offset {0}")]
    Offset(i64),
    #[error("{1} records from offset {0} end past the largest offset")]
    OffsetOverflow(i64, u32),
    #[error("no records")]
    Empty,
    #[error("payload of {0} bytes runs past the end of the file")]
    PayloadPastEnd(u32),
    #[error("file ends inside the payload")]
    PayloadCut,
    #[error("{0}")]
    Payload(ChunkError),
}

/// A chunk's header and, when its payload was verified, its newest record timestamp; or why
/// the chunk is not accepted.
pub(super) type Verdict = Result<(ChunkHeader, Option<i64>), Rejected>;

/// Checks the chunk at `pos`: head CRC, flags, a start offset accepted by `offset_ok`, at least
/// one record, a payload inside the file and, if `verify`, a payload that decompresses with a
/// valid checksum to exactly its records.
pub(super) async fn check_at<T: SegmentFile>(
    w: &mut Window<'_, T>,
    pos: u64,
    offset_ok: &dyn Fn(i64) -> bool,
    verify: bool,
) -> Result<Verdict, StorageError> {
    let Some(hb) = w.get(pos, HEADER_LEN).await? else {
        return Ok(Err(Rejected::HeaderCut));
    };
    let h = match ChunkHeader::parse(&hb) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(Err(Rejected::HeaderCut)),
        Err(_) if hb.iter().all(|&b| b == 0) => return Ok(Err(Rejected::Zeroed)),
        Err(e) => return Ok(Err(Rejected::Header(e))),
    };
    if h.flags != 0 {
        return Ok(Err(Rejected::Flags(h.flags)));
    }
    if !offset_ok(h.start_offset) {
        return Ok(Err(Rejected::Offset(h.start_offset)));
    }
    if h.record_count == 0 {
        return Ok(Err(Rejected::Empty));
    }
    if h.checked_end_offset().is_none() {
        return Ok(Err(Rejected::OffsetOverflow(
            h.start_offset,
            h.record_count,
        )));
    }
    if pos + h.unpadded_len() > w.file_len {
        return Ok(Err(Rejected::PayloadPastEnd(h.length)));
    }
    if verify {
        let Some(payload) = w.get(pos + HEADER_LEN as u64, h.length as usize).await? else {
            return Ok(Err(Rejected::PayloadCut));
        };
        // The bound is that of the largest frame any configuration accepts, not the current
        // one: a log written with larger frames than the broker now accepts must not lose its
        // tail to a restart with smaller limits.
        return Ok(match verify_chunk(&h, &payload, MAX_FRAME_LIMIT) {
            Ok(newest) => Ok((h, Some(newest))),
            Err(e) => Err(Rejected::Payload(e)),
        });
    }
    Ok(Ok((h, None)))
}

/// Walks the segment `file` whose first offset is `base`. Sealed segments (`full_verify`
/// false) trust the longest plausible prefix of `index` up to an entry whose header checks,
/// and head-CRC-walk from there; the last segment is walked from 0 and every payload verified.
pub(crate) async fn scan_segment<T: SegmentFile>(
    file: &T,
    path: &Path,
    base: i64,
    index: Option<&[u8]>,
    full_verify: bool,
) -> Result<SegmentScan, StorageError> {
    let file_len = file
        .file_size()
        .await
        .map_err(StorageError::io("reading the size of", path))?;
    let mut w = Window {
        file,
        path,
        file_len,
        start: 0,
        data: Bytes::new(),
    };
    let stored = index.map(|b| parse_valid_prefix(b, base, file_len));
    let mut entries = Vec::new();
    let (mut pos, mut expected) = (0u64, base);
    if !full_verify {
        entries = stored.clone().unwrap_or_default();
        let mut tries = 0;
        while let Some(last) = entries.pop() {
            let want = last.offset;
            if let Ok(_checked) = check_at(&mut w, last.pos, &|o| o == want, false).await? {
                (pos, expected) = (last.pos, last.offset);
                break;
            }
            tries += 1;
            if tries == INDEX_TRIES {
                entries.clear();
            }
        }
    }
    let mut scan = SegmentScan {
        file_len,
        ..SegmentScan::default()
    };
    let mut time = TimeIndex::default();
    // A block of zeros is no chunk: it is either preallocated space that appends never reached
    // or a damaged block, and only what follows tells them apart. So it is passed like any bad
    // chunk: a later good chunk that continues the log makes it a hole; none makes the rest of
    // the file the tail, which is kept only if it is all zeros.
    while pos < file_len {
        let exp = expected;
        match check_at(&mut w, pos, &|o| o == exp, full_verify).await? {
            Ok((h, newest)) => {
                scan.chunks_verified += 1;
                entries.push(IndexEntry {
                    offset: h.start_offset,
                    pos,
                });
                // `check_at` refused a chunk whose end overflows.
                expected = h.checked_end_offset().unwrap_or(i64::MAX);
                if let Some(newest) = newest {
                    time.note_chunk(newest, expected);
                }
                if pos + h.padded_len() > file_len {
                    scan.padding_cut = true;
                }
                pos += h.padded_len();
            }
            Err(why) => match find_next(&mut w, pos + ALIGNMENT, expected, full_verify).await? {
                Some((p, (h, _))) => {
                    tracing::warn!(path = %path.display(), pos, reason = %why,
                            skipped_offsets = ?(expected..h.start_offset),
                            "corrupt chunk in the middle of a segment: it will not be served");
                    scan.corrupt_chunks += 1;
                    (pos, expected) = (p, h.start_offset);
                }
                None => {
                    if !matches!(why, Rejected::Zeroed) {
                        tracing::warn!(path = %path.display(), pos, reason = %why,
                            "no good chunk after this position: the segment ends here");
                    }
                    break;
                }
            },
        }
    }
    scan.end_pos = pos.min(file_len.next_multiple_of(ALIGNMENT));
    scan.next_offset = expected;
    if file_len > scan.end_pos {
        let (zeros, chunks) = inspect_tail(&mut w, scan.end_pos).await?;
        // Preallocation always ends at a multiple of the alignment; a file that does not is
        // torn even where its last bytes happen to be zeros.
        let preallocated = zeros && file_len.is_multiple_of(ALIGNMENT);
        scan.preallocated_end = preallocated;
        scan.tail_garbage = !preallocated;
        scan.tail_chunks = chunks;
    }
    scan.index_stale = stored.as_deref() != Some(entries.as_slice())
        || index.is_some_and(|b| b.len() != entries.len() * super::index::ENTRY_LEN);
    scan.entries = entries;
    scan.time = full_verify.then_some(time);
    Ok(scan)
}

/// Whether the bytes of the file from `from` (aligned) to its end are all zeros, and how many
/// chunk headers (head CRC valid, flags 0) start at aligned positions among them.
async fn inspect_tail<T: SegmentFile>(
    w: &mut Window<'_, T>,
    from: u64,
) -> Result<(bool, u64), StorageError> {
    let (mut zeros, mut chunks) = (true, 0);
    let mut p = from;
    while p < w.file_len {
        let len = (w.file_len - p).min(READ_AHEAD);
        let Some(b) = w.get(p, len as usize).await? else {
            break;
        };
        zeros = zeros && b.iter().all(|&x| x == 0);
        for block in b.chunks(ALIGNMENT as usize) {
            if let Ok(Some(h)) = ChunkHeader::parse(block) {
                chunks += u64::from(h.flags == 0);
            }
        }
        p += len;
    }
    Ok((zeros, chunks))
}

/// The first aligned position at or after `from` that holds an acceptable chunk starting
/// after `expected` (and its newest timestamp when `verify`).
async fn find_next<T: SegmentFile>(
    w: &mut Window<'_, T>,
    from: u64,
    expected: i64,
    verify: bool,
) -> Result<Option<(u64, (ChunkHeader, Option<i64>))>, StorageError> {
    let mut p = from;
    while p + HEADER_LEN as u64 <= w.file_len {
        let Some(first) = w.get(p, 1).await? else {
            break;
        };
        if first[0] != FLAG_ALIGNMENT {
            if let Ok(h) = check_at(w, p, &|o| o > expected, verify).await? {
                return Ok(Some((p, h)));
            }
        }
        p += ALIGNMENT;
    }
    Ok(None)
}

/// Makes the last segment end exactly after its last good chunk: cuts whatever follows it
/// unless that is all zeros (a torn tail, stale or damaged chunks: nothing there may come back
/// after the next appends), or restores the 0x80 padding of a last chunk whose padding was
/// cut. Syncs the file, before any append. Returns the bytes cut and the chunk headers among
/// them.
pub(crate) async fn repair_tail<T: SegmentFile>(
    file: &T,
    path: &Path,
    scan: &SegmentScan,
) -> Result<(u64, u64), StorageError> {
    let mut cut = (0, 0);
    if scan.padding_cut {
        // The chunk's header and payload are whole: rewrite its last block with the padding.
        let block = scan.end_pos - ALIGNMENT;
        let have = file
            .read_at(block, ALIGNMENT as usize)
            .await
            .map_err(StorageError::io("reading", path))?;
        let mut buf = file.alloc_buf(ALIGNMENT as usize);
        let b = buf.as_bytes_mut();
        b[..have.len()].copy_from_slice(&have);
        b[have.len()..].fill(FLAG_ALIGNMENT);
        let n = file
            .write_at(buf, block)
            .await
            .map_err(StorageError::io("repairing the padding of", path))?;
        if n != ALIGNMENT as usize {
            return Err(StorageError::Failed {
                reason: format!(
                    "short write while repairing the padding of {}",
                    path.display()
                ),
                disk_full: false,
            });
        }
    } else if scan.tail_garbage {
        // Truncated rather than zeroed: the next append preallocates again.
        cut = (scan.file_len - scan.end_pos, scan.tail_chunks);
        tracing::warn!(path = %path.display(), at = scan.end_pos, bytes = cut.0,
            chunks = cut.1, "cutting what follows the last good chunk of the log");
        file.truncate(scan.end_pos)
            .await
            .map_err(StorageError::io("truncating", path))?;
    } else {
        // Nothing after the last chunk, or preallocated zeros, kept for the next appends.
        return Ok(cut);
    }
    file.fdatasync()
        .await
        .map_err(StorageError::io("syncing", path))?;
    Ok(cut)
}

/// Base offsets of the segment files in `dir`, ascending.
pub(crate) async fn list_segments<F: FileSystem>(
    fs: &F,
    dir: &Path,
) -> Result<Vec<i64>, StorageError> {
    let entries = fs
        .list_dir(dir)
        .await
        .map_err(StorageError::io("listing", dir))?;
    let mut bases: Vec<i64> = entries
        .iter()
        .filter_map(|e| parse_log_file_name(&e.name))
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Opens and recovers one existing segment. `clean` is the clean-shutdown marker, given for the
/// last segment when there is one (without it the last segment is fully verified): the segment is then walked by head CRC only, and walked
/// again with the full check if what the walk found (next offset, end, file size) does not
/// match the marker; `report.clean_shutdown` says whether it matched.
pub(crate) async fn open_segment<F: FileSystem>(
    fs: &F,
    dir: &Path,
    base: i64,
    last: bool,
    clean: Option<CleanEnd>,
    report: &mut RecoveryReport,
) -> Result<Segment<F>, StorageError> {
    let path = dir.join(log_file_name(base));
    let file = fs
        .open(&path)
        .await
        .map_err(StorageError::io("opening", &path))?;
    check_alignment(&file, &path)?;
    let index_path = dir.join(index_file_name(base));
    let index = fs.read_file(&index_path).await.ok();
    // The last segment gets the full check unless a clean-shutdown marker vouches for it.
    let full_verify = last && clean.is_none();
    let mut scan = scan_segment(&file, &path, base, index.as_deref(), full_verify).await?;
    if let Some(end) = clean {
        let found = (scan.next_offset, scan.end_pos, scan.file_len);
        if found == (end.next_offset, end.end_pos, end.end_pos) {
            report.clean_shutdown = true;
        } else {
            tracing::warn!(path = %path.display(), ?end, ?found,
                "clean-shutdown marker does not match the log: the last segment gets the full check");
            scan = scan_segment(&file, &path, base, index.as_deref(), true).await?;
        }
    }
    report.chunks_verified += scan.chunks_verified;
    report.corrupt_chunks += scan.corrupt_chunks;
    if last {
        let (bytes, chunks) = repair_tail(&file, &path, &scan).await?;
        report.torn_bytes_cut += bytes;
        report.chunks_cut += chunks;
    } else if scan.tail_garbage {
        tracing::warn!(path = %path.display(), "closed segment ends with bytes that are no chunk");
        report.corrupt_chunks += 1;
    }
    let mtime = fs
        .metadata(&path)
        .await
        .map_or_else(|_| SystemTime::now(), |m| m.modified);
    let mut seg = Segment::<F>::new(dir, base, file, mtime);
    seg.index = IndexFile::new(index_path, scan.entries.len());
    seg.entries = scan.entries;
    seg.end_pos = scan.end_pos;
    seg.next_offset = scan.next_offset;
    seg.allocated = if last && scan.preallocated_end {
        scan.file_len
    } else {
        scan.end_pos
    };
    if scan.index_stale {
        report.index_rebuilt += 1;
        seg.index.take_rewrite(&seg.entries, false).run(fs).await;
    }
    let time = recover_time_index(fs, &seg, scan.time).await?;
    seg.time = time.index;
    if time.rebuilt {
        report.time_index_rebuilt += 1;
        // Closed between writes (see `Segment::time_file`).
        seg.time_file
            .take_rewrite(&seg.time.entries, true)
            .run(fs)
            .await;
    } else {
        seg.time_file = IndexFile::new(seg.time_file.path().to_path_buf(), seg.time.entries.len());
    }
    Ok(seg)
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
