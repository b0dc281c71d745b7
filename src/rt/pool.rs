//! One glommio executor thread per shard, pinned to a CPU the process may run on; the host
//! checks that come first are in [`super::host`] (re-exported here).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use glommio::{
    CpuSet, LocalExecutorBuilder, Placement, PoolPlacement, StallDetectionHandler, TaskQueueHandle,
};

pub use super::host::{
    allowed_cpus, explain_executor_error, preflight, RuntimeError, ShardSetup, ShardThread,
};
use super::host::{steer_helpers, IO_MEMORY};
use super::keep_awake::{self, Heartbeat};

/// How long a task may run before `yield_if_needed` yields (glommio's default is 100 ms).
/// Compression yields between chunks, so this bounds how long a burst of compression holds
/// up socket reads and completions on the shard.
const PREEMPT_AFTER: Duration = Duration::from_millis(1);

/// Starts shard `id` on its own thread running a pinned executor (CPU `setup.cpu`, if
/// given; its helper threads on `setup.helper_cpus`, if any). `make` builds the shard's main
/// future on that thread.
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
    setup: impl Into<ShardSetup>,
    spin: Duration,
    make: G,
) -> Result<ShardThread<T>, RuntimeError>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    spawn_shard_with(id, setup.into(), spin, KeepAwake::Ticker, make)
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
    setup: ShardSetup,
    spin: Duration,
    keep: KeepAwake,
    make: G,
) -> Result<ShardThread<T>, RuntimeError>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match setup.cpu {
        Some(c) => Placement::Fixed(c),
        None => Placement::Unbound,
    };
    // glommio's default puts the one blocking-pool thread where the executor is.
    let blocking_pool = match setup.helper_cpus.is_empty() {
        true => None,
        false => match CpuSet::online() {
            Ok(online) => Some(PoolPlacement::Fenced(
                1,
                online.filter(|l| setup.helper_cpus.contains(&l.cpu)),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the online CPUs: the blocking pool stays on the shard's core");
                None
            }
        },
    };
    let name = format!("shard-{id}");
    let heartbeat = Arc::new(Heartbeat::default());
    let heartbeat_here = heartbeat.clone();
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // Also ends the watch if the thread returns early (no executor).
            let _watched = heartbeat_here.enter();
            let mut builder = LocalExecutorBuilder::new(placement)
                .name(&name)
                .io_memory(IO_MEMORY)
                .preempt_timer(PREEMPT_AFTER)
                .spin_before_park(spin);
            if let Some(p) = blocking_pool {
                builder = builder.blocking_thread_pool_placement(p);
            }
            if let Some(over) = setup.stall_report {
                builder = builder.detect_stalls(Some(Box::new(StallReport { over })));
            }
            let ex = builder.make().map_err(|e| explain_executor_error(&e))?;
            // Before the executor runs: the /proc scan it does is start-up work, not the reactor's.
            steer_helpers(id, &setup.helper_cpus);
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
                if setup.stall_report.is_some() {
                    let executor = glommio::executor().id();
                    tracing::info!(
                        shard = id,
                        executor,
                        "stall reports name this shard by its executor"
                    );
                }
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

/// `--stall-report`: glommio's stall detector arms a timer for every turn of a task queue
/// (the turn's budget, [`PREEMPT_AFTER`], plus `over`); when it fires, the shard's thread is
/// interrupted and its stack captured, so the report shows the code that held the executor
/// (a task that did not yield), not a guess. glommio logs it (one warning, target
/// `glommio::executor::stall`, naming the executor and the overrun) through the `log` facade,
/// which the broker's subscriber takes in.
#[derive(Debug)]
struct StallReport {
    over: Duration,
}

impl StallDetectionHandler for StallReport {
    fn threshold(&self, _queue: TaskQueueHandle, _budget: Duration) -> Option<Duration> {
        Some(self.over)
    }
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
