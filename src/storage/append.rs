//! The write path of [`PartitionLog`]: an append is [`PartitionLog::encode`] (compress and
//! number a chunk, on the CPU) then [`PartitionLog::write_chunk`] (write it, make it durable,
//! publish it), so the writer can compress the next chunk while the previous one is written.
//! Also preallocation, rolling to a new segment and failing the log.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use super::chunk::{ChunkEncoder, ChunkHeader, RecordBatch, ALIGNMENT, HEADER_LEN};
use super::error::is_disk_full;
use super::fs::BrokerFs;
use super::fs::{DmaBuf, FileSystem, SegmentFile};
use super::log::PartitionLog;
use super::segment::create_segment;
use super::StorageError;

/// How much segment space is allocated ahead of the appends.
const PREALLOCATE_STEP: u64 = 8 << 20;

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
    /// Microseconds its `fdatasync` took (`None` with `Durability::Write`).
    pub fdatasync_us: Option<u64>,
}

/// A chunk compressed and numbered by [`PartitionLog::encode`], waiting for
/// [`PartitionLog::write_chunk`]: its aligned buffer, ready to write, and a copy of its payload
/// for the hot tail.
pub struct EncodedChunk<B> {
    pub(super) buf: B,
    pub(super) len: usize,
    pub(super) header: ChunkHeader,
    /// The newest record timestamp (μs), for the time index.
    pub(super) max_timestamp_us: i64,
    pub(super) tail_copy: Option<Bytes>,
}

impl<B> EncodedChunk<B> {
    /// The offset of the chunk's first record.
    pub fn start_offset(&self) -> i64 {
        self.header.start_offset
    }
}

/// The chunk [`PartitionLog::encode`] returns for a log on the file system `F`.
pub type LogChunk<F = BrokerFs> = EncodedChunk<<<F as FileSystem>::File as SegmentFile>::Buf>;

impl<F: FileSystem> PartitionLog<F> {
    /// Compresses `batch` into one chunk, writes it at the end of the active segment (rolling
    /// first if it would not fit), makes it durable per [`Durability`](super::segment::Durability), and only then makes it
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
        let (file, next_offset, _) = self.active_end()?;
        let start = self.encoded_end.get().unwrap_or(next_offset);
        let mut buf = file.alloc_buf(ChunkEncoder::max_encoded_len_of(batch));
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
            max_timestamp_us: batch.max_timestamp_us(),
            tail_copy,
        })
    }

    /// Writes a chunk from [`encode`](Self::encode) at the end of the active segment (rolling
    /// first if it would not fit), makes it durable per [`Durability`](super::segment::Durability), and only then makes it
    /// visible to readers and returns: one write at a time, the three steps of `in_flight.rs`
    /// in a row. Errors as for [`append`](Self::append); a chunk that is not the next one
    /// (written out of order) is refused with [`StorageError::OutOfOrder`].
    pub async fn write_chunk(&self, chunk: LogChunk<F>) -> Result<AppendInfo, StorageError> {
        let placed = self.begin_write(chunk).await?;
        let written = self.write_placed(placed).await;
        self.finish_write(written).await
    }

    /// The active segment's file, the next offset and the write position, or
    /// [`StorageError::Failed`] once the log refuses writes.
    pub(super) fn active_end(&self) -> Result<(std::rc::Rc<F::File>, i64, u64), StorageError> {
        let st = self.state.borrow();
        if let Some((reason, disk_full)) = &st.failed {
            return Err(StorageError::Failed {
                reason: reason.clone(),
                disk_full: *disk_full,
            });
        }
        let seg = st.segments.back().expect("the log always has a segment");
        Ok((seg.file.clone(), seg.next_offset, seg.end_pos))
    }

    /// Makes sure the active segment's blocks are allocated up to `end`, growing the
    /// allocation [`PREALLOCATE_STEP`] at a time (never past the segment size unless one chunk
    /// needs it). Writes into allocated blocks do not extend the file, so io_uring can issue
    /// them directly instead of handing them to a kernel worker thread; measured, that takes
    /// the write path off the shard's core. A failed allocation is only logged: the write
    /// itself then reports any real problem.
    pub(super) async fn preallocate_for(&self, file: &F::File, end: u64) {
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
    pub(super) async fn roll(
        &self,
        base: i64,
    ) -> Result<(std::rc::Rc<F::File>, u64, PathBuf), StorageError> {
        let (old, old_path, end_pos, allocated, flush) = {
            let mut st = self.state.borrow_mut();
            let seg = st
                .segments
                .back_mut()
                .expect("the log always has a segment");
            (
                seg.file.clone(),
                seg.path.clone(),
                seg.end_pos,
                seg.allocated,
                seg.seal_index(),
            )
        };
        flush.run(&self.fs).await;
        // A sealed segment ends exactly after its last chunk: give back the preallocation.
        if allocated > end_pos {
            if let Err(e) = old.truncate(end_pos).await {
                return Err(self.fail(
                    is_disk_full(&e),
                    format!(
                        "truncating {} while sealing it failed: {e}",
                        old_path.display()
                    ),
                ));
            }
        }
        if let Err(e) = old.fdatasync().await {
            return Err(self.fail(
                is_disk_full(&e),
                format!(
                    "fdatasync of {} while sealing it failed: {e}",
                    old_path.display()
                ),
            ));
        }
        let seg = match create_segment(&self.fs, &self.dir, base, self.config.durability).await {
            Ok(s) => s,
            Err(e) => {
                let full = e.is_disk_full();
                return Err(self.fail(full, format!("could not start a new segment: {e}")));
            }
        };
        let out = (seg.file.clone(), 0, seg.path.clone());
        tracing::info!(sealed = %old_path.display(), new = %seg.path.display(), "segment rolled");
        self.state.borrow_mut().segments.push_back(seg);
        Ok(out)
    }

    /// Cuts the segment back to `pos`, the start of a chunk whose write or fdatasync failed,
    /// and makes the cut durable: the chunk was refused, so it must not reappear when recovery
    /// finds it whole on disk (a short write can hold all of a small chunk's bytes, a failed
    /// fdatasync can leave them in the page cache). Not a retry: the log has failed already.
    /// If the cut fails too, recovery decides what of the chunk is on disk.
    pub(super) async fn cut_refused_chunk(&self, file: &F::File, pos: u64, path: &std::path::Path) {
        let cut = async {
            file.truncate(pos).await?;
            file.fdatasync().await
        };
        if let Err(e) = cut.await {
            tracing::error!(path = %path.display(), pos, error = %e, "could not cut a refused chunk off its segment");
        }
    }

    /// Marks the log failed (the first reason wins) and returns the error for the caller;
    /// `disk_full` when the failing call said the file system is full.
    pub(super) fn fail(&self, disk_full: bool, reason: String) -> StorageError {
        tracing::error!(dir = %self.dir.display(), %reason, disk_full, "partition log failed");
        let mut st = self.state.borrow_mut();
        let (reason, disk_full) = st.failed.get_or_insert((reason, disk_full)).clone();
        StorageError::Failed { reason, disk_full }
    }
}

/// A duration in whole microseconds (saturating).
pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "append_tests.rs"]
mod tests;
