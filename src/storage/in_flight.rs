//! Several chunk writes of one log in flight at once. A chunk write is three steps:
//! [`PartitionLog::begin_write`] places it (its offsets and file position follow the chunks
//! already placed; a roll happens here, only when nothing is in flight),
//! [`PartitionLog::write_placed`] writes it and makes it durable (these may overlap, and
//! complete in any order), and [`PartitionLog::finish_write`], called in placement order,
//! publishes it to readers or refuses it. A single-disk closed loop of one write at a time
//! leaves the device idle between a write's completion and the next one's submission; with
//! several in flight it always has work.
//!
//! The rules that keep this as safe as one write at a time:
//! - a chunk is published (index, hot tail, `next_offset`) and acknowledged only after its own
//!   write completed and, unless the file's writes are durable (O_DSYNC), an fdatasync issued
//!   after that succeeded; publication is in offset order, so readers never see a gap;
//! - a failed write or fdatasync fails the log at once (no chunk is synced or placed after
//!   it); that chunk and every later one are refused, whatever their own outcome (a chunk
//!   whose write completes after the failure, unsynced, is refused too, and so is every one
//!   after it); once the last write in flight is done the segment is cut at the first refused
//!   chunk's position, so recovery never finds a refused chunk behind a hole;
//! - a roll waits for nothing itself: [`PartitionLog::begin_write`] refuses to roll while
//!   writes are in flight ([`StorageError::RollInFlight`]), and the writer drains them first
//!   ([`PartitionLog::needs_roll`]), so the sealed segment is durable before the new one takes
//!   a write.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use super::append::{micros, AppendInfo, EncodedChunk, LogChunk};
use super::chunk::{ChunkHeader, StoredChunk};
use super::error::is_disk_full;
use super::fs::{BrokerFs, FileSystem, SegmentFile};
use super::index::{IndexEntry, FLUSH_EVERY};
use super::log::PartitionLog;
use super::segment::Durability;
use super::tail::HotTail;
use super::StorageError;

/// The log's writes between [`PartitionLog::begin_write`] and [`PartitionLog::finish_write`].
pub(crate) struct WritesInFlight<F: FileSystem> {
    /// Chunks placed and not finished yet.
    count: usize,
    /// Where the next chunk goes while `count > 0`: its start offset and file position.
    end: (i64, u64),
    /// The lowest start offset of a chunk whose write or fdatasync failed (or was not issued
    /// because the log had failed): it and every chunk after it are refused.
    failed_from: Option<i64>,
    /// The first refused chunk's file and position: the segment is cut there once `count`
    /// is back to 0 (no write can then land after the cut).
    cut: Option<(Rc<F::File>, u64, PathBuf)>,
}

impl<F: FileSystem> Default for WritesInFlight<F> {
    fn default() -> Self {
        WritesInFlight {
            count: 0,
            end: (0, 0),
            failed_from: None,
            cut: None,
        }
    }
}

/// A chunk placed by [`PartitionLog::begin_write`]: its offsets and position are fixed.
pub struct PlacedChunk<F: FileSystem = BrokerFs> {
    file: Rc<F::File>,
    buf: Option<<F::File as SegmentFile>::Buf>,
    pos: u64,
    len: usize,
    header: ChunkHeader,
    max_timestamp_us: i64,
    tail_copy: Option<Bytes>,
    path: PathBuf,
    segment: i64,
}

impl<F: FileSystem> PlacedChunk<F> {
    /// The offset of the chunk's first record.
    pub fn start_offset(&self) -> i64 {
        self.header.start_offset
    }
}

/// A chunk whose write (and fdatasync) is done, or failed: for
/// [`PartitionLog::finish_write`].
pub struct WrittenChunk<F: FileSystem = BrokerFs> {
    placed: PlacedChunk<F>,
    /// Microseconds of the write and of the fdatasync, or the failure (already recorded in
    /// the log: `finish_write` refuses the chunk).
    outcome: Result<(u64, Option<u64>), ()>,
}

