//! Topic layouts on disk: `{data}/{topic}/topic.toml` holds the [`TopicLayout`] fixed when the
//! topic was created; the partitions live beside it in `{data}/{topic}/{gen}_{token}_{range}/`.
//! Shard 0 alone creates topics (so two shards never race to create one with different
//! layouts); every shard reads the existing layouts at start.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::ring::TopicLayout;
use crate::storage::replace::replace_file;
use crate::storage::StorageError;
use crate::wire::startup::validate_topic;

const LAYOUT_FILE: &str = "topic.toml";

/// The directory of a topic.
pub fn topic_dir(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(topic)
}

/// Reads every persisted topic layout under `data_dir`.
pub fn load_all(data_dir: &Path) -> Result<HashMap<String, TopicLayout>, StorageError> {
    let mut out = HashMap::new();
    let list = StorageError::io("list", data_dir);
    let entries = match fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(list(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StorageError::io("list", data_dir))?;
        let name = entry.file_name();
        let Some(topic) = name.to_str() else { continue };
        if validate_topic(topic).is_err() {
            continue;
        }
        let path = entry.path().join(LAYOUT_FILE);
        let bad = |reason: String| StorageError::BadFile {
            path: path.clone(),
            reason,
        };
        match fs::read_to_string(&path) {
            Ok(text) => {
                let layout: TopicLayout =
                    toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
                if layout.partitions() == 0 || layout.ranges_per_token_range > 256 {
                    return Err(bad(format!("invalid layout {layout:?}")));
                }
                out.insert(topic.to_string(), layout);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("read", &path)(e)),
        }
    }
    Ok(out)
}

/// Persists a new topic's layout durably: write a temporary file, fsync it, rename it into
/// place, fsync the directories.
pub fn persist(data_dir: &Path, topic: &str, layout: &TopicLayout) -> Result<(), StorageError> {
    let dir = topic_dir(data_dir, topic);
    fs::create_dir_all(&dir).map_err(StorageError::io("create", &dir))?;
    let text = toml::to_string(layout).map_err(|e| StorageError::BadFile {
        path: dir.join(LAYOUT_FILE),
        reason: e.to_string(),
    })?;
    replace_file(&dir, LAYOUT_FILE, text.as_bytes())
        .map_err(StorageError::io("write", dir.join(LAYOUT_FILE)))?;
    // The topic's directory may be new: make its name durable too.
    fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("sync", data_dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_all(dir.path()).unwrap().is_empty());
        let l = TopicLayout::new(2, 4);
        persist(dir.path(), "orders", &l).unwrap();
        persist(dir.path(), "default", &TopicLayout::new(1, 3)).unwrap();
        fs::create_dir_all(dir.path().join("not-a-topic")).unwrap();
        let all = load_all(dir.path()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["orders"], l);
        fs::write(dir.path().join("orders").join(LAYOUT_FILE), "gen = \"x\"").unwrap();
        let err = load_all(dir.path()).unwrap_err();
        assert!(matches!(err, StorageError::BadFile { .. }), "{err:?}");
        assert!(err.to_string().contains("orders"), "{err}");
    }
}
