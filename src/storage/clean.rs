//! The clean-shutdown marker. A log closed gracefully writes `clean` in its directory, naming
//! where it ended; the next open finds it, removes it (durably, before anything is appended),
//! and checks the last segment like a sealed one — index plus head-CRC walk — instead of
//! decompressing every chunk of it. Without the marker (a crash), the last segment gets the full
//! check. So a restart after a graceful shutdown does no recovery work beyond checking, and
//! takes milliseconds rather than the time to decompress a segment.

use std::path::Path;

use super::StorageError;

const MARKER: &str = "clean";

/// Where a cleanly closed log ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanEnd {
    pub next_offset: i64,
    pub end_pos: u64,
}

/// Writes the marker durably.
pub(crate) fn write_marker(dir: &Path, end: CleanEnd) -> Result<(), StorageError> {
    let text = format!("{} {}\n", end.next_offset, end.end_pos);
    super::replace::replace_file(dir, MARKER, text.as_bytes())
        .map_err(StorageError::io("writing", &dir.join(MARKER)))
}

/// Reads and removes the marker, if any. A marker that does not parse counts as absent (the
/// log then gets the full check). The caller syncs the directory before appending.
pub(crate) fn take_marker(dir: &Path) -> Result<Option<CleanEnd>, StorageError> {
    let path = dir.join(MARKER);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("reading", &path)(e)),
    };
    std::fs::remove_file(&path).map_err(StorageError::io("removing", &path))?;
    let mut parts = text.split_whitespace();
    let next_offset = parts.next().and_then(|p| p.parse().ok());
    let end_pos = parts.next().and_then(|p| p.parse().ok());
    Ok(match (next_offset, end_pos) {
        (Some(next_offset), Some(end_pos)) => Some(CleanEnd {
            next_offset,
            end_pos,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_take_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(take_marker(dir.path()).unwrap(), None);
        let end = CleanEnd {
            next_offset: 42,
            end_pos: 8192,
        };
        write_marker(dir.path(), end).unwrap();
        assert_eq!(take_marker(dir.path()).unwrap(), Some(end));
        assert_eq!(take_marker(dir.path()).unwrap(), None, "taking removes it");
        std::fs::write(dir.path().join(MARKER), "garbage").unwrap();
        assert_eq!(take_marker(dir.path()).unwrap(), None);
        assert!(!dir.path().join(MARKER).exists());
    }
}
