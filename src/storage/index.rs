//! The per-segment index: fixed 16-byte entries `offset i64 | file position u64` (big-endian),
//! one per chunk, in file order.
//!
//! The index is a cache of what a walk of the segment would find. It is written with plain
//! buffered writes (`pwrite` into the page cache, a few entries at a time) and never fsynced:
//! recovery checks it against the segment and rebuilds it when it is missing, short or wrong.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::chunk::ALIGNMENT;

/// Bytes of one index entry.
pub const ENTRY_LEN: usize = 16;

/// Entries are written to the file once this many are pending (and at roll and close).
pub(crate) const FLUSH_EVERY: usize = 64;

/// An entry of a file of fixed [`ENTRY_LEN`]-byte entries (the offset index, the time index).
pub trait FileEntry {
    /// Appends the entry's [`ENTRY_LEN`] bytes.
    fn encode(&self, dst: &mut Vec<u8>);
}

/// Where the chunk starting at `offset` sits in its segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: i64,
    pub pos: u64,
}

impl FileEntry for IndexEntry {
    fn encode(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&self.offset.to_be_bytes());
        dst.extend_from_slice(&self.pos.to_be_bytes());
    }
}

/// Parses the longest prefix of plausible entries: the first at (`base`, 0), then offsets and
/// positions strictly increasing, positions aligned and inside a file of `file_len` bytes.
/// Anything after the first implausible entry (or a trailing partial entry) is ignored.
pub fn parse_valid_prefix(bytes: &[u8], base: i64, file_len: u64) -> Vec<IndexEntry> {
    let mut out: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for e in bytes.chunks_exact(ENTRY_LEN) {
        let mut o = [0u8; 8];
        let mut p = [0u8; 8];
        o.copy_from_slice(&e[..8]);
        p.copy_from_slice(&e[8..]);
        let entry = IndexEntry {
            offset: i64::from_be_bytes(o),
            pos: u64::from_be_bytes(p),
        };
        let ok = match out.last() {
            None => entry.offset == base && entry.pos == 0,
            Some(prev) => entry.offset > prev.offset && entry.pos > prev.pos,
        };
        if !ok || !entry.pos.is_multiple_of(ALIGNMENT) || entry.pos >= file_len {
            break;
        }
        out.push(entry);
    }
    out
}

/// The on-disk side of a segment's index (or time index): fixed-size entries appended with
/// buffered writes.
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    file: Option<File>,
    /// Entries already in the file.
    written: usize,
}

impl IndexFile {
    /// An index whose first `written` entries are known to be in the file at `path`.
    pub fn new(path: PathBuf, written: usize) -> IndexFile {
        IndexFile {
            path,
            file: None,
            written,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is open (it is opened by the first write and kept for the next).
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Closes the file; a later write opens it again. For sealed segments, whose index is
    /// complete: keeping it open would cost a descriptor per segment for nothing.
    pub fn release(&mut self) {
        self.file = None;
    }

    pub fn pending<E>(&self, entries: &[E]) -> usize {
        entries.len().saturating_sub(self.written)
    }

    /// Writes the entries not yet in the file. A failure is logged and forgotten: the index is
    /// only a cache, and the next open rebuilds it.
    pub fn flush<E: FileEntry>(&mut self, entries: &[E]) {
        if self.written >= entries.len() {
            return;
        }
        let mut buf = Vec::with_capacity((entries.len() - self.written) * ENTRY_LEN);
        for e in &entries[self.written..] {
            e.encode(&mut buf);
        }
        let res = match &self.file {
            Some(f) => Ok(f),
            None => std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
                .map(|f| &*self.file.insert(f)),
        }
        .and_then(|f| f.write_all_at(&buf, (self.written * ENTRY_LEN) as u64));
        match res {
            Ok(()) => self.written = entries.len(),
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e,
                "could not write index entries; the index will be rebuilt at the next open"),
        }
    }

    /// Replaces the file's contents with `entries`.
    pub fn rewrite<E: FileEntry>(&mut self, entries: &[E]) {
        self.file = None;
        let res = File::create(&self.path);
        match res {
            Ok(f) => {
                self.file = Some(f);
                self.written = 0;
                self.flush(entries);
            }
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e,
                "could not rewrite the index; it will be rebuilt at the next open"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(entries: &[(i64, u64)]) -> Vec<u8> {
        let mut v = Vec::new();
        for &(offset, pos) in entries {
            IndexEntry { offset, pos }.encode(&mut v);
        }
        v
    }

    #[test]
    fn valid_prefix_stops_at_the_first_implausible_entry() {
        let a = ALIGNMENT;
        let good = bytes(&[(10, 0), (15, a), (40, 3 * a)]);
        assert_eq!(parse_valid_prefix(&good, 10, 4 * a).len(), 3);
        assert_eq!(parse_valid_prefix(&good, 10, 3 * a).len(), 2);
        assert_eq!(parse_valid_prefix(&good, 11, 4 * a).len(), 0);
        assert_eq!(parse_valid_prefix(&good[..40], 10, 4 * a).len(), 2);
        let bad = bytes(&[(10, 0), (15, a), (14, 2 * a), (40, 3 * a)]);
        assert_eq!(parse_valid_prefix(&bad, 10, 4 * a).len(), 2);
        let unaligned = bytes(&[(10, 0), (15, 100)]);
        assert_eq!(parse_valid_prefix(&unaligned, 10, 4 * a).len(), 1);
    }
}
