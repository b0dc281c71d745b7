//! O_DIRECT files and aligned buffers for `limits`' disk measurements, on plain syscalls so
//! that nothing between the measurement and the device (no runtime, no page cache) is counted.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// O_DIRECT alignment used for buffers, offsets and sizes.
pub const ALIGN: usize = 4096;

/// A buffer aligned for O_DIRECT, filled with non-zero bytes.
pub(crate) struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Aligned {
    pub(crate) fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, ALIGN).expect("valid layout");
        // SAFETY: len > 0 (validated), layout is valid.
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null(), "out of memory");
        let mut a = Aligned { ptr, layout };
        let fill = b"shardlog limits: not zeros, not compressible by the device either 0123456789";
        for (i, b) in a.as_mut().iter_mut().enumerate() {
            *b = fill[i % fill.len()] ^ (i / fill.len()) as u8;
        }
        a
    }

    pub(crate) fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr holds layout.size() bytes, owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// An O_DIRECT file that is deleted when dropped.
pub(crate) struct DirectFile {
    fd: libc::c_int,
    path: PathBuf,
}

impl DirectFile {
    pub(crate) fn create(dir: &Path, name: &str) -> Result<DirectFile, String> {
        Self::open(dir, name, 0)
    }

    /// Opens with `O_DIRECT | O_DSYNC`: every write is durable when it returns, as the
    /// broker's segment files are.
    pub(crate) fn create_dsync(dir: &Path, name: &str) -> Result<DirectFile, String> {
        Self::open(dir, name, libc::O_DSYNC)
    }

    fn open(dir: &Path, name: &str, extra_flags: libc::c_int) -> Result<DirectFile, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(format!("{name}-{}.tmp", std::process::id()));
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: a valid C string; the fd is owned by the returned value.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_CREAT
                    | libc::O_TRUNC
                    | libc::O_RDWR
                    | libc::O_DIRECT
                    | libc::O_CLOEXEC
                    | extra_flags,
                0o644,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!(
                "cannot open {} with O_DIRECT: {e}{}",
                path.display(),
                if e.raw_os_error() == Some(libc::EINVAL) {
                    " (the filesystem does not support O_DIRECT, e.g. tmpfs; use --dir on a disk)"
                } else {
                    ""
                }
            ));
        }
        Ok(DirectFile { fd, path })
    }

    pub(crate) fn pwrite(&self, buf: &Aligned, offset: u64) -> Result<(), String> {
        // SAFETY: buf is valid for buf.len() bytes; fd is open.
        let n = unsafe {
            libc::pwrite(
                self.fd,
                buf.ptr as *const libc::c_void,
                buf.len(),
                offset as libc::off_t,
            )
        };
        if n != buf.len() as isize {
            return Err(self.last_error("O_DIRECT write to"));
        }
        Ok(())
    }

    pub(crate) fn pread(&self, buf: &mut Aligned, offset: u64) -> Result<usize, String> {
        // SAFETY: buf is valid for buf.len() bytes; fd is open.
        let n = unsafe {
            libc::pread(
                self.fd,
                buf.ptr as *mut libc::c_void,
                buf.len(),
                offset as libc::off_t,
            )
        };
        if n < 0 {
            return Err(self.last_error("O_DIRECT read of"));
        }
        Ok(n as usize)
    }

    /// Allocates `len` bytes of the file (its size grows to `len`), as the broker
    /// preallocates its segments.
    pub(crate) fn fallocate(&self, len: u64) -> Result<(), String> {
        // SAFETY: fd is open.
        if unsafe { libc::fallocate(self.fd, 0, 0, len as libc::off_t) } != 0 {
            return Err(self.last_error("fallocate of"));
        }
        Ok(())
    }

    pub(crate) fn fdatasync(&self) -> Result<(), String> {
        // SAFETY: fd is open.
        if unsafe { libc::fdatasync(self.fd) } != 0 {
            return Err(self.last_error("fdatasync of"));
        }
        Ok(())
    }

    /// "`{what}` `{path}` failed: `{errno}`", for the call that just failed.
    fn last_error(&self, what: &str) -> String {
        format!(
            "{what} {} failed: {}",
            self.path.display(),
            std::io::Error::last_os_error()
        )
    }
}

impl Drop for DirectFile {
    /// Frees the file's blocks 16 MiB at a time, 20 ms apart, before removing it. On a
    /// filesystem mounted with `discard`, freeing 1 GiB at once stalls every synchronous write
    /// on the device for a second or more, and the broker measured next would pay for it
    /// (the broker's retention frees segments the same way, see `storage::retention`).
    fn drop(&mut self) {
        const STEP: u64 = 16 << 20;
        let mut len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        while len > 0 {
            len = len.saturating_sub(STEP);
            // SAFETY: ftruncate on the fd this value owns.
            if unsafe { libc::ftruncate(self.fd, len as libc::off_t) } != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: closing the fd this value owns.
        unsafe { libc::close(self.fd) };
        let _ = std::fs::remove_file(&self.path);
    }
}
