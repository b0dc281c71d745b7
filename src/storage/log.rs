//! [`PartitionLog`]: one partition's segments, appended by one writer, read by many. Its
//! state, opening and closing live here; appends in `append.rs`, reads in `read.rs`,
//! retention in `retention.rs`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::chunk::{ChunkEncoder, ALIGNMENT};
use super::clean;
use super::fs::BrokerFs;
use super::fs::{FileSystem, SegmentFile};
use super::in_flight::WritesInFlight;
use super::recovery::{list_segments, open_segment, RecoveryReport};
use super::segment::{create_segment, Durability, Segment};
use super::tail::{HotTail, TailBudget};
use super::StorageError;
use crate::rt::fs::RealFs;

/// A partition log's settings. The broker builds it from its configuration
/// (`Config::log_config`), where every default is declared; storage has no defaults of its own.
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
    /// Bytes of the newest compressed chunks kept in memory for readers (the hot tail): the
    /// log's own budget, or, for a log opened with [`PartitionLog::open_sharing`], whether it
    /// keeps a hot tail at all (`0`: no) — the shared budget then bounds it.
    pub tail_bytes: usize,
    /// How much of a segment retention gives back to the file system at once (see
    /// `PartitionLog::enforce_retention`).
    pub reclaim_step: u64,
}

impl LogConfig {
    /// How much of a removed segment retention gives back to the file system at once.
    pub const RECLAIM_STEP: u64 = 16 << 20;
}

pub(crate) struct LogState<F: FileSystem> {
    /// Oldest first; never empty; the back one is the active segment.
    pub segments: VecDeque<Segment<F>>,
    /// Why the log refuses writes, once it does: the reason, and whether it was the disk
    /// being full.
    pub failed: Option<(String, bool)>,
    /// Chunks skipped by reads because their header failed its CRC.
    pub read_skipped: u64,
}

/// The log of one partition. `!Send`: it lives on its shard.
///
/// Appends come from ONE writer task (the shard's group-commit writer), which encodes chunks
/// and places, writes and finishes them in order, several writes possibly in flight at once
/// (`in_flight.rs`); reads and retention may run concurrently with an append. No `RefCell` borrow is held
/// across an `.await`.
pub struct PartitionLog<F: FileSystem = BrokerFs> {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) fs: F,
    pub(crate) state: RefCell<LogState<F>>,
    /// Shared with the other logs on this shard ([`ChunkEncoder::for_this_thread`]).
    pub(crate) encoder: Rc<RefCell<ChunkEncoder>>,
    /// Chunk writes placed and not finished (see `in_flight.rs`).
    pub(crate) writes: RefCell<WritesInFlight<F>>,
    /// The end offset of the newest chunk encoded but not yet written: the next chunk is
    /// numbered from here.
    pub(crate) encoded_end: Cell<Option<i64>>,
    /// The newest chunks, in memory (see [`super::tail`]), charged to the shard's budget.
    pub(crate) tail: Rc<RefCell<HotTail>>,
}

impl PartitionLog<BrokerFs> {
    /// Opens (creating if needed) the log in `dir` on the real file system, and recovers it.
    pub async fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        let fs = BrokerFs::Real(RealFs {
            durable_writes: config.durability == Durability::Fsync,
        });
        PartitionLog::open_with(fs, dir, config).await
    }

    /// Opens the log like [`open`](Self::open), its hot tail sharing `budget` with the other
    /// logs of the shard (`config.tail_bytes` then only says whether the log keeps one).
    pub async fn open_sharing(
        dir: impl AsRef<Path>,
        config: LogConfig,
        budget: Rc<TailBudget>,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        let fs = BrokerFs::Real(RealFs {
            durable_writes: config.durability == Durability::Fsync,
        });
        PartitionLog::open_in(fs, dir, config, budget).await
    }
}

impl<F: FileSystem> PartitionLog<F> {
    /// Opens the log in `dir` on the file system `fs`, and recovers it; its hot tail has a
    /// budget of its own, `config.tail_bytes`.
    pub async fn open_with(
        fs: F,
        dir: impl AsRef<Path>,
        config: LogConfig,
    ) -> Result<(PartitionLog<F>, RecoveryReport), StorageError> {
        let budget = TailBudget::new(config.tail_bytes);
        PartitionLog::open_in(fs, dir, config, budget).await
    }

