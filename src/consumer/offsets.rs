//! Durable committed offsets: one small file per group under `{data-dir}/@consumer_offsets/`.
//! The directory name holds `@`, which topic names may not contain, so it can never be a
//! topic's directory (and the topic loader skips it).
//!
//! A file is rewritten whole on every commit that changes it: write `{file}.tmp`, fsync it,
//! rename it over the old file, fsync the directory. A crash leaves either the old or the new
//! file, never a mix; a leftover `.tmp` is deleted at load. Groups hold few partitions and
//! commits are rare next to produces, so rewriting beats an append-only log that would need
//! compaction.
//!
//! **File names.** A file name may not exceed 255 bytes (`NAME_MAX`), and the temporary file
//! is the longest: `{file}.tmp`. Group names follow the topic rules (1–249 characters of
//! `[A-Za-z0-9._-]`), so they are safe in file names but not always short enough:
//!
//! - a group of up to 243 characters is stored in `{group}.offsets` (temporary file
//!   `{group}.offsets.tmp`, at most 255 bytes), in format version 1: the name says the group;
//! - a longer group (244–249 characters) is stored in `@{h}.offsets`, `h` being the 32 hex
//!   digits of the Murmur3 x64_128 hash of the name, in format version 2, which carries the
//!   group name itself. `@` cannot appear in a group name, so the two kinds never meet, and
//!   a broker from before version 2 skips these files.
//!
//! At load a file must sit at the name its group maps to (not renamed or copied by hand), or
//! the broker refuses to start. Two long names with one 128-bit hash would share a file; that
//! is not expected by chance (Murmur3 does not resist names chosen to collide).
//!
//! ```text
//! magic "SLCO" | version u8 (1) | count u32 | entries | crc32 u32
//! magic "SLCO" | version u8 (2) | group len u8 | group | count u32 | entries | crc32 u32
//! entries: (topic len u8 | topic | partition u32 | offset i64)*
//! ```
//!
//! The CRC (IEEE) covers every byte before it. A file that fails it refuses start-up with one
//! clear line rather than silently resetting a group.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::storage::fs::{replace_file, FileSystem};
use crate::storage::StorageError;

use super::assign::PartitionKey;
use crate::wire::consumer::validate_group;

/// The directory under the data directory; `@` keeps it out of the topic namespace.
pub const OFFSETS_DIR: &str = "@consumer_offsets";
const MAGIC: &[u8; 4] = b"SLCO";
/// Format of a file named after its group.
const VERSION_NAMED: u8 = 1;
/// Format of a file named by a hash, carrying its group.
const VERSION_HASHED: u8 = 2;
const SUFFIX: &str = ".offsets";
/// The longest file name (`NAME_MAX` on Linux file systems).
const NAME_MAX: usize = 255;
/// Longest group stored in `{group}.offsets`: its temporary file `{group}.offsets.tmp` must fit.
pub const MAX_NAMED_GROUP: usize = NAME_MAX - SUFFIX.len() - ".tmp".len();

/// One group's committed offsets.
pub type GroupOffsets = BTreeMap<PartitionKey, i64>;

/// The offsets directory of a data directory.
pub fn offsets_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(OFFSETS_DIR)
}

/// The name of `group`'s offsets file (see the module doc).
pub fn file_name(group: &str) -> String {
    if group.len() <= MAX_NAMED_GROUP {
        format!("{group}{SUFFIX}")
    } else {
        let (h1, h2) = crate::ring::murmur3_x64_128(group.as_bytes());
        format!("@{h1:016x}{h2:016x}{SUFFIX}")
    }
}

/// A decoded offsets file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsFile {
    /// The group named inside the file (version 2); `None` for version 1, named by its file.
    pub group: Option<String>,
    pub offsets: GroupOffsets,
}

