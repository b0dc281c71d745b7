//! The runtime boundary: the only module that names the runtime. Everything else in the crate
//! sees plain futures, `Rc`, and the small types re-exported here, so the runtime can change
//! inside this folder alone. It is glommio by default; with the `rt-compio` feature it is
//! compio (`compio/`: the same modules, chosen by `#[path]`), compared in
//! `docs/benchmarks.md`.
//!
//! - [`exec`]: executors, tasks, timers, the socket types, the semaphore (re-exported here).
//! - [`host`]: the checks before any executor starts (io_uring allowed, memlock limit) that
//!   turn an obscure runtime failure into one clear line, and the CPUs shards may use.
//! - [`pool`]: one pinned executor thread per shard.
//! - [`io_workers`]: steering a shard's io_uring worker threads off its core
//!   (`--io-worker-cpus`).
//! - `keep_awake` (glommio only): the ticker that bounds glommio 0.9's park with runnable work
//!   (why it cannot be avoided from outside glommio, and the tests that reproduce it).
//! - [`sched_probe`]: each shard's scheduling delay (ready to polled), for `/metrics`.
//! - [`usage`]: how busy a shard's thread is (CPU time less spinning), for the adaptive level.
//! - re-exports: TCP sockets, the local semaphore used for backpressure, the shard mesh, tasks
//!   and timers.
//! - [`vectored`]: vectored socket writes (`sendmsg`) with the runtime's write as fallback.
//! - [`listen`]: listening sockets with `SO_REUSEADDR` and `SO_REUSEPORT`.
//! - [`rendezvous`]: every shard waits for the others (graceful shutdown's one barrier).
//! - [`fs`]: the real file system ([`fs::RealFs`]): DMA segment files ([`dma`]), buffered
//!   files, directories and the data directory's lock.

#[cfg_attr(feature = "rt-compio", path = "compio/exec.rs")]
pub mod exec;
pub mod host;
pub mod io_workers;
#[cfg(not(feature = "rt-compio"))]
pub mod keep_awake;
pub mod listen;
#[cfg_attr(feature = "rt-compio", path = "compio/mesh.rs")]
pub mod mesh;
#[cfg(feature = "rt-compio")]
#[path = "compio/net.rs"]
pub mod net;
#[cfg_attr(feature = "rt-compio", path = "compio/pool.rs")]
pub mod pool;
pub mod recv;
pub mod rendezvous;
pub mod sched_probe;
#[cfg(feature = "rt-compio")]
#[path = "compio/semaphore.rs"]
pub mod semaphore;
pub mod usage;
pub mod vectored;

pub use exec::*;
pub use mesh::{MeshError, MeshPort, ShardMesh};
pub use rendezvous::Rendezvous;

#[cfg_attr(feature = "rt-compio", path = "compio/dma.rs")]
pub mod dma;
#[cfg_attr(feature = "rt-compio", path = "compio/fs.rs")]
pub mod fs;
mod fs_host;

use std::future::Future;
use std::time::Duration;

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

/// Microseconds since the Unix epoch (a record's timestamp).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
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
