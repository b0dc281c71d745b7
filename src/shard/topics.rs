//! Topic layouts on disk: `{data}/{topic}/topic.toml` holds the [`TopicLayout`] fixed when the
//! topic was created (and in cluster mode `cluster-revision`, the etcd revision that created
//! the layout it was opened with); the partitions live beside it in
//! `{data}/{topic}/{gen}_{token}_{range}/`.
//! Shard 0 alone creates topics (so two shards never race to create one with different
//! layouts); every shard reads the existing layouts at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::ring::TopicLayout;
use crate::storage::fs::{replace_file, FileSystem};
use crate::storage::StorageError;
use crate::wire::startup::validate_topic;

const LAYOUT_FILE: &str = "topic.toml";

/// The directory of a topic.
pub fn topic_dir(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(topic)
}

/// What [`load_all`] found in the data directory.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every persisted topic layout, by topic name.
    pub layouts: HashMap<String, TopicLayout>,
    /// The etcd revision each topic opened in cluster mode was created at, by topic name
    /// (topics made on a single host, or before revisions were recorded, have none).
    pub cluster_revisions: HashMap<String, i64>,
    /// Entries that are neither a topic nor the broker's own (`@…`), skipped.
    pub ignored: Vec<Ignored>,
}

/// An entry of the data directory that is not a topic, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub path: PathBuf,
    pub why: &'static str,
}

