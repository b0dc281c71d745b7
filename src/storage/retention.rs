//! Retention: whole closed segments are deleted, oldest first, by age and by total size.

use std::path::Path;
use std::time::SystemTime;

use super::fs::{FileSystem, SegmentFile};
use super::log::{LogConfig, PartitionLog};
use super::recovery::list_segments;
use super::segment::log_file_name;
use super::StorageError;

/// Whether [`PartitionLog::enforce_retention`] would remove a segment of the log in `dir`
/// if it were open, judged from the segment files' names, sizes and mtimes without opening
/// them. A log closed to bound the open files is opened for retention only when this says
/// there is work. Errors count as "no": the next open's retention run settles it.
pub async fn retention_due<F: FileSystem>(
    fs: &F,
    dir: &Path,
    config: &LogConfig,
    now: SystemTime,
) -> bool {
    if config.retention_age.is_none() && config.retention_bytes.is_none() {
        return false;
    }
    let Ok(bases) = list_segments(fs, dir).await else {
        return false;
    };
    if bases.len() < 2 {
        return false;
    }
    if let Some(age) = config.retention_age {
        let oldest = fs.metadata(&dir.join(log_file_name(bases[0]))).await.ok();
        let elapsed = oldest.and_then(|m| now.duration_since(m.modified).ok());
        if elapsed.is_some_and(|elapsed| elapsed > age) {
            return true;
        }
    }
    if let Some(max) = config.retention_bytes {
        let mut total = 0u64;
        for &b in &bases {
            let meta = fs.metadata(&dir.join(log_file_name(b))).await;
            total += meta.map_or(0, |m| m.len);
            if total > max {
                return true;
            }
        }
    }
    false
}

/// The pause between two steps of giving a removed segment's space back.
pub const RECLAIM_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// What [`PartitionLog::enforce_retention`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_removed: usize,
    pub bytes_removed: u64,
    /// The earliest stored offset afterwards.
    pub start_offset: i64,
}

