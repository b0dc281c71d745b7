//! One executor thread per shard, pinned to a CPU the process may run on, plus the checks
//! that explain why io_uring could not be used.

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};
use thiserror::Error;

use super::keep_awake::{self, Heartbeat};

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

/// io_uring memory each shard's executor asks for (registered buffers). glommio falls back to
/// unregistered buffers when memlock is too low, so this is a request, not a requirement.
const IO_MEMORY: usize = 4 << 20;

/// How long a task may run before `yield_if_needed` yields (glommio's default is 100 ms).
/// Compression yields between chunks, so this bounds how long a burst of compression holds
/// up socket reads and completions on the shard.
const PREEMPT_AFTER: Duration = Duration::from_millis(1);

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

/// A running shard thread.
pub struct ShardThread<T> {
    handle: JoinHandle<Result<T, RuntimeError>>,
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

/// Starts shard `id` on its own thread running a pinned executor (CPU `cpu`, if given).
/// `make` builds the shard's main future on that thread.
///
/// When it runs out of work, the executor polls for `spin` before it sleeps. Sleeping and
/// being woken cost more than the polling at moderate load, on a VM especially: every wake-up
/// is an inter-processor interrupt, and every sleep a `membarrier` that interrupts the other
/// cores (glommio's), and the core's caches go cold while it halts.
///
/// glommio 0.9 can park with a runnable task, so the executor also runs a ticker every
/// [`keep_awake::PERIOD`] (10 ms), and a watchdog thread wakes it when the ticker falls
/// silent: see [`keep_awake`] for the exact sequence and why it cannot be avoided from
/// outside glommio. The ticker also samples the shard's scheduling delay
/// ([`super::sched_probe`]).
pub fn spawn_shard<G, F, T>(
    id: usize,
    cpu: Option<usize>,
    spin: Duration,
    make: G,
) -> Result<ShardThread<T>, RuntimeError>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    spawn_shard_with(id, cpu, spin, KeepAwake::Ticker, make)
}

/// Whether a shard's executor is kept from sleeping with runnable work (see [`keep_awake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepAwake {
    /// The ticker and the watchdog: what every shard runs.
    Ticker,
    /// Neither: glommio's own behaviour, for the tests that reproduce its stall.
    #[cfg(test)]
    Off,
    /// The watchdog alone (it then wakes the thread every 100 ms), for the test that shows it
    /// ends a park with work.
    #[cfg(test)]
    WatchdogOnly,
}

impl KeepAwake {
    /// Whether the shard gets a watchdog thread.
    fn watchdog(self) -> bool {
        match self {
            KeepAwake::Ticker => true,
            #[cfg(test)]
            KeepAwake::WatchdogOnly => true,
            #[cfg(test)]
            KeepAwake::Off => false,
        }
    }
}

/// [`spawn_shard`], choosing what keeps the executor awake.
pub(crate) fn spawn_shard_with<G, F, T>(
    id: usize,
    cpu: Option<usize>,
    spin: Duration,
    keep: KeepAwake,
    make: G,
) -> Result<ShardThread<T>, RuntimeError>
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
    let heartbeat = Arc::new(Heartbeat::default());
    let heartbeat_here = heartbeat.clone();
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // Also ends the watch if the thread returns early (no executor).
            let _watched = heartbeat_here.enter();
            let ex = LocalExecutorBuilder::new(placement)
                .name(&name)
                .io_memory(IO_MEMORY)
                .preempt_timer(PREEMPT_AFTER)
                .spin_before_park(spin)
                .make()
                .map_err(|e| explain_executor_error(&e))?;
            let ticker = async {
                match keep {
                    KeepAwake::Ticker => {
                        keep_awake::tick_forever(keep_awake::PERIOD, &heartbeat_here).await
                    }
                    #[cfg(test)]
                    KeepAwake::Off | KeepAwake::WatchdogOnly => std::future::pending().await,
                }
            };
            let main = async {
                // The shard's work is a task of its own, polled only when its own events wake
                // it. Polled inside this future it would be polled again at every tick, and
                // glommio keeps one waker per poll of a pending accept (a 16-bit count): the
                // listeners' accepts overflowed it and panicked the shard after ~3 minutes.
                glommio::spawn_local(make()).await
            };
            Ok(ex.run(futures_lite::future::or(ticker, main)))
        })
        .map_err(|source| RuntimeError::Thread { shard: id, source })?;
    if keep.watchdog() {
        heartbeat
            .watch(id)
            .map_err(|source| RuntimeError::Thread { shard: id, source })?;
    }
    Ok(ShardThread { handle })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll};

    use super::*;

    /// Counts the polls of the future it wraps.
    struct CountPolls<F> {
        polls: Rc<Cell<u32>>,
        inner: Pin<Box<F>>,
    }

    impl<F: Future> Future for CountPolls<F> {
        type Output = F::Output;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            self.polls.set(self.polls.get() + 1);
            self.inner.as_mut().poll(cx)
        }
    }

    #[test]
    fn the_ticker_does_not_poll_the_shards_work() {
        let shard = spawn_shard(0, None, Duration::ZERO, || async {
            let polls = Rc::new(Cell::new(0));
            let wait = CountPolls {
                polls: polls.clone(),
                inner: Box::pin(super::super::sleep(Duration::from_millis(300))),
            };
            wait.await;
            polls.get()
        })
        .expect("spawn shard");
        // 300 ms is 30 ticks: polled at every tick, the future would count about 31.
        let polls = shard.join().expect("the shard ran");
        assert!(polls <= 3, "polled {polls} times while it waited");
    }

    /// The wake-up signal must be harmless to a running executor: it interrupts io_uring
    /// waits and timers, which glommio treats as spurious wake-ups.
    #[test]
    fn the_wake_signal_does_not_disturb_a_running_shard() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let shard = spawn_shard(0, None, Duration::ZERO, move || async move {
            // SAFETY: gettid has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            let mut slept = 0;
            for _ in 0..20 {
                super::super::sleep(Duration::from_millis(10)).await;
                slept += 1;
            }
            slept
        })
        .expect("spawn shard");
        let tid = tid_rx.recv().expect("the shard runs");
        for _ in 0..50 {
            keep_awake::wake_thread(tid);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(shard.join().ok(), Some(20));
    }
}