/// Reads every persisted topic layout under `data_dir`.
///
/// Entries the broker did not create (a stray file, an editor's backup, a directory that is
/// not a topic) are skipped and listed in [`Loaded::ignored`]; names starting with `@` are the
/// broker's own bookkeeping (`@consumer_offsets`, `@lock`; no topic name contains `@`) and are
/// skipped silently. A `topic.toml` that exists but cannot be read or parsed is an error: that
/// file is the broker's own, and a topic without its layout cannot be served. (Names that
/// are not UTF-8 are not listed at all: no topic has one.)
pub async fn load_all<F: FileSystem>(fs: &F, data_dir: &Path) -> Result<Loaded, StorageError> {
    let mut out = Loaded::default();
    let list = StorageError::io("list", data_dir);
    let entries = match fs.list_dir(data_dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(list(e)),
    };
    for entry in entries {
        let dir = data_dir.join(&entry.name);
        let mut ignore = |why| {
            out.ignored.push(Ignored {
                path: dir.clone(),
                why,
            })
        };
        let topic = entry.name.as_str();
        if topic.starts_with('@') {
            continue;
        }
        // Follows a symbolic link: a topic's directory may be one.
        match fs.metadata(&dir).await {
            Ok(m) if m.is_dir => {}
            Ok(_) => {
                ignore("not a directory");
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ignore("a dangling symbolic link");
                continue;
            }
            Err(e) => return Err(StorageError::io("stat", &dir)(e)),
        }
        if validate_topic(topic).is_err() {
            ignore("not a valid topic name");
            continue;
        }
        let path = dir.join(LAYOUT_FILE);
        let bad = |reason: String| StorageError::BadFile {
            path: path.clone(),
            reason,
        };
        match fs.read_file(&path).await {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
                let layout = decode_layout(&text).map_err(|e| bad(e.to_string()))?;
                out.layouts.insert(topic.to_string(), layout);
                if let Some(revision) = decode_cluster_revision(&text) {
                    out.cluster_revisions.insert(topic.to_string(), revision);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // An empty one is harmless (creating the topic fills it); one that holds
                // something is worth a word.
                let empty = fs
                    .list_dir(&dir)
                    .await
                    .map_err(StorageError::io("list", &dir))?
                    .is_empty();
                if !empty {
                    ignore("a directory without topic.toml");
                }
            }
            Err(e) => return Err(StorageError::io("read", &path)(e)),
        }
    }
    out.ignored.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The most partitions a layout on disk may have: what the largest broker (1024 shards of
/// 256 partitions each) can create. A file asking for more is not the broker's.
pub const MAX_LAYOUT_PARTITIONS: u32 = 1024 * 256;

/// Why a `topic.toml` was refused.
#[derive(Debug, thiserror::Error)]
pub enum LayoutFileError {
    #[error("{0}")]
    Toml(String),
    #[error("invalid layout {0:?}: {1}")]
    Invalid(TopicLayout, &'static str),
}

/// Decodes and checks the text of a `topic.toml`.
pub fn decode_layout(text: &str) -> Result<TopicLayout, LayoutFileError> {
    let layout: TopicLayout =
        toml::from_str(text).map_err(|e| LayoutFileError::Toml(e.message().to_string()))?;
    let invalid = |why| Err(LayoutFileError::Invalid(layout, why));
    if layout.ranges_per_token_range == 0 || layout.ranges_per_token_range > 256 {
        return invalid("ranges-per-token-range must be 1 to 256");
    }
    match layout
        .token_ranges
        .checked_mul(layout.ranges_per_token_range)
    {
        Some(1..=MAX_LAYOUT_PARTITIONS) => Ok(layout),
        _ => invalid("a topic has 1 to 262144 partitions"),
    }
}

/// The `cluster-revision` of a `topic.toml` (already decoded as a layout), if it has a valid
/// one.
pub fn decode_cluster_revision(text: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct ClusterMark {
        cluster_revision: Option<i64>,
    }
    toml::from_str::<ClusterMark>(text)
        .ok()?
        .cluster_revision
        .filter(|r| *r > 0)
}

/// Persists a new topic's layout durably (with `cluster_revision`, in cluster mode: the etcd
/// revision that created the layout): write a temporary file, fsync it, rename it into place,
/// fsync the directories.
pub async fn persist<F: FileSystem>(
    fs: &F,
    data_dir: &Path,
    topic: &str,
    layout: &TopicLayout,
    cluster_revision: Option<i64>,
) -> Result<(), StorageError> {
    let dir = topic_dir(data_dir, topic);
    fs.create_dir_all(&dir)
        .await
        .map_err(StorageError::io("create", &dir))?;
    let mut text = toml::to_string(layout).map_err(|e| StorageError::BadFile {
        path: dir.join(LAYOUT_FILE),
        reason: e.to_string(),
    })?;
    if let Some(revision) = cluster_revision {
        text.push_str(&format!("cluster-revision = {revision}\n"));
    }
    replace_file(fs, &dir, LAYOUT_FILE, text.as_bytes())
        .await
        .map_err(StorageError::io("write", dir.join(LAYOUT_FILE)))?;
    // The topic's directory may be new: make its name durable too.
    fs.sync_dir(data_dir)
        .await
        .map_err(StorageError::io("sync", data_dir))?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;

    use super::*;
    use crate::rt::block_on_reused;
    use crate::rt::fs::RealFs;

    // The layouts on the real file system, run to completion (these tests only drive them).
    pub(crate) fn load_all(data_dir: &Path) -> Result<Loaded, StorageError> {
        block_on_reused(super::load_all(&RealFs::default(), data_dir))
    }
    pub(crate) fn persist(dir: &Path, topic: &str, l: &TopicLayout) -> Result<(), StorageError> {
        block_on_reused(super::persist(&RealFs::default(), dir, topic, l, None))
    }

    #[test]
    fn persist_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_all(dir.path()).unwrap().layouts.is_empty());
        let l = TopicLayout::new(2, 4);
        persist(dir.path(), "orders", &l).unwrap();
        persist(dir.path(), "default", &TopicLayout::new(1, 3)).unwrap();
        fs::create_dir_all(dir.path().join("not-a-topic")).unwrap();
        let all = load_all(dir.path()).unwrap().layouts;
        assert_eq!(all.len(), 2);
        assert_eq!(all["orders"], l);
        fs::write(dir.path().join("orders").join(LAYOUT_FILE), "gen = \"x\"").unwrap();
        let err = load_all(dir.path()).unwrap_err();
        assert!(matches!(err, StorageError::BadFile { .. }), "{err:?}");
        assert!(err.to_string().contains("orders"), "{err}");
    }

    #[test]
    fn a_cluster_revision_is_kept_beside_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let l = TopicLayout::new(3, 4);
        let persisted = block_on_reused(super::persist(
            &RealFs::default(),
            dir.path(),
            "clustered",
            &l,
            Some(42),
        ));
        persisted.unwrap();
        persist(dir.path(), "local", &l).unwrap();
        let loaded = load_all(dir.path()).unwrap();
        assert_eq!(loaded.layouts["clustered"], l);
        assert_eq!(loaded.layouts["local"], l);
        assert_eq!(loaded.cluster_revisions.get("clustered"), Some(&42));
        assert_eq!(loaded.cluster_revisions.get("local"), None);
        // Hand-made values that are not a revision are none.
        for bad in [
            "cluster-revision = -3",
            "cluster-revision = \"7\"",
            "cluster-revision = 0",
        ] {
            let text = format!("gen = 1\ntoken-ranges = 1\nranges-per-token-range = 1\n{bad}\n");
            assert_eq!(decode_layout(&text).unwrap(), TopicLayout::new(1, 1));
            assert_eq!(decode_cluster_revision(&text), None, "{bad}");
        }
    }

    /// Found by the `topic_layout` fuzz target: the partition count of a hand-made file
    /// overflowed (a panic in debug builds, a wrapped count in release ones).
    #[test]
    fn layouts_with_impossible_partition_counts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (token_ranges, ranges) in [(4_294_967_295u64, 2u64), (65_536, 65_536), (1 << 20, 1)] {
            fs::create_dir_all(d.join("t")).unwrap();
            let text = format!(
                "gen = 1\ntoken-ranges = {token_ranges}\nranges-per-token-range = {ranges}\n"
            );
            fs::write(d.join("t").join(LAYOUT_FILE), &text).unwrap();
            let err = load_all(d).unwrap_err();
            assert!(
                matches!(err, StorageError::BadFile { .. }),
                "{text}: {err:?}"
            );
        }
        let ok = "gen = 1\ntoken-ranges = 1024\nranges-per-token-range = 256\n";
        assert_eq!(
            decode_layout(ok).unwrap().partitions(),
            MAX_LAYOUT_PARTITIONS
        );
    }

    #[test]
    fn skips_what_is_not_a_topic() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let l = TopicLayout::new(2, 4);
        persist(d, "orders", &l).unwrap();
        // The broker's own: skipped without a word.
        fs::write(d.join("@lock"), "1234\n").unwrap();
        fs::create_dir(d.join("@consumer_offsets")).unwrap();
        // Strays.
        fs::write(d.join("notes.txt"), "x").unwrap();
        fs::write(d.join("orders2"), "").unwrap();
        fs::create_dir(d.join("backup~")).unwrap();
        fs::write(d.join("backup~").join(LAYOUT_FILE), "not toml [").unwrap();
        fs::create_dir(d.join("leftover")).unwrap();
        fs::write(d.join("leftover").join("README"), "x").unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling")).unwrap();
        // A topic's directory without its layout, empty: not worth a word.
        fs::create_dir(d.join("empty")).unwrap();

        let loaded = load_all(d).unwrap();
        assert_eq!(loaded.layouts.len(), 1);
        assert_eq!(loaded.layouts["orders"], l);
        let ignored: Vec<(String, &str)> = loaded
            .ignored
            .iter()
            .map(|i| (i.path.file_name().unwrap().to_string_lossy().into(), i.why))
            .collect();
        assert_eq!(
            ignored,
            [
                ("backup~".into(), "not a valid topic name"),
                ("dangling".into(), "a dangling symbolic link"),
                ("leftover".into(), "a directory without topic.toml"),
                ("notes.txt".into(), "not a directory"),
                ("orders2".into(), "not a directory"),
            ]
        );

        // A topic directory behind a symbolic link is still a topic.
        let elsewhere = tempfile::tempdir().unwrap();
        persist(elsewhere.path(), "linked", &l).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("linked"), d.join("linked")).unwrap();
        assert_eq!(load_all(d).unwrap().layouts["linked"], l);
    }
}