/// Encodes `group`'s offsets file: version 1 when the file is named after the group,
/// version 2 (carrying the group) when it is named by a hash.
pub fn encode(group: &str, offsets: &GroupOffsets) -> Vec<u8> {
    let mut b = Vec::with_capacity(14 + group.len() + offsets.len() * 24);
    b.extend_from_slice(MAGIC);
    if group.len() <= MAX_NAMED_GROUP {
        b.push(VERSION_NAMED);
    } else {
        b.push(VERSION_HASHED);
        let g = &group.as_bytes()[..group.len().min(255)];
        b.push(g.len() as u8);
        b.extend_from_slice(g);
    }
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
    #[error("topic or group is not UTF-8")]
    NotUtf8,
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Decodes a group's offsets file, returning its offsets.
pub fn decode(b: &[u8]) -> Result<GroupOffsets, OffsetsFileError> {
    decode_file(b).map(|f| f.offsets)
}

/// Decodes a group's offsets file, either version.
pub fn decode_file(b: &[u8]) -> Result<OffsetsFile, OffsetsFileError> {
    if b.len() < 13 || &b[..4] != MAGIC {
        return Err(OffsetsFileError::NotOffsets);
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != crc {
        return Err(OffsetsFileError::Checksum);
    }
    let version = body[4];
    if version != VERSION_NAMED && version != VERSION_HASHED {
        return Err(OffsetsFileError::Version(version));
    }
    let mut r = Cursor { body, pos: 5 };
    let group = if version == VERSION_HASHED {
        Some(r.string()?)
    } else {
        None
    };
    let count = u32::from_be_bytes(r.array()?);
    let mut offsets = GroupOffsets::new();
    for _ in 0..count {
        let topic = r.string()?;
        let j = u32::from_be_bytes(r.array()?);
        let off = i64::from_be_bytes(r.array()?);
        offsets.insert((topic, j), off);
    }
    if r.pos != body.len() {
        return Err(OffsetsFileError::Trailing(body.len() - r.pos));
    }
    Ok(OffsetsFile { group, offsets })
}

/// Reads a file's body front to back.
struct Cursor<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], OffsetsFileError> {
        let s = self
            .body
            .get(self.pos..self.pos + n)
            .ok_or(OffsetsFileError::Truncated)?;
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], OffsetsFileError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A length byte, then that many bytes of UTF-8.
    fn string(&mut self) -> Result<String, OffsetsFileError> {
        let len = self.take(1)?[0] as usize;
        std::str::from_utf8(self.take(len)?)
            .map(str::to_string)
            .map_err(|_| OffsetsFileError::NotUtf8)
    }
}

/// Loads every group's offsets from `dir` (missing directory = none).
pub async fn load_all<F: FileSystem>(
    fs: &F,
    dir: &Path,
) -> Result<HashMap<String, GroupOffsets>, StorageError> {
    let mut out = HashMap::new();
    let entries = match fs.list_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StorageError::io("list", dir)(e)),
    };
    for entry in entries {
        let path = dir.join(&entry.name);
        let name = entry.name;
        if name.ends_with(".tmp") {
            // A save that did not reach its rename: the previous file is still in place.
            let _ = fs.remove_file(&path).await;
            continue;
        }
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        // Named after a group, or by a hash (`@`, which no group name holds); anything else
        // is not ours.
        if validate_group(stem).is_err() && !stem.starts_with('@') {
            continue;
        }
        let bad = |reason: String| StorageError::BadFile {
            path: path.clone(),
            reason,
        };
        let bytes = fs
            .read_file(&path)
            .await
            .map_err(StorageError::io("read", &path))?;
        let file = decode_file(&bytes).map_err(|e| {
            bad(format!(
                "consumer offsets file is damaged ({e}); move it away to reset its group"
            ))
        })?;
        let group = file.group.unwrap_or_else(|| stem.to_string());
        if validate_group(&group).is_err() || file_name(&group) != name {
            return Err(bad(format!(
                "consumer offsets file holds group '{}', whose file is '{}'; move it away to \
                 reset that group",
                group.escape_debug(),
                file_name(&group).escape_debug()
            )));
        }
        out.insert(group, file.offsets);
    }
    Ok(out)
}

