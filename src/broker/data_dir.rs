//! The data directory belongs to one broker at a time: an exclusive lock on its lock file,
//! taken through the broker's file system ([`FileSystem::lock_dir`]; on the real one an
//! exclusive `flock` on `{data_dir}/@lock` holding the holder's pid).

use super::StartError;
use crate::storage::fs::{BrokerFs, BrokerLock, DirLocked, FileSystem};

pub use crate::storage::fs::LOCK_FILE;

/// Takes the data directory for this process, before anything else opens a file there: two
/// brokers writing one directory lose acknowledged messages. The lock lasts as long as the
/// returned value lives (the kernel releases the real one when the process dies, `kill -9`
/// included, so the stale file of a crashed broker is no obstacle). Another holder is
/// [`StartError::DataDirInUse`], naming its pid when the lock file does.
pub fn lock_data_dir(fs: &BrokerFs, data_dir: &std::path::Path) -> Result<BrokerLock, StartError> {
    fs.lock_dir(data_dir).map_err(|source| {
        let held = source.get_ref().and_then(|e| e.downcast_ref::<DirLocked>());
        match held {
            Some(held) => StartError::DataDirInUse {
                path: data_dir.to_path_buf(),
                holder: held.holder,
            },
            None => StartError::Lock {
                dir: data_dir.to_path_buf(),
                file: data_dir.join(LOCK_FILE),
                source,
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_data_dir(dir: &std::path::Path) -> Result<BrokerLock, StartError> {
        super::lock_data_dir(&BrokerFs::default(), dir)
    }

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
        assert!(matches!(err, StartError::Lock { .. }), "{err:?}");
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