impl<F: FileSystem> PartitionLog<F> {
    /// Deletes closed segments, oldest first, while the oldest one's last append is more than
    /// `retention_age` before `now`, or while all segments together take more than
    /// `retention_bytes`. The active segment is never deleted.
    ///
    /// A segment's last append time is the wall-clock time of its last append in this run, or
    /// the segment file's mtime for segments found at open (a closed segment's mtime is the
    /// time of its last write; record timestamps are producer clocks and are not trusted).
    ///
    /// A segment leaves the log (and reads) before its files are removed; reads already under
    /// way keep their open handle. The index file goes first, so a crash in between leaves a
    /// segment without an index, which the next open rebuilds.
    pub async fn enforce_retention(
        &self,
        now: SystemTime,
    ) -> Result<RetentionReport, StorageError> {
        let mut report = RetentionReport::default();
        loop {
            let seg = {
                let mut st = self.state.borrow_mut();
                if st.segments.len() < 2 {
                    break;
                }
                let total: u64 = st.segments.iter().map(|s| s.end_pos).sum();
                let oldest = st.segments.front().expect("two segments");
                let too_old = self.config.retention_age.is_some_and(|age| {
                    now.duration_since(oldest.last_append)
                        .is_ok_and(|elapsed| elapsed > age)
                });
                let too_big = self.config.retention_bytes.is_some_and(|max| total > max);
                if !(too_old || too_big) {
                    break;
                }
                st.segments.pop_front().expect("two segments")
            };
            tracing::info!(path = %seg.path.display(), bytes = seg.end_pos,
                end_offset = seg.next_offset, "retention removes a segment");
            report.segments_removed += 1;
            report.bytes_removed += seg.end_pos;
            for index in [seg.index.path(), seg.time_file.path()] {
                if let Err(e) = self.fs.remove_file(index).await {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(StorageError::io("removing", index)(e));
                    }
                }
            }
            self.shrink_gently(&seg.file, &seg.path).await;
            self.fs
                .remove_file(&seg.path)
                .await
                .map_err(StorageError::io("removing", &seg.path))?;
            if let Ok(file) = std::rc::Rc::try_unwrap(seg.file) {
                // Closed here rather than dropped, so the last close is not left to the
                // reactor at an arbitrary moment.
                let _ = file.close().await;
            }
        }
        report.start_offset = self.start_offset();
        Ok(report)
    }

    /// Gives a removed segment's blocks back a step at a time before it is unlinked. Freeing
    /// a whole 256 MiB segment at once (ext4 mounted with `discard`, as many VMs are) stalled
    /// every O_DSYNC append behind it for up to 0.8 s; freeing `reclaim_step` at a time with
    /// a pause between spreads that cost out, as RocksDB's rate-limited deletes do for the
    /// same reason. Skipped when a read still holds the file (it would see the file shrink
    /// under it); a failure just leaves the rest to the unlink.
    async fn shrink_gently(&self, file: &std::rc::Rc<F::File>, path: &std::path::Path) {
        let step = self.config.reclaim_step;
        if std::rc::Rc::strong_count(file) > 1 || step == 0 {
            return;
        }
        let Ok(mut size) = file.file_size().await else {
            return;
        };
        while size > step {
            size -= step;
            if let Err(e) = file.truncate(size).await {
                tracing::debug!(path = %path.display(), error = %e, "stepwise truncate failed");
                return;
            }
            crate::rt::sleep(RECLAIM_PAUSE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Retention on real O_DIRECT files in temporary directories.

    use std::time::{Duration, SystemTime};

    use tempfile::TempDir;

    use crate::rt::block_on;
    use crate::rt::fs::RealFs;
    use crate::storage::chunk::ALIGNMENT;
    use crate::storage::testing::{batch, config, files, fill, rng, FaultyFs};
    use crate::storage::{PartitionLog, StorageError};

    /// A closed log's files say whether retention has work, without opening the log.
    #[test]
    fn retention_due_reads_the_files_of_a_closed_log() {
        use crate::rt::block_on_reused;
        use crate::storage::log_file_name;
        use crate::storage::{retention_due, LogConfig};
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        let mut cfg = config(1 << 20);
        cfg.retention_age = Some(Duration::from_secs(3600));
        cfg.retention_bytes = Some(1 << 20);
        let now = SystemTime::now();
        let fs = RealFs::default();
        let due = |cfg: &LogConfig, at| block_on_reused(retention_due(&fs, dir, cfg, at));
        std::fs::write(dir.join(log_file_name(0)), vec![0u8; 4096]).unwrap();
        assert!(!due(&cfg, now), "one segment: never");
        std::fs::write(dir.join(log_file_name(9)), vec![0u8; 4096]).unwrap();
        assert!(!due(&cfg, now), "young and small");
        let later = now + Duration::from_secs(7200);
        assert!(due(&cfg, later), "the oldest is too old");
        std::fs::write(dir.join(log_file_name(9)), vec![0u8; 2 << 20]).unwrap();
        assert!(due(&cfg, now), "too big");
        let none = LogConfig {
            retention_age: None,
            retention_bytes: None,
            ..cfg
        };
        assert!(!due(&none, later), "no retention");
    }

    #[test]
    fn retention_by_bytes_and_by_age_removes_old_segments_only() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let dir = tmp.path().to_path_buf();
            let mut cfg = config(2 * ALIGNMENT);
            cfg.retention_bytes = Some(5 * ALIGNMENT);
            let (log, _) = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
            let mut r = rng(6);
            let batches: Vec<_> = (0..10).map(|i| batch(&mut r, i, 2, 900, true)).collect();
            let all = fill(&log, &batches).await;
            let before = files(&dir, ".log").len();
            assert_eq!(before, 5);
            let rep = log.enforce_retention(SystemTime::now()).await.unwrap();
            assert_eq!(
                (rep.segments_removed, rep.bytes_removed),
                (3, 6 * ALIGNMENT)
            );
            assert_eq!(rep.start_offset, 12);
            assert_eq!(log.start_offset(), 12);
            assert_eq!(files(&dir, ".log").len(), 2);
            assert_eq!(files(&dir, ".index").len(), 2);
            assert!(matches!(
                log.read(0, 1 << 20).await,
                Err(StorageError::OffsetBeforeStart {
                    requested: 0,
                    start: 12
                })
            ));
            assert_eq!(log.read_all_records().await.unwrap(), all[12..]);
            log.close().await.unwrap();

            cfg.retention_bytes = None;
            cfg.retention_age = Some(Duration::from_secs(3600));
            let (log, report) = PartitionLog::open(&dir, cfg).await.unwrap();
            assert_eq!(log.start_offset(), 12);
            assert_eq!(report.next_offset, 20);
            let now = SystemTime::now();
            assert_eq!(
                log.enforce_retention(now).await.unwrap().segments_removed,
                0
            );
            let later = now + Duration::from_secs(7200);
            let rep = log.enforce_retention(later).await.unwrap();
            assert_eq!((rep.segments_removed, rep.start_offset), (1, 16));
            // The active segment stays, and appends go on.
            assert_eq!(
                log.enforce_retention(later).await.unwrap().segments_removed,
                0
            );
            log.append(&batch(&mut r, 0, 1, 1, false)).await.unwrap();
            assert_eq!(log.read_all_records().await.unwrap().len(), 5);
        });
    }

    #[test]
    fn retention_gives_a_removed_segment_back_in_steps() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let dir = tmp.path().to_path_buf();
            let fs = FaultyFs::new(RealFs {
                durable_writes: true,
            });
            let faults = fs.faults.clone();
            let mut cfg = config(64 * ALIGNMENT);
            cfg.reclaim_step = 16 * ALIGNMENT;
            let (log, _) = PartitionLog::open_with(fs.clone(), &dir, cfg.clone())
                .await
                .unwrap();
            let mut r = rng(9);
            // About 60 KiB of incompressible records per chunk: a segment holds 4 of them.
            let batches: Vec<_> = (0..12).map(|i| batch(&mut r, i, 60, 1000, true)).collect();
            let all = fill(&log, &batches).await;
            log.close().await.unwrap();
            let segments = files(&dir, ".log");
            assert!(segments.len() >= 3, "{segments:?}");
            let sizes: Vec<u64> = segments
                .iter()
                .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
                .collect();

            // Over the limit by exactly the oldest segment.
            cfg.retention_bytes = Some(sizes[1..].iter().sum());
            let (log, _) = PartitionLog::open_with(fs, &dir, cfg).await.unwrap();
            let before = faults.truncates().len();
            let rep = log.enforce_retention(SystemTime::now()).await.unwrap();
            assert_eq!(rep.segments_removed, 1);
            let expect: Vec<u64> = (1..)
                .map_while(|k| sizes[0].checked_sub(k * 16 * ALIGNMENT))
                .take_while(|&s| s > 0)
                .collect();
            assert!(!expect.is_empty());
            assert_eq!(faults.truncates()[before..], expect, "one step at a time");
            assert!(!dir.join(&segments[0]).exists());
            let start = log.start_offset() as usize;
            assert!(start > 0);
            assert_eq!(log.read_all_records().await.unwrap(), all[start..]);
        });
    }
}
