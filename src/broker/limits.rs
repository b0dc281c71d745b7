//! Process limits the broker raises itself at start.
//!
//! Every partition in use holds open files (its segments, their indexes), so a broker with
//! many topics needs more descriptors than the common default soft limit of 1024. The soft
//! limit may be raised up to the hard limit without privileges, so the broker does it and
//! says so in one line; the operator sets the hard limit (`LimitNOFILE=`, `ulimit -Hn`).

/// The process's `RLIMIT_NOFILE` (soft, hard), or `None` if it cannot be read.
pub fn nofile() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    Some((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and logs one line saying so (old → new).
/// Returns the soft limit in force afterwards.
pub fn raise_nofile() -> Option<u64> {
    let (soft, hard) = nofile()?;
    if soft >= hard {
        tracing::info!(
            open_files = soft,
            "open-files limit (RLIMIT_NOFILE) is at its hard limit"
        );
        return Some(soft);
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!(
            soft,
            hard,
            "cannot raise the open-files limit (RLIMIT_NOFILE) to its hard limit: {e}"
        );
        return Some(soft);
    }
    tracing::info!(
        "raised the open-files limit (RLIMIT_NOFILE) from {soft} to {hard} (its hard limit)"
    );
    Some(hard)
}

/// Why `--max-open-files` does not fit the open-files limit, if it does not: the partitions
/// of all shards may hold `shards × max_open_files` descriptors, and connections, listeners
/// and the runtime need the rest, so more than half the limit is worth a warning.
pub fn open_files_warning(shards: usize, max_open_files: usize, limit: u64) -> Option<String> {
    let partitions = shards as u64 * max_open_files as u64;
    (partitions > limit / 2).then(|| {
        format!(
            "--max-open-files × shards ({max_open_files} × {shards} = {partitions}) is more than \
             half the open-files limit ({limit}); connections need descriptors too: lower \
             --max-open-files or raise the hard limit (LimitNOFILE=, ulimit -Hn)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_past_half_the_limit_is_worth_a_warning() {
        assert_eq!(open_files_warning(2, 1024, 1 << 20), None);
        let w = open_files_warning(4, 1024, 4096).unwrap();
        assert!(w.contains("4096") && w.contains("--max-open-files"), "{w}");
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let (_, hard) = nofile().unwrap();
        assert_eq!(raise_nofile(), Some(hard));
        assert_eq!(nofile(), Some((hard, hard)));
    }
}