    /// Opens the log in `dir` on the file system `fs`, and recovers it; its hot tail is
    /// charged to `budget`.
    pub async fn open_in(
        fs: F,
        dir: impl AsRef<Path>,
        config: LogConfig,
        budget: Rc<TailBudget>,
    ) -> Result<(PartitionLog<F>, RecoveryReport), StorageError> {
        let dir = dir.as_ref().to_path_buf();
        if config.segment_size < ALIGNMENT {
            return Err(StorageError::Config(format!(
                "segment_size {} is smaller than the chunk alignment {ALIGNMENT}",
                config.segment_size
            )));
        }
        let encoder = ChunkEncoder::for_this_thread(config.zstd_level)?;
        create_dir_durably(&fs, &dir)
            .await
            .map_err(StorageError::io("creating", &dir))?;
        let mut report = RecoveryReport::default();
        let mut segments = VecDeque::new();
        let clean = clean::take_marker(&fs, &dir).await?;
        if clean.is_some() {
            // The marker is gone for good before anything is appended: a crash from now on
            // gets the full check.
            fs.sync_dir(&dir)
                .await
                .map_err(StorageError::io("syncing the directory", &dir))?;
        }
        let bases = list_segments(&fs, &dir).await?;
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let marker = clean.filter(|_| last);
            let seg = open_segment(&fs, &dir, base, last, marker, &mut report).await?;
            if let Some(prev) = segments.back().map(|s: &Segment<F>| s.next_offset) {
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
        // Sealed segments' indexes are complete: their files need not stay open.
        let sealed = segments.len() - 1;
        for seg in segments.iter_mut().take(sealed) {
            seg.seal_index().run(&fs).await;
        }
        report.segments = segments.len();
        report.next_offset = segments.back().map_or(0, |s| s.next_offset);
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
            writes: RefCell::default(),
            encoded_end: Cell::new(None),
            tail: Rc::new(RefCell::new(HotTail::new(budget))),
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
        self.state
            .borrow()
            .failed
            .as_ref()
            .map(|(reason, _)| reason.clone())
    }

    /// Segment files, the active one included.
    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// Descriptors the log holds: one per segment, and the indexes being written.
    pub fn open_files(&self) -> usize {
        self.state
            .borrow()
            .segments
            .iter()
            .map(|s| s.open_files())
            .sum()
    }

    /// Bytes in the segment files (chunks and their padding; indexes not counted).
    pub fn disk_bytes(&self) -> u64 {
        self.state.borrow().segments.iter().map(|s| s.end_pos).sum()
    }

    /// Chunks reads have skipped because their head CRC failed.
    pub fn read_skipped_chunks(&self) -> u64 {
        self.state.borrow().read_skipped
    }

    /// Graceful close: writes every pending index entry, makes the active segment durable and
    /// leaves the clean-shutdown marker (the `clean` file of `storage/clean.rs`), so the next open checks
    /// without decompressing. Appending after this is a bug. A failed log leaves no marker.
    pub async fn close_clean(&self) -> Result<(), StorageError> {
        let (file, end, allocated, flushes) = {
            let mut st = self.state.borrow_mut();
            if st.failed.is_some() {
                return Ok(());
            }
            let flushes: Vec<_> = st.segments.iter_mut().map(|s| s.finish_index()).collect();
            let seg = st.segments.back().expect("the log always has a segment");
            let end = clean::CleanEnd {
                next_offset: seg.next_offset,
                end_pos: seg.end_pos,
            };
            (seg.file.clone(), end, seg.allocated, flushes)
        };
        for flush in flushes {
            flush.run(&self.fs).await;
        }
        // Files at rest end exactly after their last chunk.
        if allocated > end.end_pos {
            file.truncate(end.end_pos)
                .await
                .map_err(StorageError::io("truncating", &self.dir))?;
        }
        file.fdatasync()
            .await
            .map_err(StorageError::io("syncing", &self.dir))?;
        clean::write_marker(&self.fs, &self.dir, end).await
    }

    /// Writes pending index entries and closes the files.
    pub async fn close(self) -> Result<(), StorageError> {
        let (mut segments, failed) = {
            let mut st = self.state.borrow_mut();
            (std::mem::take(&mut st.segments), st.failed.is_some())
        };
        for seg in segments.iter_mut() {
            seg.seal_index().run(&self.fs).await;
        }
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

/// Creates `dir` and its missing parents, and makes their names durable: a directory's name
/// lives in its parent, which the sync of `dir` after a segment is created does not cover,
/// so without this a power cut could take a new partition's directory, and every
/// acknowledged chunk in it, away.
async fn create_dir_durably<F: FileSystem>(fs: &F, dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if fs.metadata(d).await.is_ok() {
            break;
        }
        missing.push(d);
        at = d.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir).await?;
    for d in missing {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Opening, reopening and closing a log, on real O_DIRECT files in temporary directories.

    use tempfile::TempDir;

    use crate::rt::block_on;
    use crate::storage::testing::{batch, config, files, fill, records_of, rng};
    use crate::storage::PartitionLog;

    #[test]
    fn append_read_reopen() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let dir = tmp.path().join("topic/1_0_0");
            let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            assert_eq!((report.segments, report.next_offset), (1, 0));
            let mut r = rng(1);
            let batches: Vec<_> = (0..20)
                .map(|i| batch(&mut r, i * 100, 1 + (i as u32 * 7) % 30, 50, i % 3 == 0))
                .collect();
            let all = fill(&log, &batches).await;
            assert_eq!(log.read_all_records().await.unwrap(), all);
            // A read from the middle of a chunk starts with that chunk.
            let mid = all[all.len() / 2].0;
            let chunks = log.read(mid, 1).await.unwrap();
            assert_eq!(chunks.len(), 1);
            assert!(chunks[0].start_offset <= mid && mid < chunks[0].end_offset());
            assert!(log
                .read(log.next_offset(), 1 << 20)
                .await
                .unwrap()
                .is_empty());
            log.close().await.unwrap();
            assert_eq!(files(&dir, ".log"), vec!["00000000000000000000.log"]);

            let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            assert_eq!(report.chunks_verified, 20);
            assert_eq!(report.next_offset, all.last().unwrap().0 + 1);
            assert_eq!(
                (
                    report.torn_bytes_cut,
                    report.corrupt_chunks,
                    report.index_rebuilt
                ),
                (0, 0, 0)
            );
            assert_eq!(log.read_all_records().await.unwrap(), all);
            let more = batch(&mut r, 0, 3, 10, false);
            let at = log.next_offset();
            log.append(&more).await.unwrap();
            let mut all = all;
            all.extend(records_of(at, &more));
            assert_eq!(log.read_all_records().await.unwrap(), all);
        });
    }

    #[test]
    fn clean_close_skips_the_payload_check_once() {
        block_on(async {
            let tmp = TempDir::new().unwrap();
            let dir = tmp.path().join("p");
            let (log, _) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            let mut r = rng(3);
            let batches: Vec<_> = (0..5).map(|i| batch(&mut r, i, 10, 100, false)).collect();
            let all = fill(&log, &batches).await;
            log.close_clean().await.unwrap();
            drop(log);
            assert!(dir.join("clean").exists());
            let (log, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            assert!(report.clean_shutdown, "{report:?}");
            assert!(!dir.join("clean").exists(), "the marker is used once");
            assert_eq!(report.next_offset, 50);
            assert_eq!(log.read_all_records().await.unwrap(), all);
            // After a crash (no close_clean) the next open does the full check again.
            log.append(&batch(&mut r, 9, 3, 10, false)).await.unwrap();
            drop(log);
            let (_, report) = PartitionLog::open(&dir, config(1 << 20)).await.unwrap();
            assert!(!report.clean_shutdown);
            assert_eq!(report.chunks_verified, 6);
        });
    }
}
