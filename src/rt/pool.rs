//! One executor thread per shard, pinned to a CPU the process may run on, plus the checks
//! that explain why io_uring could not be used.

use std::future::Future;
use std::thread::JoinHandle;

use glommio::{LocalExecutorBuilder, Placement};

/// io_uring memory each shard's executor asks for (registered buffers). glommio falls back to
/// unregistered buffers when memlock is too low, so this is a request, not a requirement.
const IO_MEMORY: usize = 4 << 20;

/// How long a task may run before `yield_if_needed` yields (glommio's default is 100 ms).
/// Compression yields between chunks, so this bounds how long a burst of compression holds
/// up socket reads and completions on the shard.
const PREEMPT_AFTER: std::time::Duration = std::time::Duration::from_millis(1);

/// Checks the host before any executor starts and prepares what can be prepared: raises the
/// soft memlock limit to the hard limit. Returns one clear line when io_uring is unusable.
pub fn preflight() -> Result<(), String> {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        match s.trim() {
            "2" => {
                return Err(
                    "io_uring is disabled on this host (/proc/sys/kernel/io_uring_disabled = 2); \
                     set it to 0 (sysctl kernel.io_uring_disabled=0) to run shardlog"
                        .into(),
                )
            }
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

/// Explains an executor creation failure in one line.
pub fn explain_executor_error(err: &dyn std::fmt::Display) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    format!(
        "cannot start an io_uring executor ({err}); io_uring_disabled={disabled}, memlock soft/hard \
         = {}/{} bytes. io_uring may be blocked by a container seccomp profile, disabled by \
         sysctl, or the memlock limit may be too low (raise it with `ulimit -l unlimited`)",
        lim.rlim_cur, lim.rlim_max
    )
}

/// The CPUs this process may run on, from its affinity mask.
pub fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

/// A running shard thread.
pub struct ShardThread<T> {
    handle: JoinHandle<Result<T, String>>,
}

impl<T> ShardThread<T> {
    /// Whether the shard's thread has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the shard's main future to finish.
    pub fn join(self) -> Result<T, String> {
        self.handle
            .join()
            .map_err(|_| "shard thread panicked".to_string())?
    }
}

/// Starts shard `id` on its own thread running a pinned executor (CPU `cpu`, if given).
/// `make` builds the shard's main future on that thread.
pub fn spawn_shard<G, F, T>(
    id: usize,
    cpu: Option<usize>,
    make: G,
) -> Result<ShardThread<T>, String>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match cpu {
        Some(c) => Placement::Fixed(c),
        None => Placement::Unbound,
    };
    let name = format!("shard-{id}");
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let ex = LocalExecutorBuilder::new(placement)
                .name(&name)
                .io_memory(IO_MEMORY)
                .preempt_timer(PREEMPT_AFTER)
                .make()
                .map_err(|e| explain_executor_error(&e))?;
            Ok(ex.run(make()))
        })
        .map_err(|e| format!("cannot start thread for shard {id}: {e}"))?;
    Ok(ShardThread { handle })
}
