//! The runtime boundary: the only module that names glommio. Everything else in the crate sees
//! plain futures, `Rc`, and the small types re-exported here, so moving to another io_uring
//! runtime would touch this folder alone.
//!
//! - [`pool`]: one pinned executor thread per shard, and the start-up checks (io_uring allowed,
//!   memlock limit) that turn an obscure runtime failure into one clear line.
//! - [`keep_awake`]: the ticker that bounds glommio 0.9's park with runnable work (why it
//!   cannot be avoided from outside glommio, and the tests that reproduce it).
//! - [`sched_probe`]: each shard's scheduling delay (ready to polled), for `/metrics`.
//! - re-exports: TCP sockets, the local semaphore used for backpressure, the shard mesh, tasks
//!   and timers.
//! - [`vectored`]: vectored socket writes (`sendmsg`) with the runtime's write as fallback.
//! - [`listen`]: listening sockets with `SO_REUSEADDR` and `SO_REUSEPORT`.
//! - [`rendezvous`]: every shard waits for the others (graceful shutdown's one barrier).
//! - [`fs`]: the real file system ([`fs::RealFs`]): DMA segment files ([`dma`]), buffered
//!   files, directories and the data directory's lock.

pub mod keep_awake;
pub mod listen;
pub mod mesh;
pub mod pool;
pub mod recv;
pub mod rendezvous;
pub mod sched_probe;
pub mod vectored;

pub use mesh::{MeshError, MeshPort, ShardMesh};
pub use rendezvous::Rendezvous;

pub mod dma;
pub mod fs;

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

/// Detaches an accepted connection from this shard so another shard can serve it: returns a
/// duplicate of its socket; the original descriptor closes with `stream` (closing one of two
/// descriptors does not shut the socket down).
pub fn detach_stream(stream: TcpStream) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor `stream` owns; on success the new
    // descriptor is ours alone.
    let dup = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(stream);
    // SAFETY: `dup` is a fresh descriptor nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(dup) })
}

/// Serves a connection another shard detached ([`detach_stream`]) on this shard.
pub fn attach_stream(fd: std::os::fd::OwnedFd) -> TcpStream {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the descriptor is a connected TCP socket, and ownership moves to the stream.
    unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
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

/// Microseconds since the Unix epoch (a record's timestamp).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Sleeps on the shard's timer.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// Runs `fut` for at most `d` on the shard's timer: its output, or `None` when the time ran
/// out first (the future is then dropped, which cancels it).
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Option<F::Output> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        sleep(d).await;
        None
    })
    .await
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
