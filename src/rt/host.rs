//! The host checks that come before any executor (io_uring allowed, memlock limit), the one
//! clear line that explains a refused executor, the CPUs a shard may be pinned to, and a
//! running shard's thread: the same whichever runtime runs the shards.

use std::thread::JoinHandle;

use thiserror::Error;

/// Why the runtime could not start or run a shard, worded for the operator in one line.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(
        "io_uring is disabled on this host (/proc/sys/kernel/io_uring_disabled = 2); \
         set it to 0 (sysctl kernel.io_uring_disabled=0) to run shardlog"
    )]
    IoUringDisabled,
    /// The executor could not be created (io_uring refused): what was refused, and the host's
    /// settings that usually explain it.
    #[error(
        "cannot start an io_uring executor ({cause}); io_uring_disabled={disabled}, memlock \
         soft/hard = {memlock_soft}/{memlock_hard} bytes. io_uring may be blocked by a \
         container seccomp profile, disabled by sysctl, or the memlock limit may be too low \
         (raise it with `ulimit -l unlimited`)"
    )]
    Executor {
        cause: String,
        disabled: String,
        memlock_soft: u64,
        memlock_hard: u64,
    },
    #[error("cannot start thread for shard {shard}: {source}")]
    Thread {
        shard: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("shard thread panicked")]
    Panicked,
}

/// io_uring memory each shard's executor asks for (registered buffers). the runtime falls back
/// to unregistered buffers when memlock is too low, so this is a request, not a requirement.
pub(super) const IO_MEMORY: usize = 4 << 20;

/// Checks the host before any executor starts and prepares what can be prepared: raises the
/// soft memlock limit to the hard limit. Returns one clear line when io_uring is unusable.
pub fn preflight() -> Result<(), RuntimeError> {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        match s.trim() {
            "2" => return Err(RuntimeError::IoUringDisabled),
            "1" if unsafe { libc::geteuid() } != 0 => {
                tracing::warn!(
                    "kernel.io_uring_disabled = 1: only root and the io_uring_group may use io_uring"
                );
            }
            _ => {}
        }
    }
    raise_memlock();
    Ok(())
}

fn raise_memlock() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim);
        }
    }
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < (IO_MEMORY as u64) * 2 {
        tracing::info!(
            memlock_bytes = lim.rlim_cur,
            "memlock limit is low; io_uring buffers will not be registered (raise it with \
             `ulimit -l` or LimitMEMLOCK= in the systemd unit for a little more speed)"
        );
    }
}

/// Explains an executor creation failure with the host settings that usually cause it.
pub fn explain_executor_error(err: &dyn std::fmt::Display) -> RuntimeError {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    RuntimeError::Executor {
        cause: err.to_string(),
        disabled,
        memlock_soft: lim.rlim_cur,
        memlock_hard: lim.rlim_max,
    }
}

/// The CPUs this process may run on, from its affinity mask.
pub fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

/// How a shard's thread is set up: where it and its helper threads run, and the optional
/// report of tasks that hold its executor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardSetup {
    /// The core the shard's executor is pinned to; `None`: not pinned.
    pub cpu: Option<usize>,
    /// Where its helper threads (the kernel's io_uring workers for its thread, the runtime's
    /// blocking pool) are steered. Empty: not steered (io_uring workers where the kernel puts
    /// them, in practice beside the shard; glommio's blocking pool on the shard's core).
    pub helper_cpus: Vec<usize>,
    /// Log a backtrace when one turn of the executor's task queue runs this much past its
    /// budget (`--stall-report`; glommio only).
    pub stall_report: Option<std::time::Duration>,
}

impl From<Option<usize>> for ShardSetup {
    fn from(cpu: Option<usize>) -> ShardSetup {
        ShardSetup {
            cpu,
            ..ShardSetup::default()
        }
    }
}

/// Steers the calling shard thread's io_uring workers to `cpus` (if any), logging a refusal:
/// a broker whose kernel cannot do it still runs, as it did before the flag.
pub(super) fn steer_helpers(shard: usize, cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    match super::io_workers::steer_io_workers(cpus) {
        Ok(()) => tracing::debug!(shard, ?cpus, "io_uring workers steered"),
        Err(e) => tracing::warn!(
            shard,
            ?cpus,
            error = %e,
            "could not steer this shard's io_uring workers (--io-worker-cpus); they stay where \
             the kernel puts them"
        ),
    }
}

/// A running shard thread.
pub struct ShardThread<T> {
    pub(super) handle: JoinHandle<Result<T, RuntimeError>>,
}

impl<T> ShardThread<T> {
    /// Whether the shard's thread has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the shard's main future to finish.
    pub fn join(self) -> Result<T, RuntimeError> {
        self.handle.join().map_err(|_| RuntimeError::Panicked)?
    }
}
