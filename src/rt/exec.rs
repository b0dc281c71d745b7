//! Executors, tasks, timers and the runtime's own types, on glommio.

use std::future::Future;
use std::time::Duration;

pub use glommio::net::{TcpListener, TcpStream};
pub use glommio::sync::{Semaphore, StaticPermit};
pub use glommio::Task;

/// Runs `fut` to completion on a fresh single-threaded executor on the current thread
/// (unpinned). For tests and offline tools; the broker uses the pinned shard pool.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("failed to create an io_uring executor")
        .run(fut)
}

/// Runs `fut` like [`block_on`] on an executor that never preempts a task for running long
/// (`yield_if_needed` does not yield), so the order in which its tasks run does not depend
/// on the clock: a simulation on an in-memory file system (`storage::sim`) then makes the
/// same operations in the same order every time, and a seed replays exactly.
pub fn block_on_unpreempted<F>(fut: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    glommio::LocalExecutorBuilder::default()
        .preempt_timer(std::time::Duration::from_secs(24 * 3600))
        .make()
        .expect("failed to create an io_uring executor")
        .run(fut)
}

thread_local! {
    /// The executor [`block_on_reused`] runs futures on, made on first use.
    static REUSED: glommio::LocalExecutor = glommio::LocalExecutorBuilder::default()
        .make()
        .expect("failed to create an io_uring executor");
}

/// Runs `fut` to completion like [`block_on`], but on one executor this thread keeps and
/// reuses: for callers that run many short futures in turn (the fuzz targets run one per
/// input), where making an io_uring executor each time would cost more than the work.
pub fn block_on_reused<F: Future>(fut: F) -> F::Output {
    REUSED.with(|ex| ex.run(fut))
}

/// Spawns a task on the current shard and lets it run on its own.
pub fn spawn_detached<T: 'static>(fut: impl Future<Output = T> + 'static) {
    glommio::spawn_local(fut).detach();
}

/// Spawns a task on the current shard; dropping the handle cancels it.
pub fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) -> Task<T> {
    glommio::spawn_local(fut)
}

/// Runs blocking work (e.g. a file write with `fsync`) on the runtime's blocking thread pool,
/// so the shard's reactor keeps serving while it runs.
pub async fn spawn_blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(f).await
}

/// Sleeps on the shard's timer.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// Resolves after the executor's next pass through its reactor. glommio hands queued I/O
/// (a disk write, say) to the kernel only between runs of its task queues, so a task that
/// queued a write and is about to compress for a millisecond waits for this first: the write
/// then proceeds on the device while the CPU works.
pub async fn next_io_turn() {
    // A timer fires only from the reactor's poll, which submits queued I/O first. 10 µs is
    // long enough that the timer cannot already be due when first polled.
    sleep(Duration::from_micros(10)).await;
}

/// Yields to other tasks if this one has run for longer than the runtime's time slice; cheap
/// to call often in CPU-heavy loops.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await;
}
