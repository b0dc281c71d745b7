//! `--cpus`: the one check that the CPUs named are this process's, and pinning threads to them.

/// Checks a `--cpus` list: not empty, and every CPU available to this process.
pub fn check(cpus: &[usize]) -> Result<(), String> {
    if cpus.is_empty() {
        return Err("--cpus names no CPU".into());
    }
    let available: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if let Some(bad) = cpus.iter().find(|c| !available.contains(c)) {
        return Err(format!(
            "--cpus: CPU {bad} is not available to this process (available: {available:?})"
        ));
    }
    Ok(())
}

/// [`check`] when a list was given.
pub fn check_if_any(cpus: &Option<Vec<usize>>) -> Result<(), String> {
    cpus.as_deref().map_or(Ok(()), check)
}

/// Pins the current thread to the `n`-th CPU of the list (cycling), if there is a list.
pub fn pin(cpus: &Option<Vec<usize>>, n: usize) {
    if let Some(cpus) = cpus {
        core_affinity::set_for_current(core_affinity::CoreId {
            id: cpus[n % cpus.len()],
        });
    }
}

/// A tokio runtime for a workload's connection tasks: one worker per CPU of `cpus`, each pinned
/// to its CPU, or tokio's default (one per core, unpinned). Timers and I/O are enabled.
pub fn runtime(cpus: &Option<Vec<usize>>, name: &str) -> Result<tokio::runtime::Runtime, String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().thread_name(name);
    if let Some(list) = cpus.clone() {
        b.worker_threads(list.len());
        let next = Arc::new(AtomicUsize::new(0));
        let cpus = Some(list);
        b.on_thread_start(move || pin(&cpus, next.fetch_add(1, Ordering::Relaxed)));
    }
    b.build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))
}
