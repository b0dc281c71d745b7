//! [`PartitionLog`]: one partition's segments, appended by one writer, read by many.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::chunk::{ChunkEncoder, ChunkHeader, RecordBatch, ALIGNMENT, HEADER_LEN};
use super::clean;
use super::index::{IndexEntry, FLUSH_EVERY};
use super::io::{DmaBuf, SegmentFile, SegmentFs};
use super::recovery::{list_segments, open_segment};
use super::segment::{create_segment, Segment};
use super::tail::HotTail;
use super::StorageError;
use crate::rt::dma::DmaFs;

/// How much segment space is allocated ahead of the appends.
const PREALLOCATE_STEP: u64 = 8 << 20;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the chunk is written and `fdatasync`ed: survives power loss.
    Fsync,
    /// After the chunk is written (O_DIRECT, so it reached the device, but the device cache
    /// and file metadata may not be durable): survives a process crash.
    Write,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A segment is rolled before a write that would make it larger than this.
    pub segment_size: u64,
    pub durability: Durability,
    pub zstd_level: i32,
    /// Closed segments whose last append is older than this are deleted.
    pub retention_age: Option<Duration>,
    /// Closed segments are deleted, oldest first, while all segments together exceed this.
    pub retention_bytes: Option<u64>,
    /// Bytes of the newest compressed chunks kept in memory for readers (the hot tail).
    pub tail_bytes: usize,
    /// How much of a segment retention gives back to the file system at once (see
    /// `PartitionLog::enforce_retention`).
    pub reclaim_step: u64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_size: 1 << 30,
            durability: Durability::Fsync,
            zstd_level: 3,
            retention_age: None,
            retention_bytes: None,
            tail_bytes: 8 << 20,
            reclaim_step: 16 << 20,
        }
    }
}

/// What recovery found when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Chunks whose header (and, in the last segment, payload) was checked.
    pub chunks_verified: u64,
    /// Bytes cut from the end of the last segment (an incomplete last write).
    pub torn_bytes_cut: u64,
    /// Bad chunks followed by good ones (or bad ends of closed segments): never served.
    pub corrupt_chunks: u64,
    /// Segments whose index file was missing or wrong and was rewritten.
    pub index_rebuilt: u64,
    /// The log had been closed gracefully (its marker matched): the last segment was checked
    /// like a sealed one, without decompressing it.
    pub clean_shutdown: bool,
    pub next_offset: i64,
}

/// The result of a successful (durable) append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub start_offset: i64,
    pub record_count: u32,
    /// Bytes the chunk takes in the file, padding included.
    pub chunk_len: u64,
    /// Bytes of the compressed payload.
    pub payload_len: u32,
    /// The segment (its base offset) the chunk went into.
    pub segment: i64,
    /// Microseconds the chunk's write took.
    pub write_us: u64,
    /// Microseconds its `fdatasync` took (`None` with [`Durability::Write`]).
    pub fdatasync_us: Option<u64>,
}

/// One chunk as stored: `payload` is exactly the zstd frame, ready for a poll response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    pub start_offset: i64,
    pub record_count: u32,
    pub payload: bytes::Bytes,
}

impl StoredChunk {
    pub fn end_offset(&self) -> i64 {
        self.start_offset + i64::from(self.record_count)
    }
}

pub(crate) struct LogState<T> {
    /// Oldest first; never empty; the back one is the active segment.
    pub segments: VecDeque<Segment<T>>,
    pub failed: Option<String>,
    /// Chunks skipped by reads because their header failed its CRC.
    pub read_skipped: u64,
}

/// The log of one partition. `!Send`: it lives on its shard.
///
/// Appends come from ONE writer task at a time (the shard's group-commit writer), which is
/// debug-asserted; reads and retention may run concurrently with an append. No `RefCell`
/// borrow is held across an `.await`.
pub struct PartitionLog<F: SegmentFs = DmaFs> {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) fs: F,
    pub(crate) state: RefCell<LogState<F::File>>,
    /// Shared with the other logs on this shard ([`ChunkEncoder::for_this_thread`]).
    encoder: Rc<RefCell<ChunkEncoder>>,
    appending: Cell<bool>,
    /// The end offset of the newest chunk encoded but not yet written: the next chunk is
    /// numbered from here.
    encoded_end: Cell<Option<i64>>,
    /// The newest chunks, in memory (see [`super::tail`]).
    pub(crate) tail: RefCell<HotTail>,
}

