//! The data directory belongs to one broker at a time: an exclusive `flock` on its lock file.

use super::StartError;

/// The lock file in the data directory. Topic names cannot contain `@`, so it is never a topic.
pub const LOCK_FILE: &str = "@lock";

/// Takes the data directory for this process: an exclusive `flock` on `{data_dir}/@lock`, then
/// this process's pid written into it, so that a second broker can say who holds it. Before
/// anything else opens a file there: two brokers writing one directory lose acknowledged
/// messages. The lock lasts as long as the returned file is open (the kernel releases it when
/// the process dies, `kill -9` included, so the stale file of a crashed broker is no obstacle).
pub fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    let path = data_dir.join(LOCK_FILE);
    let fail = |op: &'static str| {
        let (dir, file) = (data_dir.to_path_buf(), path.clone());
        move |source| StartError::Lock {
            dir,
            file,
            op,
            source,
        }
    };
    // Not truncated here: until we hold the lock, its content is the holder's pid.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(fail("create"))?;
    // SAFETY: flock(2) on a descriptor `file` owns and keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::WouldBlock {
            return Err(fail("flock")(e));
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        return Err(StartError::DataDirInUse {
            path: data_dir.to_path_buf(),
            holder: text.trim().parse().ok(),
        });
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(fail("write"))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_lock_is_exclusive_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path()).unwrap();
        let me = std::process::id();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{me}\n"));
        // flock conflicts between open files, even within one process.
        let err = lock_data_dir(dir.path()).unwrap_err();
        assert!(
            matches!(err, StartError::DataDirInUse { holder: Some(p), .. } if p == me),
            "{err:?}"
        );
        let line = err.to_string();
        assert!(line.contains(&format!("(pid {me})")), "{line}");
        assert!(line.contains(&dir.path().display().to_string()), "{line}");
        drop(held);
        // Released with the file; a stale pid in it is overwritten by the next holder.
        std::fs::write(dir.path().join(LOCK_FILE), "999999999999\n").unwrap();
        let _again = lock_data_dir(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{me}\n"));
    }

    #[test]
    fn an_unwritable_data_dir_fails_at_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = lock_data_dir(&missing).unwrap_err();
        assert!(
            matches!(err, StartError::Lock { op: "create", .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("@lock"), "{err}");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            use std::os::unix::fs::PermissionsExt;
            let ro = std::fs::Permissions::from_mode(0o555);
            std::fs::set_permissions(dir.path(), ro).unwrap();
            let err = lock_data_dir(dir.path()).unwrap_err();
            assert!(err.to_string().contains("Permission denied"), "{err}");
        }
    }
}
