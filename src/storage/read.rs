//! Reads: the durable chunks from an offset on, straight from the segment files (O_DIRECT),
//! as stored (still compressed).

use std::path::PathBuf;
use std::rc::Rc;

use super::chunk::StoredChunk;
use super::chunk::{decode_chunk_records, ChunkHeader, HEADER_LEN};
use super::fs::{FileSystem, SegmentFile};
use super::index::IndexEntry;
use super::log::PartitionLog;
use super::StorageError;
use crate::wire::record::RecordIter;

/// One contiguous file range to read, and the chunks in it.
struct ReadPlan<T> {
    file: Rc<T>,
    path: PathBuf,
    start: u64,
    end: u64,
    entries: Vec<IndexEntry>,
}

impl<F: FileSystem> PartitionLog<F> {
    /// The stored chunks holding offsets `from` and up, in order: the first may start before
    /// `from`. Stops once `max_bytes` of file would be exceeded, but returns at least one chunk
    /// if there is any. Only durable chunks are returned; a chunk whose head CRC fails is
    /// skipped (logged and counted in [`read_skipped_chunks`](Self::read_skipped_chunks)), as
    /// are the offsets recovery found corrupt. An empty result means `from` is at the end.
    ///
    /// Errors with [`StorageError::OffsetBeforeStart`] when retention removed `from`.
    pub async fn read(
        &self,
        from: i64,
        max_bytes: usize,
    ) -> Result<Vec<StoredChunk>, StorageError> {
        if from >= self.start_offset() {
            if let Some(chunks) = self.tail.borrow().read(from, max_bytes) {
                return Ok(chunks);
            }
        }
        let mut cursor = from;
        loop {
            let (chunks, resume) = self.read_once(from, cursor, max_bytes).await?;
            match resume {
                Some(next) if chunks.is_empty() && next > cursor => cursor = next,
                _ => return Ok(chunks),
            }
        }
    }

    /// Reads the chunks planned from `cursor`, keeping those that hold offsets ≥ `from`.
    /// Also returns the offset of the first chunk after the planned ones, if any.
    async fn read_once(
        &self,
        from: i64,
        cursor: i64,
        max_bytes: usize,
    ) -> Result<(Vec<StoredChunk>, Option<i64>), StorageError> {
        let (plans, resume) = self.plan(cursor, max_bytes)?;
        let mut out = Vec::new();
        for plan in plans {
            let data = plan
                .file
                .read_at(plan.start, (plan.end - plan.start) as usize)
                .await
                .map_err(StorageError::io("reading", &plan.path))?;
            for e in &plan.entries {
                let rel = (e.pos - plan.start) as usize;
                let header = match ChunkHeader::parse(data.get(rel..).unwrap_or_default()) {
                    Ok(Some(h)) if h.flags == 0 && h.start_offset == e.offset => h,
                    Ok(Some(h)) => {
                        let why = format!(
                            "flags {:#04x}, start offset {} where the index says {}",
                            h.flags, h.start_offset, e.offset
                        );
                        self.skip(&plan.path, e, &why);
                        continue;
                    }
                    Ok(None) => {
                        self.skip(&plan.path, e, "the file ends inside the header");
                        continue;
                    }
                    Err(err) => {
                        self.skip(&plan.path, e, &err.to_string());
                        continue;
                    }
                };
                let body = rel + HEADER_LEN..rel + header.unpadded_len() as usize;
                if body.end > data.len() {
                    self.skip(&plan.path, e, "the file ends inside the payload");
                    continue;
                }
                if header.end_offset() <= from {
                    continue;
                }
                out.push(StoredChunk {
                    start_offset: header.start_offset,
                    record_count: header.record_count,
                    payload: data.slice(body),
                });
            }
        }
        Ok((out, resume))
    }

    fn skip(&self, path: &std::path::Path, e: &IndexEntry, why: &str) {
        tracing::warn!(path = %path.display(), pos = e.pos, offset = e.offset, reason = why,
            "skipping a chunk that fails its check");
        self.state.borrow_mut().read_skipped += 1;
    }

