//! Replacing a small file durably: write a temporary file beside it, fsync it, rename it over
//! the old one, fsync the directory. A crash leaves either the old file or the new one, never a
//! mix; a leftover `.tmp` is only ever a write that did not reach its rename. Used for topic
//! layouts, consumer offsets and the clean-shutdown marker.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `dir/name` with `bytes`, durably (see the module doc). The temporary file is
/// `{name}.tmp`, so `name` may be at most 251 bytes long (`NAME_MAX` is 255).
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        replace_file(dir.path(), "f", b"one").unwrap();
        replace_file(dir.path(), "f", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"two");
        assert!(!dir.path().join("f.tmp").exists());
    }
}
