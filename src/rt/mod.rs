//! The runtime boundary: the only module that names glommio. Everything else in the crate sees
//! plain futures, `Rc`, and the small types re-exported here, so moving to another io_uring
//! runtime would touch this folder alone.

pub mod dma;

use std::future::Future;

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