    /// Which file ranges to read for offsets from `from`, within `max_bytes`.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        from: i64,
        max_bytes: usize,
    ) -> Result<(Vec<ReadPlan<F::File>>, Option<i64>), StorageError> {
        let st = self.state.borrow();
        let start = st.segments.front().map_or(0, |s| s.base);
        if from < start {
            return Err(StorageError::OffsetBeforeStart {
                requested: from,
                start,
            });
        }
        let first_seg = st.segments.partition_point(|s| s.base <= from).max(1) - 1;
        let mut plans = Vec::new();
        let mut used = 0u64;
        for (n, seg) in st.segments.iter().enumerate().skip(first_seg) {
            let first = if n == first_seg {
                seg.entry_for(from).unwrap_or(0)
            } else {
                0
            };
            let mut k = first;
            while k < seg.entries.len() {
                let len = seg.extent_end(k) - seg.entries[k].pos;
                if used > 0 && used + len > max_bytes as u64 {
                    break;
                }
                used += len;
                k += 1;
            }
            if k > first {
                plans.push(ReadPlan {
                    file: seg.file.clone(),
                    path: seg.path.clone(),
                    start: seg.entries[first].pos,
                    end: seg.extent_end(k - 1),
                    entries: seg.entries[first..k].to_vec(),
                });
            }
            if k < seg.entries.len() {
                return Ok((plans, Some(seg.entries[k].offset)));
            }
        }
        Ok((plans, None))
    }

    /// Decodes every stored record from `start_offset()` on into `(offset, timestamp μs,
    /// body)`. For tests and tools: it decompresses everything.
    pub async fn read_all_records(&self) -> Result<Vec<(i64, i64, Vec<u8>)>, StorageError> {
        let mut out = Vec::new();
        let mut from = self.start_offset();
        loop {
            let chunks = self.read(from, 4 << 20).await?;
            let Some(last) = chunks.last() else {
                return Ok(out);
            };
            from = last.end_offset();
            for c in chunks {
                let records = decode_chunk_records(&c.payload)?;
                for (i, r) in RecordIter::new(&records).enumerate() {
                    let r = r.map_err(|e| super::ChunkError::BadRecord(e.to_string()))?;
                    out.push((c.start_offset + i as i64, r.timestamp_us, r.body.to_vec()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Reads on real O_DIRECT files in temporary directories: from the hot tail and the disk,
    //! around a chunk gone bad, during an append.

    use std::time::SystemTime;

    use tempfile::TempDir;

    use crate::rt::block_on;
    use crate::storage::chunk::ALIGNMENT;
    use crate::storage::testing::{batch, config, fill, rng};
    use crate::storage::{log_file_name, LogConfig, PartitionLog};

    #[test]
    fn hot_tail_serves_what_the_disk_holds() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let dir = tmp.path().join("p");
            let cfg = LogConfig {
                tail_bytes: 64 << 10,
                ..config(1 << 20)
            };
            let (log, _) = PartitionLog::open(&dir, cfg).await.unwrap();
            let mut r = rng(7);
            let batches: Vec<_> = (0..40).map(|i| batch(&mut r, i, 20, 200, true)).collect();
            fill(&log, &batches).await;
            assert!(log.hot_tail_bytes() > 0 && log.hot_tail_bytes() <= 64 << 10);
            // The newest chunks come from memory; they are byte for byte the chunks on disk.
            let (disk, _) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            let from = log.next_offset() - 50;
            let hot = log.read(from, 1 << 20).await.unwrap();
            let cold = disk.read(from, 1 << 20).await.unwrap();
            assert!(!hot.is_empty());
            assert_eq!(hot, cold);
            // Older offsets, evicted from the tail, are read from the disk.
            let old = log.read(0, 1 << 20).await.unwrap();
            assert_eq!(old[0].start_offset, 0);
            assert_eq!(old, disk.read(0, 1 << 20).await.unwrap());
        });
    }

    #[test]
    fn reads_skip_a_chunk_whose_header_goes_bad_on_disk() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let dir = tmp.path().to_path_buf();
            let (log, _) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            let mut r = rng(7);
            let batches: Vec<_> = (0..3).map(|i| batch(&mut r, i, 2, 100, false)).collect();
            let all = fill(&log, &batches).await;
            // Chunk 1 (one block each) loses a header bit while the log is open.
            let path = dir.join(log_file_name(0));
            {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all_at(&[0xff], ALIGNMENT + 3).unwrap();
                f.sync_all().unwrap();
            }
            let got = log.read_all_records().await.unwrap();
            assert_eq!(got, [&all[..2], &all[4..]].concat());
            assert_eq!(log.read_skipped_chunks(), 1);
        });
    }

    #[test]
    fn reads_run_while_an_append_is_in_flight() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let (log, _) = PartitionLog::open(tmp.path(), config(2 * ALIGNMENT))
                .await
                .unwrap();
            let mut r = rng(8);
            let first = batch(&mut r, 0, 3, 1000, true);
            log.append(&first).await.unwrap();
            for i in 0..10 {
                let b = batch(&mut r, i, 3, 1000, true);
                let (appended, read) =
                    futures_lite::future::zip(log.append(&b), log.read(0, 1 << 20)).await;
                let appended = appended.unwrap();
                let read = read.unwrap();
                // The read sees durable chunks only: never the one being appended.
                assert!(read.last().unwrap().end_offset() <= appended.start_offset);
                let _ = log.enforce_retention(SystemTime::now()).await.unwrap();
            }
            assert_eq!(log.read_all_records().await.unwrap().len(), 33);
        });
    }
}
