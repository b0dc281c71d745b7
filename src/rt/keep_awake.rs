//! What keeps a shard's glommio 0.9 executor from sleeping while it has work to run.
//!
//! glommio 0.9 can park with a runnable task. Its executor loop
//! (`LocalExecutor::run`) does, in turn:
//!
//! 1. `poll_io`: reap completions, then arm the preemption timer (`PREEMPT_AFTER`, 1 ms) in
//!    the latency ring;
//! 2. `run_task_queues`: loop { if `need_preempt()` { break } run one task queue }, returning
//!    whether it ran any queue;
//! 3. if it ran none: spin for `spin_before_park`, then `park`, which sleeps in
//!    `io_uring_enter` until a completion, a timer of the wheel, or another thread's wake-up
//!    (eventfd).
//!
//! `need_preempt()` is "the latency ring has a completion not yet reaped". When it is true at
//! the first check of step 2, `run_task_queues` returns "ran nothing" although its queues are
//! full, and step 3 parks: nothing looks at the queues before sleeping. The work behind them
//! is this executor's own, so no completion is coming for it. The completion that makes the
//! check true can be:
//!
//! - the preemption timer itself, when the thread is descheduled for longer than 1 ms between
//!   arming it and checking it (two or three syscalls apart): any CPU contention does that;
//! - an eventfd write by another shard's thread: a shard that bailed out of a sleep because a
//!   remote event arrived meanwhile stays marked "sleeping", so the next remote wake writes
//!   its eventfd while it runs, and that write can land in the window;
//! - glommio's throughput timer, which writes the eventfd after a ring's depth of completions.
//!
//! None of these can be prevented from outside glommio: the window lies between two of its
//! own calls, no code of ours runs in it, and neither `spin_before_park` (it spins only until
//! a completion or a timer wakes something, never looking at the queues) nor a longer
//! preemption timer (the eventfd paths remain) closes it. The maintained fork of glommio fixed
//! it inside `run_task_queues` ("preempted before running anything" is no longer read as
//! "nothing to run"). What this module does instead bounds the stall:
//!
//! - a ticker: every shard's executor always has a timer due within [`PERIOD`], so a park
//!   with runnable work ends at the next tick at the latest;
//! - a watchdog thread per shard, which wakes the shard's thread with a signal
//!   ([`wake_thread`]: the io_uring wait returns EINTR) whenever its ticker has not ticked for
//!   [`WATCHDOG`]. Before the first task has run there is no timer yet; and the start loop
//!   (`perf/start-loop.sh`) found executors asleep in `io_uring_enter` with the ticker's timer
//!   registered, not ticking for 30 s, twice in about 2,100 starts under CPU contention, one
//!   while joining the shard mesh (the cause is not known; attaching a debugger, which ends
//!   the wait as the watchdog's signal does, let the start go on).
//!
//! The tests below reproduce the stall with both off, and show that each bounds it.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sched_probe;

/// The longest a shard's executor sleeps without looking at its task queues.
pub const PERIOD: Duration = Duration::from_millis(10);

/// How long a shard's ticker may stay silent before the watchdog wakes its thread.
pub const WATCHDOG: Duration = Duration::from_millis(100);

/// Ticks every `period`, never returning: counts each tick in `heartbeat` for the watchdog,
/// and measures the shard's scheduling delay ([`sched_probe::wake_and_measure`]), so the timer
/// that keeps the executor awake pays for itself with a sample.
pub async fn tick_forever<T>(period: Duration, heartbeat: &Heartbeat) -> T {
    loop {
        super::sleep(period).await;
        heartbeat.ticks.fetch_add(1, Ordering::Relaxed);
        sched_probe::wake_and_measure().await;
    }
}

/// Sends thread `tid` of this process the wake-up signal: its handler does nothing, and it is
/// installed without `SA_RESTART`, so it only ends a blocking wait (io_uring returns EINTR,
/// which glommio treats as a wake-up). A thread id that has gone away is harmless: `tgkill`
/// reaches only threads of this process, and to any of them the signal is a spurious wake-up.
pub fn wake_thread(tid: libc::pid_t) {
    // SAFETY: tgkill only sends a signal, whose handler (installed by `wake_signal`) does
    // nothing.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, wake_signal()) };
}

/// The wake-up signal, its do-nothing handler installed on first use.
pub fn wake_signal() -> libc::c_int {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    extern "C" fn ignore(_: libc::c_int) {}
    let sig = libc::SIGRTMIN();
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction with an async-signal-safe handler that does nothing,
        // installed once, before any thread is sent the signal.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    });
    sig
}

/// What the watchdog knows of its shard's thread.
#[derive(Default)]
pub struct Heartbeat {
    /// The thread's id (0 until it has one).
    tid: AtomicI32,
    /// The ticker's ticks so far.
    ticks: AtomicU64,
    /// Set when the thread ends: the watchdog stops.
    done: AtomicBool,
}

impl Heartbeat {
    /// Called on the shard's thread before its executor starts; the returned guard stops the
    /// watchdog when dropped (when the thread ends, also early, with no executor).
    pub fn enter(&self) -> EndWatch<'_> {
        // SAFETY: gettid has no preconditions.
        self.tid.store(unsafe { libc::gettid() }, Ordering::Release);
        EndWatch(self)
    }

    /// Starts the watchdog thread of shard `id`: every [`WATCHDOG`], if the ticker has not
    /// ticked since the last look, it signals the shard's thread, which ends a sleep in
    /// `io_uring_enter` and is otherwise harmless (see [`wake_thread`]).
    pub fn watch(self: Arc<Self>, id: usize) -> std::io::Result<()> {
        wake_signal();
        std::thread::Builder::new()
            .name(format!("shard-{id}-watch"))
            .spawn(move || {
                let mut last = u64::MAX;
                while !self.done.load(Ordering::Acquire) {
                    std::thread::sleep(WATCHDOG);
                    let ticks = self.ticks.load(Ordering::Relaxed);
                    let tid = self.tid.load(Ordering::Acquire);
                    if ticks == last && tid != 0 && !self.done.load(Ordering::Acquire) {
                        // Rare on a healthy host (a healthy shard ticks 10 times meanwhile),
                        // so each one is worth a line: `perf/start-loop.sh` counts them.
                        tracing::info!(
                            shard = id,
                            ticks,
                            "shard's ticker was silent for {} ms; woke its thread",
                            WATCHDOG.as_millis()
                        );
                        wake_thread(tid);
                    }
                    last = ticks;
                }
            })
            .map(|_| ())
    }
}

/// Stops a [`Heartbeat`]'s watchdog when dropped.
pub struct EndWatch<'a>(&'a Heartbeat);

impl Drop for EndWatch<'_> {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
    }
}

#[cfg(test)]
#[path = "keep_awake_tests.rs"]
mod tests;