impl<F: FileSystem> PartitionLog<F> {
    /// Whether `chunk` would not fit in the active segment after the chunks in flight, so
    /// that [`begin_write`](Self::begin_write) must roll: the caller finishes every write in
    /// flight first.
    pub fn needs_roll(&self, chunk: &LogChunk<F>) -> bool {
        let pos = {
            let w = self.writes.borrow();
            if w.count > 0 {
                w.end.1
            } else {
                let st = self.state.borrow();
                st.segments.back().map_or(0, |s| s.end_pos)
            }
        };
        pos > 0 && pos + chunk.len as u64 > self.config.segment_size
    }

    /// Places a chunk from [`encode`](Self::encode) after the chunks already placed (rolling
    /// to a new segment first if it would not fit, which needs nothing in flight). Refuses a
    /// chunk that is not the next one ([`StorageError::OutOfOrder`]), a roll with writes in
    /// flight ([`StorageError::RollInFlight`]), and everything once the log failed.
    pub async fn begin_write(&self, chunk: LogChunk<F>) -> Result<PlacedChunk<F>, StorageError> {
        let placed = self.place(chunk).await;
        if placed.is_err() {
            // Whatever was encoded after what is placed is void: number the next from there.
            let w = self.writes.borrow();
            self.encoded_end.set((w.count > 0).then_some(w.end.0));
        }
        placed
    }

    async fn place(&self, chunk: LogChunk<F>) -> Result<PlacedChunk<F>, StorageError> {
        let EncodedChunk {
            buf,
            len,
            header,
            max_timestamp_us,
            tail_copy,
        } = chunk;
        let (file, next_offset, end_pos) = self.active_end()?;
        let (in_flight, (start, pos)) = {
            let w = self.writes.borrow();
            let end = if w.count > 0 {
                w.end
            } else {
                (next_offset, end_pos)
            };
            (w.count, end)
        };
        if header.start_offset != start {
            return Err(StorageError::OutOfOrder {
                chunk: header.start_offset,
                next: start,
            });
        }
        let (file, pos, path, segment) = if pos > 0 && pos + len as u64 > self.config.segment_size {
            if in_flight > 0 {
                return Err(StorageError::RollInFlight { in_flight });
            }
            let (file, pos, path) = self.roll(start).await?;
            (file, pos, path, start)
        } else {
            let st = self.state.borrow();
            let seg = st.segments.back().expect("the log always has a segment");
            (file, pos, seg.path.clone(), seg.base)
        };
        self.preallocate_for(&file, pos + len as u64).await;
        {
            let mut w = self.writes.borrow_mut();
            w.count += 1;
            w.end = (header.end_offset(), pos + len as u64);
        }
        Ok(PlacedChunk {
            file,
            buf: Some(buf),
            pos,
            len,
            header,
            max_timestamp_us,
            tail_copy,
            path,
            segment,
        })
    }

    /// Writes a placed chunk and makes it durable per [`Durability`]: an fdatasync issued
    /// after its write completed, unless the file's writes are durable. Several may run at
    /// once. A failure fails the log at once (so no later chunk is synced after it, and none
    /// is placed); the chunk is then refused by [`finish_write`](Self::finish_write).
    pub async fn write_placed(&self, mut placed: PlacedChunk<F>) -> WrittenChunk<F> {
        let (pos, len) = (placed.pos, placed.len);
        let file = placed.file.clone();
        let t0 = Instant::now();
        let written = match placed.buf.take() {
            None => Err((false, "written twice".to_string())),
            Some(buf) => match file.write_at(buf, pos).await {
                Ok(n) if n == len => Ok(()),
                Ok(n) => Err((false, format!("short write: {n} of {len} bytes"))),
                Err(e) => Err((is_disk_full(&e), format!("write failed: {e}"))),
            },
        };
        let write_us = micros(t0.elapsed());
        let mut fdatasync_us = None;
        let durable = match written {
            Ok(()) if self.config.durability == Durability::Fsync && !file.writes_are_durable() => {
                if self.state.borrow().failed.is_some() {
                    // An earlier failure: a sync now could succeed where that one failed,
                    // which proves nothing; this chunk is refused anyway.
                    Err((false, "not synced: the log failed meanwhile".to_string()))
                } else {
                    let t1 = Instant::now();
                    let synced = file.fdatasync().await;
                    fdatasync_us = Some(micros(t1.elapsed()));
                    // After a failed fdatasync the page state is unknown: never synced again
                    // and then acknowledged.
                    synced.map_err(|e| (is_disk_full(&e), format!("fdatasync failed: {e}")))
                }
            }
            other => other,
        };
        let outcome = match durable {
            Ok(()) => Ok((write_us, fdatasync_us)),
            Err((disk_full, what)) => {
                let offsets = placed.header.start_offset..placed.header.end_offset();
                {
                    let mut w = self.writes.borrow_mut();
                    let from = w
                        .failed_from
                        .map_or(offsets.start, |f| f.min(offsets.start));
                    w.failed_from = Some(from);
                }
                self.fail(
                    disk_full,
                    format!(
                        "{} at position {pos}: {what} (offsets {offsets:?} not acknowledged; \
                         the partition takes no more writes until it is reopened)",
                        placed.path.display()
                    ),
                );
                Err(())
            }
        };
        WrittenChunk { placed, outcome }
    }

