//! File-system calls both runtimes make the same way, blocking (the callers run them on the
//! runtime's blocking pool): listing, metadata, free space, and the data directory's lock.

use std::io;
use std::path::Path;

use crate::storage::fs::{DirEntry, DirLocked, Metadata, LOCK_FILE};

pub(super) fn list(dir: &Path) -> io::Result<Vec<DirEntry>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let ty = entry.file_type()?;
        let is_dir = if ty.is_symlink() {
            std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir())
        } else {
            ty.is_dir()
        };
        out.push(DirEntry { name, is_dir });
    }
    Ok(out)
}

pub(super) fn stat(path: &Path) -> io::Result<Metadata> {
    let m = std::fs::metadata(path)?;
    Ok(Metadata {
        len: m.len(),
        modified: m.modified()?,
        is_dir: m.is_dir(),
    })
}

/// Bytes available to unprivileged users on the file system holding `path` (`statvfs`;
/// blocking, but brief: [`RealFs::free_space`] runs it on the blocking pool).
pub fn free_space(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL"))?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// An exclusive `flock` on `{dir}/@lock` ([`LOCK_FILE`]), then this process's pid written into it, so that a
/// second broker can say who holds it. The lock lasts as long as the file is open (the kernel
/// releases it when the process dies, `kill -9` included, so the stale file of a crashed broker
/// is no obstacle).
pub(super) fn lock(dir: &Path) -> io::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let step = |op: &'static str| {
        let path = path.display().to_string();
        move |e: io::Error| io::Error::new(e.kind(), format!("{op} {path}: {e}"))
    };
    // Not truncated here: until we hold the lock, its content is the holder's pid.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(step("creating"))?;
    // SAFETY: flock(2) on a descriptor `file` owns and keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(step("locking")(e));
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let holder = text.trim().parse().ok();
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            DirLocked { holder },
        ));
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(step("writing"))?;
    Ok(file)
}
