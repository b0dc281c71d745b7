//! The write path of [`PartitionLog`]: an append is [`PartitionLog::encode`] (compress and
//! number a chunk, on the CPU) then [`PartitionLog::write_chunk`] (write it, make it durable,
//! publish it), so the writer can compress the next chunk while the previous one is written.
//! Also preallocation, rolling to a new segment and failing the log.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::chunk::StoredChunk;
use super::chunk::{ChunkEncoder, ChunkHeader, RecordBatch, ALIGNMENT, HEADER_LEN};
use super::error::is_disk_full;
use super::fs::BrokerFs;
use super::fs::{DmaBuf, FileSystem, SegmentFile};
use super::index::{IndexEntry, FLUSH_EVERY};
use super::log::PartitionLog;
use super::segment::create_segment;
use super::segment::Durability;
use super::tail::HotTail;
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
    /// Microseconds its `fdatasync` took (`None` with [`Durability::Write`]).
    pub fdatasync_us: Option<u64>,
}

/// A chunk compressed and numbered by [`PartitionLog::encode`], waiting for
/// [`PartitionLog::write_chunk`]: its aligned buffer, ready to write, and a copy of its payload
/// for the hot tail.
pub struct EncodedChunk<B> {
    buf: B,
    len: usize,
    header: ChunkHeader,
    /// The newest record timestamp (μs), for the time index.
    max_timestamp_us: i64,
    tail_copy: Option<Bytes>,
}

impl<B> EncodedChunk<B> {
    /// The offset of the chunk's first record.
    pub fn start_offset(&self) -> i64 {
        self.header.start_offset
    }
}

/// The chunk [`PartitionLog::encode`] returns for a log on the file system `F`.
pub type LogChunk<F = BrokerFs> = EncodedChunk<<<F as FileSystem>::File as SegmentFile>::Buf>;

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

impl<F: FileSystem> PartitionLog<F> {
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
        let (file, next_offset, _) = self.active_end()?;
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
            max_timestamp_us: batch.max_timestamp_us(),
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
            max_timestamp_us,
            tail_copy,
        } = chunk;
        let (file, start, end_pos) = self.active_end()?;
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
        let written = match file.write_at(buf, pos).await {
            Ok(n) if n == len => Ok(()),
            Ok(n) => Err((false, format!("short write: {n} of {len} bytes"))),
            Err(e) => Err((is_disk_full(&e), format!("write failed: {e}"))),
        };
        let write_us = micros(t0.elapsed());
        let mut fdatasync_us = None;
        let durable = match written {
            Ok(()) if self.config.durability == Durability::Fsync && !file.writes_are_durable() => {
                let t1 = Instant::now();
                let synced = file.fdatasync().await;
                fdatasync_us = Some(micros(t1.elapsed()));
                // After a failed fdatasync the page state is unknown: never synced again and
                // then acknowledged.
                synced.map_err(|e| (is_disk_full(&e), format!("fdatasync failed: {e}")))
            }
            other => other,
        };
        if let Err((disk_full, what)) = durable {
            let err = self.fail(
                disk_full,
                format!(
                    "{} at position {pos}: {what} (offsets {offsets:?} not acknowledged; the \
                     partition takes no more writes until it is reopened)",
                    path.display()
                ),
            );
            self.cut_refused_chunk(&file, pos, &path).await;
            return Err(err);
        }
        let (flush, base) = {
            let mut st = self.state.borrow_mut();
            let seg = st
                .segments
                .back_mut()
                .expect("the log always has a segment");
            debug_assert_eq!(seg.next_offset, start);
            seg.note_chunk(
                IndexEntry { offset: start, pos },
                header.end_offset(),
                max_timestamp_us,
            );
            seg.end_pos = pos + len as u64;
            seg.next_offset = header.end_offset();
            seg.last_append = SystemTime::now();
            let due = seg.index.pending(&seg.entries) >= FLUSH_EVERY;
            (due.then(|| seg.flush_index()), seg.base)
        };
        if let Some(payload) = tail_copy {
            // O(1) amortized: may drop the oldest chunks of other logs on the shard.
            HotTail::push(
                &self.tail,
                StoredChunk {
                    start_offset: start,
                    record_count: header.record_count,
                    payload,
                },
            );
        }
        // After the chunk is visible: the index is a cache, its write only delays the reply.
        if let Some(flush) = flush {
            flush.run(&self.fs).await;
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

    /// The active segment's file, the next offset and the write position, or
    /// [`StorageError::Failed`] once the log refuses writes.
    fn active_end(&self) -> Result<(std::rc::Rc<F::File>, i64, u64), StorageError> {
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
    async fn cut_refused_chunk(&self, file: &F::File, pos: u64, path: &std::path::Path) {
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
    fn fail(&self, disk_full: bool, reason: String) -> StorageError {
        tracing::error!(dir = %self.dir.display(), %reason, disk_full, "partition log failed");
        let mut st = self.state.borrow_mut();
        let (reason, disk_full) = st.failed.get_or_insert((reason, disk_full)).clone();
        StorageError::Failed { reason, disk_full }
    }
}

/// A duration in whole microseconds (saturating).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "append_tests.rs"]
mod tests;