    /// Publishes a written chunk to readers and returns what it became, or refuses it: when
    /// its own write or fdatasync failed, or the log failed meanwhile (then every chunk not
    /// yet published is refused, and once none is in flight the segment is cut at the first
    /// refused one). Must be called in the order the chunks were placed.
    pub async fn finish_write(&self, written: WrittenChunk<F>) -> Result<AppendInfo, StorageError> {
        let WrittenChunk { placed, outcome } = written;
        let end = placed.header.end_offset();
        let remaining = {
            let mut w = self.writes.borrow_mut();
            w.count = w.count.saturating_sub(1);
            w.count
        };
        if remaining == 0 && self.encoded_end.get() == Some(end) {
            self.encoded_end.set(None);
        }
        // Refused: at or after the first chunk that failed, or after the log failed otherwise.
        // A chunk before it whose own write (and fdatasync) succeeded is durable: published.
        let failed_from = self.writes.borrow().failed_from;
        let refused = {
            let st = self.state.borrow();
            let after_failure = failed_from.is_none_or(|f| f <= placed.start_offset());
            match (&st.failed, outcome) {
                (None, Ok(times)) => Ok(times),
                (Some(_), Ok(times)) if !after_failure => Ok(times),
                (Some((reason, disk_full)), _) => Err(StorageError::Failed {
                    reason: reason.clone(),
                    disk_full: *disk_full,
                }),
                // A failed write always fails the log first.
                (None, Err(())) => Err(StorageError::Failed {
                    reason: "write failed".to_string(),
                    disk_full: false,
                }),
            }
        };
        match refused {
            Ok((write_us, fdatasync_us)) => Ok(self.publish(placed, write_us, fdatasync_us).await),
            Err(err) => {
                let cut = {
                    let mut w = self.writes.borrow_mut();
                    if w.cut.is_none() {
                        w.cut = Some((placed.file.clone(), placed.pos, placed.path.clone()));
                    }
                    if remaining == 0 {
                        w.cut.take()
                    } else {
                        None
                    }
                };
                if let Some((file, pos, path)) = cut {
                    self.cut_refused_chunk(&file, pos, &path).await;
                }
                Err(err)
            }
        }
    }

    /// Makes a durable chunk visible: index, time index, segment end, hot tail.
    async fn publish(
        &self,
        placed: PlacedChunk<F>,
        write_us: u64,
        fdatasync_us: Option<u64>,
    ) -> AppendInfo {
        let PlacedChunk {
            pos,
            len,
            header,
            max_timestamp_us,
            tail_copy,
            segment,
            ..
        } = placed;
        let start = header.start_offset;
        let flush = {
            let mut st = self.state.borrow_mut();
            let seg = st
                .segments
                .back_mut()
                .expect("the log always has a segment");
            debug_assert_eq!(seg.next_offset, start);
            debug_assert_eq!(seg.base, segment);
            seg.note_chunk(
                IndexEntry { offset: start, pos },
                header.end_offset(),
                max_timestamp_us,
            );
            seg.end_pos = pos + len as u64;
            seg.next_offset = header.end_offset();
            seg.last_append = SystemTime::now();
            let due = seg.index.pending(&seg.entries) >= FLUSH_EVERY;
            due.then(|| seg.flush_index())
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
        AppendInfo {
            start_offset: start,
            record_count: header.record_count,
            chunk_len: len as u64,
            payload_len: header.length,
            segment,
            write_us,
            fdatasync_us,
        }
    }
}

#[cfg(test)]
#[path = "in_flight_tests.rs"]
mod tests;