/// A chunk compressed and numbered by [`PartitionLog::encode`], waiting for
/// [`PartitionLog::write_chunk`]: its aligned buffer, ready to write, and a copy of its payload
/// for the hot tail.
pub struct EncodedChunk<B> {
    buf: B,
    len: usize,
    header: ChunkHeader,
    tail_copy: Option<Bytes>,
}

impl<B> EncodedChunk<B> {
    /// The offset of the chunk's first record.
    pub fn start_offset(&self) -> i64 {
        self.header.start_offset
    }
}

/// The chunk [`PartitionLog::encode`] returns for a log on the file system `F`.
pub type LogChunk<F = DmaFs> = EncodedChunk<<<F as SegmentFs>::File as SegmentFile>::Buf>;

/// Once the newest encoded chunk has been written (or has failed), the next one is numbered
/// from the log again.
struct EncodedGuard<'a> {
    cell: &'a Cell<Option<i64>>,
    end: i64,
}

impl Drop for EncodedGuard<'_> {
    fn drop(&mut self) {
        if self.cell.get() == Some(self.end) {
            self.cell.set(None);
        }
    }
}

/// Clears the one-writer flag even when the append future is dropped.
struct WriterGuard<'a>(&'a Cell<bool>);

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl PartitionLog<DmaFs> {
    /// Opens (creating if needed) the log in `dir` on DMA files, and recovers it.
    pub async fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        let fs = DmaFs {
            durable_writes: config.durability == Durability::Fsync,
        };
        PartitionLog::open_with(fs, dir, config).await
    }
}

