//! The on-disk half of deleting a topic, and every file operation it makes. Deleting must be
//! safe against a crash at any moment, and a topic may hold many large segment files, so the
//! topic's directory is first renamed to a tombstone, `{data}/@deleted.{unique}`, and the data
//! directory fsynced: that rename is the moment the topic is gone. Its files are then removed
//! in the background. After a crash, the topic is either still whole (the rename did not
//! reach the disk) or gone (a tombstone, perhaps half removed, is left): the topic loader
//! skips names starting with `@`, and shard 0 removes leftover tombstones at start.
//!
//! Every operation goes through the shard's [`FileSystem`] (removing a tree runs on the
//! blocking pool there).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::topics::topic_dir;
use crate::rt;
use crate::storage::fs::FileSystem;
use crate::storage::StorageError;

/// What a tombstone's name starts with (`@`: never a topic name, skipped by the loader).
pub const PREFIX: &str = "@deleted.";

/// Tombstones made by this process, so two in one nanosecond still get distinct names.
static BURIED: AtomicU64 = AtomicU64::new(0);

/// Renames `topic`'s directory to a new tombstone and makes the rename durable (fsync of the
/// data directory). Returns the tombstone, or `None` when the topic had no directory.
pub async fn bury<F: FileSystem>(
    fs: &F,
    data_dir: &Path,
    topic: &str,
) -> Result<Option<PathBuf>, StorageError> {
    let from = topic_dir(data_dir, topic);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = BURIED.fetch_add(1, Ordering::Relaxed);
    let to = data_dir.join(format!("{PREFIX}{nanos:x}.{n}"));
    match fs.rename(&from, &to).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("rename", &from)(e)),
    }
    fs.sync_dir(data_dir)
        .await
        .map_err(StorageError::io("sync", data_dir))?;
    Ok(Some(to))
}

/// The tombstones in the data directory.
pub async fn list<F: FileSystem>(fs: &F, data_dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let entries = match fs.list_dir(data_dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("list", data_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        if entry.name.starts_with(PREFIX) {
            out.push(data_dir.join(entry.name));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes one tombstone and everything under it (a half-removed one too).
pub async fn remove<F: FileSystem>(fs: &F, tombstone: &Path) -> Result<(), StorageError> {
    match fs.remove_dir_all(tombstone).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", tombstone)(e)),
    }
}

/// Removes every tombstone in the data directory; returns how many there were.
pub async fn remove_all<F: FileSystem>(fs: &F, data_dir: &Path) -> Result<usize, StorageError> {
    let all = list(fs, data_dir).await?;
    for t in &all {
        remove(fs, t).await?;
    }
    Ok(all.len())
}

/// Removes `tombstone` in a task of its own; a failure is logged (the next start tries
/// again).
pub fn remove_later<F: FileSystem>(fs: &F, tombstone: PathBuf) {
    let fs = fs.clone();
    rt::spawn_detached(async move {
        if let Err(e) = remove(&fs, &tombstone).await {
            tracing::warn!(path = %tombstone.display(), error = %e,
                "cannot remove a deleted topic's files; the next start tries again");
        }
    });
}

/// At start: removes the tombstones a crash left, in a task of its own.
pub fn remove_in_background<F: FileSystem>(fs: &F, data_dir: &Path) {
    let (fs, dir) = (fs.clone(), data_dir.to_path_buf());
    rt::spawn_detached(async move {
        match remove_all(&fs, &dir).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tombstones = n, "removed the files of deleted topics"),
            Err(e) => tracing::warn!(error = %e, "cannot remove the files of deleted topics"),
        }
    });
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::ring::TopicLayout;
    use crate::rt::block_on_reused;
    use crate::rt::fs::RealFs;
    use crate::shard::topics::tests::{load_all, persist};

    // Run to completion on the real file system (these tests only drive them).
    fn bury(data: &Path, topic: &str) -> Result<Option<PathBuf>, StorageError> {
        block_on_reused(super::bury(&RealFs::default(), data, topic))
    }
    fn list(data: &Path) -> Result<Vec<PathBuf>, StorageError> {
        block_on_reused(super::list(&RealFs::default(), data))
    }
    fn remove(tombstone: &Path) -> Result<(), StorageError> {
        block_on_reused(super::remove(&RealFs::default(), tombstone))
    }
    fn remove_all(data: &Path) -> Result<usize, StorageError> {
        block_on_reused(super::remove_all(&RealFs::default(), data))
    }

    /// A topic with a partition directory holding a file, as the broker lays it out.
    fn topic_with_data(data: &Path, name: &str) {
        persist(data, name, &TopicLayout::new(1, 2)).unwrap();
        let p = topic_dir(data, name).join("1_0_0");
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("00000000000000000000.log"), vec![7u8; 4096]).unwrap();
    }

    #[test]
    fn a_buried_topic_is_gone_at_once_and_its_tombstone_is_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        topic_with_data(d, "orders");
        topic_with_data(d, "kept");
        let t = bury(d, "orders").unwrap().expect("a tombstone");
        assert!(t.file_name().unwrap().to_string_lossy().starts_with(PREFIX));
        assert!(!topic_dir(d, "orders").exists());
        // A crash here: the loader sees no trace of the topic, and says nothing about it.
        let loaded = load_all(d).unwrap();
        assert_eq!(loaded.layouts.keys().collect::<Vec<_>>(), ["kept"]);
        assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
        // Created again under the same name before the restart's clean-up: a new topic.
        topic_with_data(d, "orders");
        // A second tombstone, half removed when the crash came.
        let half = bury(d, "orders").unwrap().unwrap();
        fs::remove_file(half.join("topic.toml")).unwrap();
        topic_with_data(d, "orders");
        assert_eq!(list(d).unwrap().len(), 2);

        // The restart's clean-up.
        assert_eq!(remove_all(d).unwrap(), 2);
        assert!(list(d).unwrap().is_empty());
        assert!(!t.exists() && !half.exists());
        let loaded = load_all(d).unwrap();
        assert_eq!(loaded.layouts.len(), 2, "the live topics stay");
        assert!(topic_dir(d, "orders").join("1_0_0").exists());
        assert_eq!(remove_all(d).unwrap(), 0);
    }

    #[test]
    fn burying_a_topic_without_a_directory_is_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(bury(dir.path(), "absent").unwrap(), None);
        assert!(list(dir.path()).unwrap().is_empty());
        assert!(list(&dir.path().join("missing")).unwrap().is_empty());
        remove(&dir.path().join("@deleted.gone")).unwrap();
    }
}
