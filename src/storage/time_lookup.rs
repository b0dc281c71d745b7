//! Reading by time: the first offset whose record timestamp is at or after a given time, found
//! through the segments' time indexes ([`super::time_index`]) and one read of the stretch of
//! chunks they point at.

use super::chunk::{max_decoded_len, MAX_FRAME_LIMIT};
use super::fs::FileSystem;
use super::log::PartitionLog;
use super::timestamps::scan_timestamps;
use super::StorageError;

/// Bytes of chunks read at a time while searching a stretch.
const STRETCH_READ: usize = 1 << 20;

impl<F: FileSystem> PartitionLog<F> {
    /// The first offset whose record timestamp is ≥ `t_us` (μs since the epoch), in offset
    /// order: with timestamps that go backwards, records after it may be older than `t_us`.
    /// The log's next offset when every stored record is older; the first stored offset when
    /// `t_us` is before them all. A binary search of the first segment whose newest record is
    /// recent enough, then a read of the one stretch of chunks its time index points at.
    pub async fn offset_for_time(&self, t_us: i64) -> Result<i64, StorageError> {
        let stretch = {
            let st = self.state.borrow();
            st.segments.iter().find_map(|seg| {
                let first = seg.entries.first().map_or(seg.base, |e| e.offset);
                seg.time.stretch_for(t_us, first)
            })
        };
        let Some((from, to)) = stretch else {
            return Ok(self.next_offset());
        };
        // Retention may have removed the stretch since: start at what is left.
        let mut cursor = from.max(self.start_offset());
        while cursor < to {
            let chunks = self.read(cursor, STRETCH_READ).await?;
            let Some(last) = chunks.last() else {
                break;
            };
            let next = last.end_offset();
            for c in &chunks {
                // Streamed: only the timestamps are needed, never the records.
                let limit = max_decoded_len(Some(c.record_count), MAX_FRAME_LIMIT);
                let mut found = None;
                scan_timestamps(&c.payload, c.record_count, limit, &mut |i, t| {
                    let offset = c.start_offset + i64::from(i);
                    if offset >= cursor && t >= t_us {
                        found = Some(offset);
                    }
                    found.is_some()
                })?;
                if let Some(offset) = found {
                    return Ok(offset);
                }
            }
            cursor = next;
        }
        // The index said the stretch holds such a record and it does not (the index is a
        // cache of what the chunks hold): the stretch's end is the best answer left.
        Ok(to.min(self.next_offset()))
    }
}

#[cfg(test)]
mod tests {
    //! Lookups by time on real O_DIRECT files: several segments, clocks going backwards,
    //! reopening after the time index files were deleted or cut.

    use tempfile::TempDir;

    use crate::rt::block_on;
    use crate::storage::testing::{config, files};
    use crate::storage::{PartitionLog, RecordBuf};

    /// A chunk of `n` records all stamped `ts`, bodies of `size` bytes.
    fn stamped(ts: &[i64], size: usize) -> RecordBuf {
        let mut b = RecordBuf::default();
        for &t in ts {
            b.push(t, &vec![b'x'; size]);
        }
        b
    }

    /// The answer by brute force: the first record (in offset order) at or after `t`.
    fn expected(all: &[(i64, i64, Vec<u8>)], t: i64, next: i64) -> i64 {
        all.iter().find(|r| r.1 >= t).map_or(next, |r| r.0)
    }

    /// Chunks of 3 records; timestamps mostly rising, with a step back in the middle of the log
    /// and one inside a chunk. Segments of 3 blocks, so the log spans several.
    async fn fill(log: &PartitionLog) {
        let mut t = 1_000;
        for i in 0..30 {
            if i == 12 {
                t -= 500; // the clock steps back
            }
            let ts = [t, t + 10, if i == 20 { t - 300 } else { t + 20 }];
            log.append(&stamped(&ts, 1500)).await.unwrap();
            t += 100;
        }
    }

