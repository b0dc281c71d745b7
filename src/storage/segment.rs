//! One segment: a file of chunks named by its first offset, its in-memory index, and the
//! positions the log has made durable in it.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use super::chunk::ALIGNMENT;
use super::fs::{BufferedFile, FileSystem, SegmentFile};
use super::index::{IndexEntry, IndexFile, IndexWrite};
use super::time_index::{time_index_file_name, TimeEntry, TimeIndex};
use super::StorageError;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the chunk is written and `fdatasync`ed: survives power loss.
    Fsync,
    /// After the chunk is written (O_DIRECT, so it reached the device, but the device cache
    /// and file metadata may not be durable): survives a process crash.
    Write,
}

/// `00000000000000000042.log` for base offset 42.
pub fn log_file_name(base: i64) -> String {
    format!("{base:020}.log")
}

/// `00000000000000000042.index` for base offset 42.
pub fn index_file_name(base: i64) -> String {
    format!("{base:020}.index")
}

/// The base offset of a segment file name (`20 digits` + `.log`), if it is one.
pub fn parse_log_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) struct Segment<F: FileSystem> {
    /// Offset of the first record (the file's name).
    pub base: i64,
    pub path: PathBuf,
    pub file: Rc<F::File>,
    /// One entry per servable chunk, in file order. Chunks found corrupt are absent.
    pub entries: Vec<IndexEntry>,
    pub index: IndexFile<F::Buffered>,
    /// The running maximum timestamp, an entry per chunk that raised it (see
    /// [`super::time_index`]).
    pub time: TimeIndex,
    /// The time index's file: opened for each flush and closed again, so it holds no
    /// descriptor between flushes.
    pub time_file: IndexFile<F::Buffered>,
    /// End of the last servable chunk, padding included: where the next chunk goes. Only
    /// durable bytes lie before it.
    pub end_pos: u64,
    /// The offset after the last servable record.
    pub next_offset: i64,
    /// The file's size: `end_pos` plus space preallocated for the next appends.
    pub allocated: u64,
    /// When a chunk was last appended (the file's mtime for segments found at open).
    pub last_append: SystemTime,
}

/// Index writes taken from a segment under the log's borrow, to be run after it.
#[must_use = "the entries are written only by `run`"]
pub(crate) struct IndexFlush<B>([Option<IndexWrite<B>>; 2]);

impl<B: BufferedFile> IndexFlush<B> {
    /// Writes both indexes' entries (failures are logged: see [`IndexWrite::run`]).
    pub async fn run<F: FileSystem<Buffered = B>>(self, fs: &F) {
        for w in self.0.into_iter().flatten() {
            w.run(fs).await;
        }
    }
}

impl<F: FileSystem> Segment<F> {
    pub fn new(dir: &Path, base: i64, file: F::File, last_append: SystemTime) -> Segment<F> {
        Segment {
            base,
            path: dir.join(log_file_name(base)),
            file: Rc::new(file),
            entries: Vec::new(),
            index: IndexFile::new(dir.join(index_file_name(base)), 0),
            time: TimeIndex::default(),
            time_file: IndexFile::new(dir.join(time_index_file_name(base)), 0),
            end_pos: 0,
            next_offset: base,
            allocated: 0,
            last_append,
        }
    }

    /// Index (into `entries`) of the chunk that holds `offset` or, in a hole, the chunk before
    /// it; `None` when `offset` is before the first chunk.
    pub fn entry_for(&self, offset: i64) -> Option<usize> {
        self.entries
            .partition_point(|e| e.offset <= offset)
            .checked_sub(1)
    }

    /// Where the chunk of entry `i` ends, at the latest (padding and any corrupt bytes after
    /// it included).
    pub fn extent_end(&self, i: usize) -> u64 {
        self.entries.get(i + 1).map_or(self.end_pos, |e| e.pos)
    }

    /// Takes the pending entries of both indexes for writing (the time index's with the
    /// offset index's, so the write path pays for one batch of writes).
    pub fn flush_index(&mut self) -> IndexFlush<F::Buffered> {
        self.take_index(false)
    }

    fn take_index(&mut self, release: bool) -> IndexFlush<F::Buffered> {
        // The time index is closed after each write (see `time_file`).
        IndexFlush([
            self.index.take(&self.entries, release),
            self.time_file.take(&self.time.entries, true),
        ])
    }

    /// Notes an appended chunk: its offset-index entry, and a time-index entry when its
    /// newest timestamp `max_us` raises the segment's maximum.
    pub fn note_chunk(&mut self, entry: IndexEntry, end_offset: i64, max_us: i64) {
        self.entries.push(entry);
        self.time.note_chunk(max_us, end_offset);
    }

    /// Ends the time index at the segment's end (its closing entry, see [`super::time_index`])
    /// and takes both indexes' entries for writing: for a segment sealed or a log closed.
    pub fn finish_index(&mut self) -> IndexFlush<F::Buffered> {
        self.time.close_at(self.next_offset);
        self.take_index(false)
    }

    /// Like [`finish_index`](Self::finish_index), and closes the files after the writes: for
    /// a sealed segment, whose index is done.
    pub fn seal_index(&mut self) -> IndexFlush<F::Buffered> {
        self.time.close_at(self.next_offset);
        self.take_index(true)
    }

    /// Descriptors this segment holds: its file, and its index while that is open (the time
    /// index is closed after each write).
    pub fn open_files(&self) -> usize {
        1 + usize::from(self.index.is_open())
    }
}

/// Creates an empty segment at `base` (and makes its name durable when fsyncing).
pub(crate) async fn create_segment<F: FileSystem>(
    fs: &F,
    dir: &Path,
    base: i64,
    durability: Durability,
) -> Result<Segment<F>, StorageError> {
    let path = dir.join(log_file_name(base));
    let file = fs
        .create(&path)
        .await
        .map_err(StorageError::io("creating", &path))?;
    check_alignment(&file, &path)?;
    if durability == Durability::Fsync {
        fs.sync_dir(dir)
            .await
            .map_err(StorageError::io("syncing the directory", dir))?;
    }
    let seg = Segment::<F>::new(dir, base, file, SystemTime::now());
    // Empty index files, so a stale one of an earlier life of this name is gone.
    seg.index
        .take_rewrite::<IndexEntry>(&[], false)
        .run(fs)
        .await;
    seg.time_file
        .take_rewrite::<TimeEntry>(&[], true)
        .run(fs)
        .await;
    Ok(seg)
}

pub(crate) fn check_alignment<T: SegmentFile>(file: &T, path: &Path) -> Result<(), StorageError> {
    let need = file.alignment().max(1);
    if !ALIGNMENT.is_multiple_of(need) {
        return Err(StorageError::Alignment {
            path: path.to_path_buf(),
            need,
            chunk: ALIGNMENT,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(log_file_name(42), "00000000000000000042.log");
        assert_eq!(index_file_name(0), "00000000000000000000.index");
        assert_eq!(parse_log_file_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_file_name("0000000000000000042.log"), None);
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_log_file_name("0000000000000000004x.log"), None);
    }
}
