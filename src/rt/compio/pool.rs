//! One compio runtime thread per shard, pinned to a CPU the process may run on; the host
//! checks that come first are in [`super::host`] (re-exported here).
//!
//! No ticker and no watchdog: compio's executor looks at its run queue before every wait in
//! `io_uring_enter` (it waits only when no task is ready), so the park with runnable work that
//! glommio 0.9 needs them for does not arise; `perf/start-loop.sh` checks starts for hangs.

use std::future::Future;
use std::time::Duration;

use super::host::steer_helpers;
pub use super::host::{
    allowed_cpus, explain_executor_error, preflight, RuntimeError, ShardSetup, ShardThread,
};

/// Starts shard `id` on its own thread running a pinned runtime (CPU `setup.cpu`, if given;
/// its io_uring workers on `setup.helper_cpus`, if any; compio's blocking-pool threads are
/// started from the shard's thread, inherit its CPU and are not moved).
/// `make` builds the shard's main future on that thread. `_spin` (how long the glommio
/// build polls before it sleeps) has no compio counterpart and is ignored.
pub fn spawn_shard<G, F, T>(
    id: usize,
    setup: impl Into<ShardSetup>,
    _spin: Duration,
    make: G,
) -> Result<ShardThread<T>, RuntimeError>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let setup: ShardSetup = setup.into();
    let handle = std::thread::Builder::new()
        .name(format!("shard-{id}"))
        .spawn(move || {
            if let Some(cpu) = setup.cpu {
                core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
            }
            let rt = compio::runtime::Runtime::new().map_err(|e| explain_executor_error(&e))?;
            // The shard's work is a task of its own, as in the glommio build.
            Ok(rt.block_on(async move {
                steer_helpers(id, &setup.helper_cpus);
                super::spawn(make()).await
            }))
        })
        .map_err(|source| RuntimeError::Thread { shard: id, source })?;
    Ok(ShardThread { handle })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_runs_its_future_on_its_cpu() {
        let cpu = allowed_cpus().first().copied();
        let shard = spawn_shard(0, cpu, Duration::ZERO, || async {
            super::super::sleep(Duration::from_millis(20)).await;
            7
        })
        .expect("spawn shard");
        assert_eq!(shard.join().ok(), Some(7));
    }
}
