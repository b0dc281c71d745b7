//! The clean-shutdown marker. A log closed gracefully writes `clean` in its directory, naming
//! where it ended; the next open finds it, removes it (durably, before anything is appended),
//! and checks the last segment like a sealed one — index plus head-CRC walk — instead of
//! decompressing every chunk of it. Without the marker (a crash), the last segment gets the full
//! check. So a restart after a graceful shutdown does no recovery work beyond checking, and
//! takes milliseconds rather than the time to decompress a segment.

use std::path::Path;

use super::fs::{replace_file, FileSystem};
use super::StorageError;

const MARKER: &str = "clean";

/// Where a cleanly closed log ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanEnd {
    pub next_offset: i64,
    pub end_pos: u64,
}

/// Writes the marker durably.
pub(crate) async fn write_marker<F: FileSystem>(
    fs: &F,
    dir: &Path,
    end: CleanEnd,
) -> Result<(), StorageError> {
    let text = format!("{} {}\n", end.next_offset, end.end_pos);
    replace_file(fs, dir, MARKER, text.as_bytes())
        .await
        .map_err(StorageError::io("writing", &dir.join(MARKER)))
}

/// Reads and removes the marker, if any. A marker that does not parse counts as absent (the
/// log then gets the full check). The caller syncs the directory before appending.
pub(crate) async fn take_marker<F: FileSystem>(
    fs: &F,
    dir: &Path,
) -> Result<Option<CleanEnd>, StorageError> {
    let path = dir.join(MARKER);
    let bytes = match fs.read_file(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("reading", &path)(e)),
    };
    fs.remove_file(&path)
        .await
        .map_err(StorageError::io("removing", &path))?;
    let text = String::from_utf8_lossy(&bytes);
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
        crate::rt::block_on(async {
            let fs = crate::rt::fs::RealFs::default();
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            assert_eq!(take_marker(&fs, dir).await.unwrap(), None);
            let end = CleanEnd {
                next_offset: 42,
                end_pos: 8192,
            };
            write_marker(&fs, dir, end).await.unwrap();
            assert_eq!(take_marker(&fs, dir).await.unwrap(), Some(end));
            let again = take_marker(&fs, dir).await.unwrap();
            assert_eq!(again, None, "taking removes it");
            std::fs::write(dir.join(MARKER), "garbage").unwrap();
            assert_eq!(take_marker(&fs, dir).await.unwrap(), None);
            assert!(!dir.join(MARKER).exists());
        });
    }
}
