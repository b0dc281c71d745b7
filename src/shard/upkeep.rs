//! A shard's background work: retention, the free-space check that protects the disk, and
//! closing the partitions at shutdown.

use crate::storage::fs::FileSystem;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::rt;

use super::{ProduceError, Shard};

/// How often retention runs while the disk has room.
const RETENTION_PERIOD: Duration = Duration::from_secs(30);
/// How often free space is checked.
const DISK_CHECK_PERIOD: Duration = Duration::from_secs(1);

impl Shard {
    /// Refuses writes, retryably, while the shard stops or the disk is nearly full.
    pub(super) fn check_writable(&self) -> Result<(), ProduceError> {
        if self.lifecycle.is_stopping() {
            return Err(ProduceError::ShuttingDown);
        }
        if let Some(full) = self.disk_low.borrow().as_ref() {
            return Err(full.clone());
        }
        Ok(())
    }

    /// Runs retention over every partition this shard owns.
    async fn enforce_retention(&self) {
        for t in self.topic_states() {
            for w in t.owned() {
                let now = SystemTime::now();
                // A closed partition is opened only when its files show work to do.
                let log = match w.log() {
                    Some(log) => log,
                    None => {
                        if !w.retention_due_while_closed(now).await {
                            rt::yield_if_needed().await;
                            continue;
                        }
                        match w.open().await {
                            Ok(log) => log,
                            Err(e) => {
                                tracing::warn!(topic = %t.name, partition = w.partition,
                                    error = %e, "cannot open the partition for retention");
                                continue;
                            }
                        }
                    }
                };
                let result = log.enforce_retention(now).await;
                if let Ok(r) = &result {
                    t.metrics
                        .retention_deleted(r.segments_removed as u64, r.bytes_removed);
                }
                match result {
                    Ok(r) if r.segments_removed > 0 => tracing::info!(
                        topic = %t.name,
                        partition = w.partition,
                        segments = r.segments_removed,
                        bytes = r.bytes_removed,
                        "retention deleted segments"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(topic = %t.name, partition = w.partition, error = %e, "retention failed")
                    }
                }
            }
        }
    }

    pub(super) async fn retention_loop(self: Rc<Self>) {
        if self.config.retention_age.is_none() && self.config.retention_bytes.is_none() {
            return;
        }
        let mut last = Instant::now();
        while !self.lifecycle.is_stopping() {
            rt::sleep(DISK_CHECK_PERIOD).await;
            // Retention runs more often while the disk is low, so space comes back soon.
            if last.elapsed() >= RETENTION_PERIOD || self.disk_low.borrow().is_some() {
                self.enforce_retention().await;
                last = Instant::now();
            }
        }
    }

    /// Checks the data directory's free space every second; below `--min-free-space`,
    /// produce requests are refused with a retryable error until space comes back.
    pub(super) async fn disk_space_loop(self: Rc<Self>) {
        let min = self.config.min_free_space;
        if min == 0 {
            return;
        }
        while !self.lifecycle.is_stopping() {
            let low = match self.fs.free_space(&self.config.data_dir).await {
                Ok(free) if free < min => Some(ProduceError::DiskFull { free, min }),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read free disk space");
                    None
                }
            };
            let was_low = self.disk_low.borrow().is_some();
            if low.is_some() != was_low && self.id == 0 {
                match &low {
                    Some(why) => tracing::warn!(
                        data_dir = %self.config.data_dir.display(),
                        "refusing writes: {why}"
                    ),
                    None => tracing::info!("disk space is back; accepting writes again"),
                }
            }
            *self.disk_low.borrow_mut() = low;
            rt::sleep(DISK_CHECK_PERIOD).await;
        }
    }

    /// Once a second, closes the least recently used idle logs while the shard's open files
    /// exceed `--max-open-files` (a log busy when the bound was passed may be idle now).
    pub(super) async fn open_files_loop(self: Rc<Self>) {
        while !self.lifecycle.is_stopping() {
            rt::sleep(DISK_CHECK_PERIOD).await;
            self.files.make_room(None);
        }
    }

    /// Graceful shutdown, after the servers have stopped: lets every partition writer finish
    /// the chunks it has queued, then writes the indexes out. (The control plane flushes its
    /// own state, e.g. committed offsets, after this.)
    pub async fn close(&self) {
        for t in self.topic_states() {
            for w in t.owned() {
                w.stop_appends().await;
                w.wait_closed().await;
                if let Some(log) = w.log() {
                    if let Err(e) = log.close_clean().await {
                        tracing::warn!(topic = %t.name, partition = w.partition, error = %e,
                            "could not close the partition cleanly; the next start checks it fully");
                    }
                }
            }
        }
    }
}
