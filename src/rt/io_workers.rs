//! Steering a shard's helper threads off its core (`--io-worker-cpus`).
//!
//! io_uring hands what it cannot issue without blocking (creating a file, fdatasync, a write
//! that extends a file) to kernel worker threads, `iou-wrk-<tid>`, one pool per submitting
//! thread. The scheduler tends to run them where they were woken: on the shard's own core,
//! where they preempt the shard. Measured in the 30-minute scheduling-delay soak
//! (docs/benchmarks.md): creating a segment file at every roll ran up to 10.8 ms in ext4's
//! inode allocation on the shard's core. `IORING_REGISTER_IOWQ_AFF` sets the CPUs of the
//! calling thread's workers; glommio 0.9 does not expose it, and it does not need the ring
//! glommio made: for a ring without SQPOLL the kernel applies it to the caller's own worker
//! pool, whichever of the caller's rings the call names.

use std::io;
use std::os::fd::RawFd;

/// `io_uring_register(2)` opcode: set the CPU affinity of the caller's io-wq workers.
const IORING_REGISTER_IOWQ_AFF: libc::c_uint = 17;

/// Restricts the calling thread's io_uring workers to `cpus`. The thread must have submitted
/// to an io_uring already (the kernel creates its worker pool then); a shard thread has, by
/// the time its main future runs.
pub fn steer_io_workers(cpus: &[usize]) -> io::Result<()> {
    let mask = cpu_mask(cpus)?;
    let ring = any_io_uring()?;
    // SAFETY: io_uring_register reads `mask` (a cpu_set_t we own, of the size we pass) and
    // acts on the calling thread's io_uring task context. Should the descriptor have been
    // closed and reused meanwhile, the kernel refuses a file that is not an io_uring.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring,
            IORING_REGISTER_IOWQ_AFF,
            &mask as *const libc::cpu_set_t,
            std::mem::size_of::<libc::cpu_set_t>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A `cpu_set_t` holding `cpus`; an error for an empty list or a CPU it cannot hold.
pub fn cpu_mask(cpus: &[usize]) -> io::Result<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    if cpus.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no CPUs"));
    }
    for &c in cpus {
        if c >= max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {c} is not below {max}"),
            ));
        }
        // SAFETY: `c` is within the set's size (checked above).
        unsafe { libc::CPU_SET(c, &mut mask) };
    }
    Ok(mask)
}

/// The number of a descriptor of one of this process's io_uring instances (an anonymous
/// inode cannot be opened anew through `/proc`, so it is the runtime's own).
fn any_io_uring() -> io::Result<RawFd> {
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.as_os_str() == "anon_inode:[io_uring]" {
            if let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                return Ok(fd);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no io_uring descriptor in this process",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_holds_exactly_the_cpus_named() {
        let m = cpu_mask(&[0, 3]).unwrap();
        // SAFETY: reading membership of CPUs within the set's size.
        let has = |c| unsafe { libc::CPU_ISSET(c, &m) };
        assert!(has(0) && has(3) && !has(1) && !has(2));
        assert!(cpu_mask(&[]).is_err());
        assert!(cpu_mask(&[1 << 20]).is_err());
    }
}