impl<F: SegmentFs> PartitionLog<F> {
    /// Opens the log in `dir` on the file system `fs`, and recovers it.
    pub async fn open_with(
        fs: F,
        dir: impl AsRef<Path>,
        config: LogConfig,
    ) -> Result<(PartitionLog<F>, RecoveryReport), StorageError> {
        let dir = dir.as_ref().to_path_buf();
        if config.segment_size < ALIGNMENT {
            return Err(StorageError::Config(format!(
                "segment_size {} is smaller than the chunk alignment {ALIGNMENT}",
                config.segment_size
            )));
        }
        let encoder = ChunkEncoder::for_this_thread(config.zstd_level)?;
        std::fs::create_dir_all(&dir).map_err(StorageError::io("creating", &dir))?;
        let mut report = RecoveryReport::default();
        let mut segments = VecDeque::new();
        let clean = clean::take_marker(&dir)?;
        if clean.is_some() {
            // The marker is gone for good before anything is appended: a crash from now on
            // gets the full check.
            fs.sync_dir(&dir)
                .await
                .map_err(StorageError::io("syncing the directory", &dir))?;
        }
        let bases = list_segments(&dir)?;
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let full_verify = last && clean.is_none();
            let seg = open_segment(&fs, &dir, base, last, full_verify, &mut report).await?;
            if let Some(prev) = segments.back().map(|s: &Segment<F::File>| s.next_offset) {
                if prev != base {
                    tracing::warn!(dir = %dir.display(), prev_end = prev, base,
                        "segments are not contiguous: offsets in between are lost");
                }
            }
            segments.push_back(seg);
        }
        if segments.is_empty() {
            segments.push_back(create_segment(&fs, &dir, 0, config.durability).await?);
        }
        report.segments = segments.len();
        report.next_offset = segments.back().map_or(0, |s| s.next_offset);
        if let Some(end) = clean {
            let found = segments.back().map(|s| (s.next_offset, s.end_pos));
            report.clean_shutdown = found == Some((end.next_offset, end.end_pos));
            if !report.clean_shutdown {
                tracing::warn!(dir = %dir.display(), ?end, ?found,
                    "clean-shutdown marker does not match the log; the last segment was checked by head CRC only");
            }
        }
        let tail_bytes = config.tail_bytes;
        let log = PartitionLog {
            dir,
            config,
            fs,
            state: RefCell::new(LogState {
                segments,
                failed: None,
                read_skipped: 0,
            }),
            encoder,
            appending: Cell::new(false),
            encoded_end: Cell::new(None),
            tail: RefCell::new(HotTail::new(tail_bytes)),
        };
        Ok((log, report))
    }

    /// Bytes of compressed chunks held in the hot tail.
    pub fn hot_tail_bytes(&self) -> usize {
        self.tail.borrow().bytes()
    }

    /// Whether a read from `from` is served from the hot tail rather than the disk.
    pub fn tail_holds(&self, from: i64) -> bool {
        self.tail.borrow().holds(from)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The offset the next record will get: everything before it is durable.
    pub fn next_offset(&self) -> i64 {
        let st = self.state.borrow();
        st.segments.back().map_or(0, |s| s.next_offset)
    }

    /// The earliest offset still stored (retention removes whole segments before it).
    pub fn start_offset(&self) -> i64 {
        let st = self.state.borrow();
        st.segments.front().map_or(0, |s| s.base)
    }

    /// Why the log refuses writes, if it does.
    pub fn failure(&self) -> Option<String> {
        self.state.borrow().failed.clone()
    }

    /// Segment files, the active one included.
    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// Bytes in the segment files (chunks and their padding; indexes not counted).
    pub fn disk_bytes(&self) -> u64 {
        self.state.borrow().segments.iter().map(|s| s.end_pos).sum()
    }

    /// Chunks reads have skipped because their head CRC failed.
    pub fn read_skipped_chunks(&self) -> u64 {
        self.state.borrow().read_skipped
    }

    /// Compresses `batch` into one chunk, writes it at the end of the active segment (rolling
    /// first if it would not fit), makes it durable per [`Durability`], and only then makes it
    /// visible to readers and returns: [`encode`](Self::encode) then
    /// [`write_chunk`](Self::write_chunk).
    ///
    /// A write or fdatasync error is never retried: the log becomes failed, and this and every
    /// later append return [`StorageError::Failed`]. Bad input (an empty batch, a batch whose
    /// pieces do not add up) returns [`StorageError::Chunk`] and leaves the log usable.
    pub async fn append(&self, batch: &dyn RecordBatch) -> Result<AppendInfo, StorageError> {
        let chunk = self.encode(batch)?;
        self.write_chunk(chunk).await
    }

    /// Compresses `batch` into the next chunk, numbered after everything appended and after
    /// the chunk encoded before it if that one is not written yet. This is the CPU half of an
    /// append: the writer compresses the next chunk while the previous one is being written.
    /// Chunks must then be written in the order they were encoded.
    pub fn encode(&self, batch: &dyn RecordBatch) -> Result<LogChunk<F>, StorageError> {
        let (file, next_offset) = {
            let st = self.state.borrow();
            if let Some(reason) = &st.failed {
                return Err(StorageError::Failed {
                    reason: reason.clone(),
                });
            }
            let seg = st.segments.back().expect("the log always has a segment");
            (seg.file.clone(), seg.next_offset)
        };
        let start = self.encoded_end.get().unwrap_or(next_offset);
        let mut buf = file.alloc_buf(ChunkEncoder::max_encoded_len(batch.raw_len()));
        let (header, len) = self
            .encoder
            .borrow_mut()
            .encode(start, batch, buf.as_bytes_mut())?;
        buf.trim_to_size(len);
        // The compressed payload, for the hot tail: one copy of the compressed bytes (a third
        // of the raw size at level 1) so tailing readers never read the disk.
        let payload_end = HEADER_LEN + header.length as usize;
        let tail_copy = (self.config.tail_bytes > 0)
            .then(|| Bytes::copy_from_slice(&buf.as_bytes()[HEADER_LEN..payload_end]));
        self.encoded_end.set(Some(header.end_offset()));
        Ok(EncodedChunk {
            buf,
            len,
            header,
            tail_copy,
        })
    }

    /// Writes a chunk from [`encode`](Self::encode) at the end of the active segment (rolling
    /// first if it would not fit), makes it durable per [`Durability`], and only then makes it
    /// visible to readers and returns. Errors as for [`append`](Self::append); a chunk that is
    /// not the next one (written out of order) is refused with [`StorageError::OutOfOrder`].
    pub async fn write_chunk(&self, chunk: LogChunk<F>) -> Result<AppendInfo, StorageError> {
        debug_assert!(
            !self.appending.get(),
            "PartitionLog::write_chunk called by two writers at once"
        );
        self.appending.set(true);
        let _guard = WriterGuard(&self.appending);
        let _encoded = EncodedGuard {
            cell: &self.encoded_end,
            end: chunk.header.end_offset(),
        };
        let EncodedChunk {
            buf,
            len,
            header,
            tail_copy,
        } = chunk;
        let (file, start, end_pos) = {
            let st = self.state.borrow();
            if let Some(reason) = &st.failed {
                return Err(StorageError::Failed {
                    reason: reason.clone(),
                });
            }
            let seg = st.segments.back().expect("the log always has a segment");
            (seg.file.clone(), seg.next_offset, seg.end_pos)
        };
        if header.start_offset != start {
            // Whatever was encoded after the log's end is void: number the next from the log.
            self.encoded_end.set(None);
            return Err(StorageError::OutOfOrder {
                chunk: header.start_offset,
                next: start,
            });
        }
        let (file, pos, path) = if end_pos > 0 && end_pos + len as u64 > self.config.segment_size {
            self.roll(start).await?
        } else {
            let st = self.state.borrow();
            let seg = st.segments.back().expect("the log always has a segment");
            (file, end_pos, seg.path.clone())
        };
        let offsets = start..header.end_offset();
        self.preallocate_for(&file, pos + len as u64).await;
        let t0 = Instant::now();
        match file.write_at(buf, pos).await {
            Ok(n) if n == len => {}
            Ok(n) => {
                return Err(self.fail(format!(
                    "short write to {} at position {pos}: {n} of {len} bytes (offsets {offsets:?} \
                     not acknowledged; the partition takes no more writes until it is reopened)",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(self.fail(format!(
                    "write to {} at position {pos} failed: {e} (offsets {offsets:?} not \
                     acknowledged; the partition takes no more writes until it is reopened)",
                    path.display()
                )))
            }
        }
        let write_us = micros(t0.elapsed());
        let mut fdatasync_us = None;
        if self.config.durability == Durability::Fsync && !file.writes_are_durable() {
            let t1 = Instant::now();
            let synced = file.fdatasync().await;
            fdatasync_us = Some(micros(t1.elapsed()));
            if let Err(e) = synced {
                return Err(self.fail(format!(
                    "fdatasync of {} failed: {e} (offsets {offsets:?} not acknowledged; after a \
                     failed fdatasync the page state is unknown, so the partition takes no more \
                     writes until it is reopened and recovered)",
                    path.display()
                )));
            }
        }
        let mut st = self.state.borrow_mut();
        let seg = st
            .segments
            .back_mut()
            .expect("the log always has a segment");
        debug_assert_eq!(seg.next_offset, start);
        seg.entries.push(IndexEntry { offset: start, pos });
        seg.end_pos = pos + len as u64;
        seg.next_offset = header.end_offset();
        seg.last_append = SystemTime::now();
        if seg.index.pending(&seg.entries) >= FLUSH_EVERY {
            seg.flush_index();
        }
        let base = seg.base;
        drop(st);
        if let Some(payload) = tail_copy {
            self.tail.borrow_mut().push(StoredChunk {
                start_offset: start,
                record_count: header.record_count,
                payload,
            });
        }
        Ok(AppendInfo {
            start_offset: start,
            record_count: header.record_count,
            chunk_len: len as u64,
            payload_len: header.length,
            segment: base,
            write_us,
            fdatasync_us,
        })
    }

    /// Makes sure the active segment's blocks are allocated up to `end`, growing the
    /// allocation [`PREALLOCATE_STEP`] at a time (never past the segment size unless one chunk
    /// needs it). Writes into allocated blocks do not extend the file, so io_uring can issue
    /// them directly instead of handing them to a kernel worker thread; measured, that takes
    /// the write path off the shard's core. A failed allocation is only logged: the write
    /// itself then reports any real problem.
    async fn preallocate_for(&self, file: &F::File, end: u64) {
        let allocated = {
            let st = self.state.borrow();
            st.segments.back().map_or(0, |s| s.allocated)
        };
        if end <= allocated {
            return;
        }
        let target = (end + PREALLOCATE_STEP)
            .min(self.config.segment_size.max(end))
            .next_multiple_of(ALIGNMENT);
        match file.preallocate(target).await {
            Ok(()) => {
                if let Some(seg) = self.state.borrow_mut().segments.back_mut() {
                    seg.allocated = target;
                }
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not preallocate segment space")
            }
        }
    }

    /// Seals the active segment and starts a new one at `base`. Returns the new file, the
    /// write position (0) and its path.
    async fn roll(&self, base: i64) -> Result<(std::rc::Rc<F::File>, u64, PathBuf), StorageError> {
        let (old, old_path, end_pos, allocated) = {
            let mut st = self.state.borrow_mut();
            let seg = st
                .segments
                .back_mut()
                .expect("the log always has a segment");
            seg.flush_index();
            (
                seg.file.clone(),
                seg.path.clone(),
                seg.end_pos,
                seg.allocated,
            )
        };
        // A sealed segment ends exactly after its last chunk: give back the preallocation.
        if allocated > end_pos {
            if let Err(e) = old.truncate(end_pos).await {
                return Err(self.fail(format!(
                    "truncating {} while sealing it failed: {e}",
                    old_path.display()
                )));
            }
        }
        if let Err(e) = old.fdatasync().await {
            return Err(self.fail(format!(
                "fdatasync of {} while sealing it failed: {e}",
                old_path.display()
            )));
        }
        let seg = match create_segment(&self.fs, &self.dir, base, self.config.durability).await {
            Ok(s) => s,
            Err(e) => return Err(self.fail(format!("could not start a new segment: {e}"))),
        };
        let out = (seg.file.clone(), 0, seg.path.clone());
        tracing::info!(sealed = %old_path.display(), new = %seg.path.display(), "segment rolled");
        self.state.borrow_mut().segments.push_back(seg);
        Ok(out)
    }

    /// Marks the log failed (the first reason wins) and returns the error for the caller.
    fn fail(&self, reason: String) -> StorageError {
        tracing::error!(dir = %self.dir.display(), %reason, "partition log failed");
        let mut st = self.state.borrow_mut();
        let reason = st.failed.get_or_insert(reason).clone();
        StorageError::Failed { reason }
    }

    /// Graceful close: writes every pending index entry, makes the active segment durable and
    /// leaves the clean-shutdown marker (the `clean` file of `storage/clean.rs`), so the next open checks
    /// without decompressing. Appending after this is a bug. A failed log leaves no marker.
    pub async fn close_clean(&self) -> Result<(), StorageError> {
        let (file, end, allocated) = {
            let mut st = self.state.borrow_mut();
            if st.failed.is_some() {
                return Ok(());
            }
            for seg in st.segments.iter_mut() {
                seg.flush_index();
            }
            let seg = st.segments.back().expect("the log always has a segment");
            let end = clean::CleanEnd {
                next_offset: seg.next_offset,
                end_pos: seg.end_pos,
            };
            (seg.file.clone(), end, seg.allocated)
        };
        // Files at rest end exactly after their last chunk.
        if allocated > end.end_pos {
            file.truncate(end.end_pos)
                .await
                .map_err(StorageError::io("truncating", &self.dir))?;
        }
        file.fdatasync()
            .await
            .map_err(StorageError::io("syncing", &self.dir))?;
        clean::write_marker(&self.dir, end)
    }

    /// Writes pending index entries and closes the files.
    pub async fn close(self) -> Result<(), StorageError> {
        let (segments, failed) = {
            let mut st = self.state.borrow_mut();
            for seg in st.segments.iter_mut() {
                seg.flush_index();
            }
            (std::mem::take(&mut st.segments), st.failed.is_some())
        };
        for seg in segments {
            // Give back preallocated space, unless the log failed: then its files are left
            // exactly as the failure left them, for recovery to judge.
            if seg.allocated > seg.end_pos && !failed {
                seg.file
                    .truncate(seg.end_pos)
                    .await
                    .map_err(StorageError::io("truncating", &seg.path))?;
            }
            if let Ok(file) = std::rc::Rc::try_unwrap(seg.file) {
                file.close()
                    .await
                    .map_err(StorageError::io("closing", &seg.path))?;
            }
        }
        Ok(())
    }
}

/// A duration in whole microseconds (saturating).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
