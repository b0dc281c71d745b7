//! The per-segment index: fixed 16-byte entries `offset i64 | file position u64` (big-endian),
//! one per chunk, in file order.
//!
//! The index is a cache of what a walk of the segment would find. It is written with buffered
//! writes ([`BufferedFile`]: into the page cache, a few entries at a time) and never fsynced:
//! recovery checks it against the segment and rebuilds it when it is missing, short or wrong.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::chunk::ALIGNMENT;
use super::fs::{write_all_at, BufferedFile, FileSystem};

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
///
/// A write is taken from the index under the log's state borrow ([`IndexFile::take`]: the
/// entries encoded, the file handle shared) and done after it ([`IndexWrite::run`]), since no
/// borrow of the log's state may be held across an `.await`. The state a write needs lives in
/// a shared slot, so the write works on whatever the segment has become by then.
pub(crate) struct IndexFile<B> {
    slot: Rc<Slot<B>>,
}

struct Slot<B> {
    path: PathBuf,
    /// Open between writes while the index grows; `None` once released.
    file: RefCell<Option<Rc<B>>>,
    /// Entries known to be in the file.
    written: Cell<usize>,
    /// Entries taken for writing (`written` plus those in flight).
    queued: Cell<usize>,
}

/// Entries taken from an [`IndexFile`], to be written by [`IndexWrite::run`].
#[must_use = "the entries are written only by `run`"]
pub(crate) struct IndexWrite<B> {
    slot: Rc<Slot<B>>,
    bytes: Vec<u8>,
    pos: u64,
    /// `written` after this write succeeds.
    upto: usize,
    /// Empty the file first (a rewrite).
    truncate: bool,
    /// Close the file afterwards.
    release: bool,
}

impl<B: BufferedFile> IndexFile<B> {
    /// An index whose first `written` entries are known to be in the file at `path`.
    pub fn new(path: PathBuf, written: usize) -> IndexFile<B> {
        IndexFile {
            slot: Rc::new(Slot {
                path,
                file: RefCell::new(None),
                written: Cell::new(written),
                queued: Cell::new(written),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.slot.path
    }

    /// Whether the file is open (it is opened by the first write and kept for the next).
    pub fn is_open(&self) -> bool {
        self.slot.file.borrow().is_some()
    }

    /// Entries not yet taken for writing.
    pub fn pending<E>(&self, entries: &[E]) -> usize {
        entries.len().saturating_sub(self.slot.queued.get())
    }

    /// Takes the entries not yet in the file for writing; `release` closes the file after
    /// them (for a sealed segment, whose index is complete: keeping it open would cost a
    /// descriptor per segment for nothing). `None` when there is nothing to do.
    pub fn take<E: FileEntry>(&self, entries: &[E], release: bool) -> Option<IndexWrite<B>> {
        let from = self.slot.queued.get();
        if from >= entries.len() && !(release && self.is_open()) {
            return None;
        }
        let mut bytes = Vec::with_capacity(entries.len().saturating_sub(from) * ENTRY_LEN);
        for e in entries.get(from..).unwrap_or_default() {
            e.encode(&mut bytes);
        }
        self.slot.queued.set(entries.len().max(from));
        Some(IndexWrite {
            slot: self.slot.clone(),
            bytes,
            pos: (from * ENTRY_LEN) as u64,
            upto: entries.len().max(from),
            truncate: false,
            release,
        })
    }

    /// Takes all of `entries` to replace the file's contents.
    pub fn take_rewrite<E: FileEntry>(&self, entries: &[E], release: bool) -> IndexWrite<B> {
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY_LEN);
        for e in entries {
            e.encode(&mut bytes);
        }
        self.slot.written.set(0);
        self.slot.queued.set(entries.len());
        IndexWrite {
            slot: self.slot.clone(),
            bytes,
            pos: 0,
            upto: entries.len(),
            truncate: true,
            release,
        }
    }
}

impl<B: BufferedFile> IndexWrite<B> {
    /// Writes the entries. A failure is logged and forgotten: the index is only a cache, the
    /// entries are taken again by the next write, and the next open rebuilds what is wrong.
    pub async fn run<F: FileSystem<Buffered = B>>(self, fs: &F) {
        let slot = &self.slot;
        if let Err(e) = self.write(fs).await {
            tracing::warn!(path = %slot.path.display(), error = %e,
                "could not write index entries; the index will be rebuilt at the next open");
            slot.queued.set(slot.written.get());
        }
        if self.release {
            let file = slot.file.borrow_mut().take();
            if let Some(Ok(file)) = file.map(Rc::try_unwrap) {
                if let Err(e) = file.close().await {
                    tracing::warn!(path = %slot.path.display(), error = %e,
                        "closing an index file failed");
                }
            }
        }
    }

    async fn write<F: FileSystem<Buffered = B>>(&self, fs: &F) -> std::io::Result<()> {
        let slot = &self.slot;
        let open = if self.truncate {
            None
        } else {
            slot.file.borrow().clone()
        };
        let file = match open {
            Some(f) => f,
            None => {
                let f = Rc::new(fs.open_buffered(&slot.path, self.truncate).await?);
                *slot.file.borrow_mut() = Some(f.clone());
                f
            }
        };
        write_all_at(&*file, &self.bytes, self.pos).await?;
        slot.written.set(slot.written.get().max(self.upto));
        Ok(())
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