    async fn check_all(log: &PartitionLog) {
        let all = log.read_all_records().await.unwrap();
        let next = log.next_offset();
        for t in (0..5_000).step_by(7) {
            assert_eq!(
                log.offset_for_time(t).await.unwrap(),
                expected(&all, t, next),
                "t = {t}"
            );
        }
        assert_eq!(log.offset_for_time(i64::MIN).await.unwrap(), 0);
        assert_eq!(log.offset_for_time(i64::MAX).await.unwrap(), next);
    }

    #[test]
    fn finds_the_first_record_at_or_after_a_time_even_when_clocks_step_back() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let dir = tmp.path().join("p");
            let (log, _) = PartitionLog::open(&dir, config(3 * 4096)).await.unwrap();
            assert_eq!(log.offset_for_time(0).await.unwrap(), 0, "an empty log");
            fill(&log).await;
            assert!(log.segment_count() > 3);
            check_all(&log).await;
            log.close().await.unwrap();
            assert_eq!(
                files(&dir, ".timeindex").len(),
                files(&dir, ".log").len(),
                "one time index per segment"
            );
            let (log, report) = PartitionLog::open(&dir, config(3 * 4096)).await.unwrap();
            assert!(report.time_index_rebuilt <= 1, "{report:?}");
            check_all(&log).await;
        });
    }

    #[test]
    fn deleted_or_truncated_time_indexes_are_rebuilt_at_open() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let dir = tmp.path().join("p");
            let (log, _) = PartitionLog::open(&dir, config(3 * 4096)).await.unwrap();
            fill(&log).await;
            log.close_clean().await.unwrap();
            drop(log);
            let (log, report) = PartitionLog::open(&dir, config(3 * 4096)).await.unwrap();
            assert!(report.clean_shutdown);
            assert_eq!(report.time_index_rebuilt, 0, "{report:?}");
            let stored: Vec<_> = files(&dir, ".timeindex")
                .iter()
                .map(|f| std::fs::read(dir.join(f)).unwrap())
                .collect();
            log.close_clean().await.unwrap();
            drop(log);
            // Delete one, cut one in the middle of an entry, fill one with garbage.
            let names = files(&dir, ".timeindex");
            assert!(names.len() >= 4);
            std::fs::remove_file(dir.join(&names[0])).unwrap();
            std::fs::write(dir.join(&names[1]), &stored[1][..stored[1].len() - 5]).unwrap();
            std::fs::write(dir.join(&names[2]), vec![0xa5; 48]).unwrap();
            let last = names.last().unwrap();
            std::fs::write(dir.join(last), []).unwrap();
            let (log, report) = PartitionLog::open(&dir, config(3 * 4096)).await.unwrap();
            assert!(report.clean_shutdown);
            assert_eq!(report.time_index_rebuilt, 4, "{report:?}");
            check_all(&log).await;
            log.close_clean().await.unwrap();
            drop(log);
            let rebuilt: Vec<_> = files(&dir, ".timeindex")
                .iter()
                .map(|f| std::fs::read(dir.join(f)).unwrap())
                .collect();
            assert_eq!(rebuilt, stored, "rebuilt byte for byte");
        });
    }

    #[test]
    fn retention_removes_a_segment_with_its_time_index() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let dir = tmp.path().join("p");
            let cfg = crate::storage::LogConfig {
                retention_bytes: Some(6 * 4096),
                ..config(3 * 4096)
            };
            let (log, _) = PartitionLog::open(&dir, cfg).await.unwrap();
            fill(&log).await;
            let before = files(&dir, ".timeindex").len();
            let report = log
                .enforce_retention(std::time::SystemTime::now())
                .await
                .unwrap();
            assert!(report.segments_removed > 0);
            assert_eq!(
                files(&dir, ".timeindex").len(),
                before - report.segments_removed as usize
            );
            // A time before the first retained record gives the first retained offset.
            assert_eq!(log.offset_for_time(0).await.unwrap(), log.start_offset());
            check_all_from(&log).await;
        });
    }

    async fn check_all_from(log: &PartitionLog) {
        let all = log.read_all_records().await.unwrap();
        let next = log.next_offset();
        for t in (0..5_000).step_by(13) {
            let want = expected(&all, t, next);
            assert_eq!(log.offset_for_time(t).await.unwrap(), want, "t = {t}");
        }
    }
}
