//! Executors, tasks, timers and the runtime's own types, on compio.
//!
//! compio's executor has no time slice of its own, so [`yield_if_needed`] keeps one per thread
//! here: a task that has run for longer than [`SLICE`] since the thread last yielded yields.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use compio::runtime::{JoinError, JoinHandle, Runtime};

pub use super::net::{TcpListener, TcpStream};
pub use super::semaphore::{Semaphore, SemaphoreClosed, StaticPermit};

/// How long a task may run before [`yield_if_needed`] yields (the glommio build's preemption
/// timer is the same 1 ms).
pub const SLICE: Duration = Duration::from_millis(1);

thread_local! {
    /// When this thread last yielded in [`yield_if_needed`]; `None` on a thread whose
    /// executor never preempts ([`block_on_unpreempted`]).
    static SLICE_START: Cell<Option<Instant>> = Cell::new(Some(Instant::now()));
    /// The runtime [`block_on_reused`] runs futures on, made on first use.
    static REUSED: Runtime = new_runtime();
}

fn new_runtime() -> Runtime {
    Runtime::new().expect("failed to create an io_uring runtime")
}

/// A spawned task; awaiting it gives its output, dropping it cancels the task.
#[must_use = "dropping a Task cancels it"]
pub struct Task<T>(JoinHandle<T>);

impl<T> Task<T> {
    /// Lets the task run on its own.
    pub fn detach(self) {
        self.0.detach();
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(v)) => Poll::Ready(v),
            // The broker's panic hook has already ended the process; elsewhere (tests) the
            // panic goes on in the task that waits.
            Poll::Ready(Err(JoinError::Panicked(p))) => std::panic::resume_unwind(p),
            // Only a dropped handle cancels a task, and this one is being polled.
            Poll::Ready(Err(JoinError::Cancelled)) => Poll::Pending,
        }
    }
}

/// Runs `fut` to completion on a fresh single-threaded runtime on the current thread
/// (unpinned). For tests and offline tools; the broker uses the pinned shard pool.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    new_runtime().block_on(fut)
}

/// Runs `fut` like [`block_on`], never preempting a task for running long
/// (`yield_if_needed` does not yield), so the order in which its tasks run does not depend
/// on the clock: a simulation on an in-memory file system (`storage::sim`) then makes the
/// same operations in the same order every time, and a seed replays exactly.
pub fn block_on_unpreempted<F>(fut: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let before = SLICE_START.with(|s| s.replace(None));
    let out = block_on(fut);
    SLICE_START.with(|s| s.set(before));
    out
}

/// Runs `fut` to completion like [`block_on`], but on one runtime this thread keeps and
/// reuses: for callers that run many short futures in turn (the fuzz targets run one per
/// input), where making an io_uring instance each time would cost more than the work.
pub fn block_on_reused<F: Future>(fut: F) -> F::Output {
    REUSED.with(|rt| rt.block_on(fut))
}

/// Spawns a task on the current shard and lets it run on its own.
pub fn spawn_detached<T: 'static>(fut: impl Future<Output = T> + 'static) {
    compio::runtime::spawn(fut).detach();
}

/// Spawns a task on the current shard; dropping the handle cancels it.
pub fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) -> Task<T> {
    Task(compio::runtime::spawn(fut))
}

/// Runs blocking work (e.g. a file write with `fsync`) on the runtime's blocking thread pool,
/// so the shard's reactor keeps serving while it runs.
pub async fn spawn_blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Task(compio::runtime::spawn_blocking(f)).await
}

/// Sleeps on the shard's timer.
pub async fn sleep(d: Duration) {
    compio::time::sleep(d).await;
}

/// Hands the I/O queued so far to the kernel before the caller goes on with CPU work (a
/// disk write, say, then a millisecond of compression): the write then proceeds on the
/// device while the CPU works. compio queues submissions until its next poll; flushing
/// submits them now.
pub async fn next_io_turn() {
    Runtime::with_current(|rt| rt.flush());
}

/// Yields to other tasks if this thread has run tasks for longer than [`SLICE`] since it
/// last yielded; cheap to call often in CPU-heavy loops.
pub async fn yield_if_needed() {
    let due = SLICE_START.with(|s| match s.get() {
        Some(start) if start.elapsed() >= SLICE => {
            s.set(Some(Instant::now()));
            true
        }
        _ => false,
    });
    if due {
        YieldOnce(false).await;
    }
}

/// Pending once (after waking itself), so the executor runs the other ready tasks first.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
