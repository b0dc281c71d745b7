//! Durable committed offsets: one small file per group, `{data-dir}/@consumer_offsets/{group}.offsets`.
//! The directory name holds `@`, which topic names may not contain, so it can never be a
//! topic's directory (and the topic loader skips it). Group names follow the topic rules, so
//! they are safe file names.
//!
//! A file is rewritten whole on every commit that changes it: write `{group}.offsets.tmp`,
//! fsync it, rename it over the old file, fsync the directory. A crash leaves either the old
//! or the new file, never a mix; a leftover `.tmp` is deleted at load. Groups hold few
//! partitions and commits are rare next to produces, so rewriting beats an append-only log
//! that would need compaction.
//!
//! ```text
//! magic "SLCO" | version u8 (1) | count u32 | (topic len u8 | topic | partition u32 | offset i64)* | crc32 u32
//! ```
//!
//! The CRC (IEEE) covers every byte before it. A file that fails it refuses start-up with one
//! clear line rather than silently resetting a group.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::storage::replace::replace_file;
use crate::storage::StorageError;

use super::assign::PartitionKey;
use crate::wire::consumer::validate_group;

/// The directory under the data directory; `@` keeps it out of the topic namespace.
pub const OFFSETS_DIR: &str = "@consumer_offsets";
const MAGIC: &[u8; 4] = b"SLCO";
const VERSION: u8 = 1;
const SUFFIX: &str = ".offsets";

/// One group's committed offsets.
pub type GroupOffsets = BTreeMap<PartitionKey, i64>;

/// The offsets directory of a data directory.
pub fn offsets_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(OFFSETS_DIR)
}

/// Encodes a group's offsets file.
pub fn encode(offsets: &GroupOffsets) -> Vec<u8> {
    let mut b = Vec::with_capacity(13 + offsets.len() * 24);
    b.extend_from_slice(MAGIC);
    b.push(VERSION);
    b.extend_from_slice(&(offsets.len() as u32).to_be_bytes());
    for ((topic, j), off) in offsets {
        let t = &topic.as_bytes()[..topic.len().min(255)];
        b.push(t.len() as u8);
        b.extend_from_slice(t);
        b.extend_from_slice(&j.to_be_bytes());
        b.extend_from_slice(&off.to_be_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

/// Why an offsets file does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OffsetsFileError {
    #[error("not a shardlog offsets file (bad magic or too short)")]
    NotOffsets,
    #[error("checksum mismatch")]
    Checksum,
    #[error("unsupported version {0}")]
    Version(u8),
    #[error("truncated entry")]
    Truncated,
    #[error("topic is not UTF-8")]
    NotUtf8,
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Decodes a group's offsets file.
pub fn decode(b: &[u8]) -> Result<GroupOffsets, OffsetsFileError> {
    if b.len() < 13 || &b[..4] != MAGIC {
        return Err(OffsetsFileError::NotOffsets);
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != crc {
        return Err(OffsetsFileError::Checksum);
    }
    if body[4] != VERSION {
        return Err(OffsetsFileError::Version(body[4]));
    }
    let count = u32::from_be_bytes([body[5], body[6], body[7], body[8]]);
    let mut pos = 9;
    let mut take = |n: usize| -> Result<&[u8], OffsetsFileError> {
        let s = body.get(pos..pos + n).ok_or(OffsetsFileError::Truncated)?;
        pos += n;
        Ok(s)
    };
    let mut out = GroupOffsets::new();
    for _ in 0..count {
        let len = take(1)?[0] as usize;
        let topic = std::str::from_utf8(take(len)?)
            .map_err(|_| OffsetsFileError::NotUtf8)?
            .to_string();
        let mut j = [0; 4];
        j.copy_from_slice(take(4)?);
        let mut off = [0; 8];
        off.copy_from_slice(take(8)?);
        out.insert((topic, u32::from_be_bytes(j)), i64::from_be_bytes(off));
    }
    if pos != body.len() {
        return Err(OffsetsFileError::Trailing(body.len() - pos));
    }
    Ok(out)
}

/// Loads every group's offsets from `dir` (missing directory = none).
pub fn load_all(dir: &Path) -> Result<HashMap<String, GroupOffsets>, StorageError> {
    let mut out = HashMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StorageError::io("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StorageError::io("list", dir))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.ends_with(".tmp") {
            // A save that did not reach its rename: the previous file is still in place.
            let _ = fs::remove_file(&path);
            continue;
        }
        let Some(group) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if validate_group(group).is_err() {
            continue;
        }
        let bytes = fs::read(&path).map_err(StorageError::io("read", &path))?;
        let offsets = decode(&bytes).map_err(|e| StorageError::BadFile {
            path: path.clone(),
            reason: format!(
                "consumer offsets file is damaged ({e}); move it away to reset group '{group}'"
            ),
        })?;
        out.insert(group.to_string(), offsets);
    }
    Ok(out)
}

/// Durably replaces `group`'s offsets file: tmp + fsync + rename + directory fsync. Blocking:
/// run it off the reactor.
pub fn save(dir: &Path, group: &str, offsets: &GroupOffsets) -> Result<(), StorageError> {
    let fresh = !dir.exists();
    fs::create_dir_all(dir).map_err(StorageError::io("create", dir))?;
    if fresh {
        if let Some(parent) = dir.parent() {
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(StorageError::io("sync", parent))?;
        }
    }
    let file = format!("{group}{SUFFIX}");
    replace_file(dir, &file, &encode(offsets)).map_err(StorageError::io("write", dir.join(file)))
}

/// Where a position must actually point given the log's available range `[start, end)`: never
/// before the earliest available offset, never past the end.
pub fn clamp(offset: i64, start: i64, end: i64) -> i64 {
    offset.min(end).max(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GroupOffsets {
        [
            (("a".to_string(), 0), 5),
            (("a".to_string(), 7), 0),
            (("bb".to_string(), 1), 1 << 40),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn encode_decode_and_corruption() {
        let b = encode(&sample());
        assert_eq!(decode(&b).unwrap(), sample());
        assert_eq!(decode(&encode(&GroupOffsets::new())).unwrap().len(), 0);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err());
        }
    }

    #[test]
    fn save_and_load_all() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = offsets_dir(tmp.path());
        assert!(load_all(&dir).unwrap().is_empty());
        save(&dir, "g1", &sample()).unwrap();
        let mut later = sample();
        later.insert(("a".into(), 0), 9);
        save(&dir, "g1", &later).unwrap();
        save(&dir, "g-2", &GroupOffsets::new()).unwrap();
        fs::write(dir.join("g3.offsets.tmp"), b"half").unwrap();
        fs::write(dir.join("README"), b"ignored").unwrap();
        let all = load_all(&dir).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["g1"][&("a".to_string(), 0)], 9);
        assert!(!dir.join("g3.offsets.tmp").exists());
        fs::write(dir.join("g1.offsets"), b"SLCO garbage").unwrap();
        let err = load_all(&dir).unwrap_err().to_string();
        assert!(err.contains("g1") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn the_directory_is_never_a_topic() {
        assert!(crate::wire::startup::validate_topic(OFFSETS_DIR).is_err());
    }

    #[test]
    fn clamping() {
        assert_eq!(clamp(5, 0, 10), 5);
        assert_eq!(clamp(50, 0, 10), 10);
        assert_eq!(clamp(2, 4, 10), 4);
        assert_eq!(clamp(0, 0, 0), 0);
    }
}