/// Loads one group's offsets (none if it has no file), for a group that comes back after
/// it was forgotten.
pub async fn load_group<F: FileSystem>(
    fs: &F,
    dir: &Path,
    group: &str,
) -> Result<GroupOffsets, StorageError> {
    let path = dir.join(file_name(group));
    let bytes = match fs.read_file(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(GroupOffsets::new()),
        Err(e) => return Err(StorageError::io("read", &path)(e)),
    };
    let bad = |reason: String| StorageError::BadFile {
        path: path.clone(),
        reason,
    };
    let file = decode_file(&bytes).map_err(|e| {
        bad(format!(
            "consumer offsets file is damaged ({e}); move it away to reset its group"
        ))
    })?;
    match file.group {
        Some(g) if g != group => Err(bad(format!(
            "consumer offsets file holds group '{}', not '{}'; move it away to reset that group",
            g.escape_debug(),
            group.escape_debug()
        ))),
        _ => Ok(file.offsets),
    }
}

/// Durably replaces `group`'s offsets file ([`replace_file`]: tmp + fsync + rename +
/// directory fsync). A group left with no offsets (its topics were deleted) has its file
/// removed instead, durably.
pub async fn save<F: FileSystem>(
    fs: &F,
    dir: &Path,
    group: &str,
    offsets: &GroupOffsets,
) -> Result<(), StorageError> {
    if offsets.is_empty() {
        let path = dir.join(file_name(group));
        return match fs.remove_file(&path).await {
            Ok(()) => fs
                .sync_dir(dir)
                .await
                .map_err(StorageError::io("sync", dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("remove", &path)(e)),
        };
    }
    let fresh = match fs.metadata(dir).await {
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(StorageError::io("stat", dir)(e)),
    };
    if fresh {
        fs.create_dir_all(dir)
            .await
            .map_err(StorageError::io("create", dir))?;
        if let Some(parent) = dir.parent() {
            fs.sync_dir(parent)
                .await
                .map_err(StorageError::io("sync", parent))?;
        }
    }
    let file = file_name(group);
    replace_file(fs, dir, &file, &encode(group, offsets))
        .await
        .map_err(StorageError::io("write", dir.join(file)))
}

/// Where a position must actually point given the log's available range `[start, end)`: never
/// before the earliest available offset, never past the end.
pub fn clamp(offset: i64, start: i64, end: i64) -> i64 {
    offset.min(end).max(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use crate::rt::block_on_reused;
    use crate::rt::fs::RealFs;

    // The store on the real file system, run to completion (these tests only drive it).
    fn load_all(dir: &Path) -> Result<HashMap<String, GroupOffsets>, StorageError> {
        block_on_reused(super::load_all(&RealFs::default(), dir))
    }
    fn save(dir: &Path, group: &str, offsets: &GroupOffsets) -> Result<(), StorageError> {
        block_on_reused(super::save(&RealFs::default(), dir, group, offsets))
    }

    /// Every one-bit flip and every truncation of an encoded file fails to decode.
    fn every_flip_and_cut_is_refused(b: &[u8]) {
        for i in 0..b.len() {
            let mut bad = b.to_vec();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "cut at {n}");
        }
    }

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
        let b = encode("g", &sample());
        assert_eq!(decode(&b).unwrap(), sample());
        assert_eq!(decode(&encode("g", &GroupOffsets::new())).unwrap().len(), 0);
        let long = "g".repeat(249);
        let b = encode(&long, &sample());
        assert_eq!(
            decode_file(&b).unwrap(),
            OffsetsFile {
                group: Some(long),
                offsets: sample()
            }
        );
        every_flip_and_cut_is_refused(&b);
        let b = encode("g", &sample());
        every_flip_and_cut_is_refused(&b);
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
        save(&dir, "g-2", &sample()).unwrap();
        // Left with nothing (its topics deleted): the file goes.
        save(&dir, "g-2", &GroupOffsets::new()).unwrap();
        assert!(!dir.join("g-2.offsets").exists());
        save(&dir, "g-4", &GroupOffsets::new()).unwrap();
        fs::write(dir.join("g3.offsets.tmp"), b"half").unwrap();
        fs::write(dir.join("README"), b"ignored").unwrap();
        let all = load_all(&dir).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all["g1"][&("a".to_string(), 0)], 9);
        assert!(!dir.join("g3.offsets.tmp").exists());
        fs::write(dir.join("g1.offsets"), b"SLCO garbage").unwrap();
        let err = load_all(&dir).unwrap_err().to_string();
        assert!(err.contains("g1") && !err.contains('\n'), "{err}");
    }

    /// A group name of every length near the limit, of every allowed character.
    fn group_of(len: usize) -> String {
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
        (0..len)
            .map(|i| alphabet[(i * 7 + len) % alphabet.len()] as char)
            .collect()
    }

    #[test]
    fn every_valid_group_name_saves_and_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = offsets_dir(tmp.path());
        let groups: Vec<String> = (1..=3).chain(238..=249).map(group_of).collect();
        for (i, g) in groups.iter().enumerate() {
            validate_group(g).unwrap();
            let mut o = sample();
            o.insert(("t".into(), 3), i as i64);
            save(&dir, g, &o).unwrap_or_else(|e| panic!("group of {} chars: {e}", g.len()));
            save(&dir, g, &o).unwrap();
        }
        // A hashed name's save that did not reach its rename.
        let leftover = format!("{}.tmp", file_name(&group_of(249)));
        fs::write(dir.join(&leftover), b"half").unwrap();
        let all = load_all(&dir).unwrap();
        assert_eq!(all.len(), groups.len());
        for (i, g) in groups.iter().enumerate() {
            assert_eq!(all[g][&("t".to_string(), 3)], i as i64, "{} chars", g.len());
            assert_eq!(all[g].len(), sample().len() + 1);
        }
        assert!(!dir.join(&leftover).exists());
        for e in fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(name.len() + ".tmp".len() <= 255, "{name}");
        }
    }

    #[test]
    fn names_and_versions_by_length() {
        for len in 1..=249 {
            let g = group_of(len);
            let name = file_name(&g);
            let version = encode(&g, &sample())[4];
            if len <= 243 {
                assert_eq!((name, version), (format!("{g}.offsets"), 1));
            } else {
                assert_eq!(name.len(), 1 + 32 + ".offsets".len());
                assert!(
                    name.starts_with('@') && name.ends_with(".offsets"),
                    "{name}"
                );
                assert_eq!(version, 2);
            }
        }
        // Names that differ in one character get different files.
        let (a, b) = ("a".repeat(249), format!("{}b", "a".repeat(248)));
        assert_ne!(file_name(&a), file_name(&b));
    }

    #[test]
    fn a_version_1_file_still_loads() {
        // "SLCO" | 1 | count 1 | "t" | partition 2 | offset 7 | crc, as written before version 2.
        let mut b = b"SLCO\x01\x00\x00\x00\x01\x01t\x00\x00\x00\x02".to_vec();
        b.extend_from_slice(&7i64.to_be_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        let tmp = tempfile::tempdir().unwrap();
        let dir = offsets_dir(tmp.path());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("old.offsets"), &b).unwrap();
        let all = load_all(&dir).unwrap();
        assert_eq!(
            all["old"],
            [(("t".to_string(), 2), 7)].into_iter().collect()
        );
        assert_eq!(encode("old", &all["old"]), b, "short names keep version 1");
    }

    #[test]
    fn a_file_away_from_its_groups_name_refuses_start_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = offsets_dir(tmp.path());
        let g = group_of(249);
        save(&dir, &g, &sample()).unwrap();
        let moved = dir.join("@0123.offsets");
        fs::rename(dir.join(file_name(&g)), &moved).unwrap();
        let err = load_all(&dir).unwrap_err().to_string();
        assert!(
            err.contains("@0123") && err.contains(&file_name(&g)),
            "{err}"
        );
        // A version 1 file under a hashed name names no valid group.
        fs::write(&moved, encode("g", &sample())).unwrap();
        assert!(load_all(&dir).is_err());
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
