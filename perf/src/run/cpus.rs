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
