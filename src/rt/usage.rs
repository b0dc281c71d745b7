//! How busy a shard's thread is, for the adaptive zstd level: its CPU time
//! (`getrusage(RUSAGE_THREAD)`), less the spin that preceded each park.
//!
//! glommio's own account (`ExecutorStats::executor_runtime`, `total_runtime`) does not serve:
//! it credits a run of task queues when the run ends, and on a loaded shard runs went
//! uncredited for seconds (measured: 0–30 ms credited per 250–400 ms window, at 250 K msgs/s
//! and at saturation alike). Thread CPU time is exact when the shard is saturated, but counts
//! `--spin-before-park`'s polling as work: a spin that ends in a park (a voluntary context
//! switch, in `io_uring_enter`) is taken off here; one that ends because work arrived cannot
//! be, so at moderate load this clock reads high. The adaptive level therefore also asks that
//! zstd take most of the core before it steps down (`shard/adaptive_level.rs`).

use std::time::Duration;

/// Whether this runtime spins before it parks (`--spin-before-park`): glommio does, compio
/// does not.
pub const SPINS_BEFORE_PARK: bool = cfg!(not(feature = "rt-compio"));

/// A thread's resource use so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadUsage {
    /// CPU time, user and system.
    pub cpu: Duration,
    /// Voluntary context switches: the times it blocked (parked).
    pub parks: u64,
}

impl ThreadUsage {
    /// The calling thread's use so far (zero if the kernel will not say).
    pub fn now() -> ThreadUsage {
        // SAFETY: an all-zero rusage is a valid value; getrusage fills it for this thread.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_THREAD with a pointer to the rusage we own.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
            return ThreadUsage::default();
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        ThreadUsage {
            cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
            parks: ru.ru_nvcsw.max(0) as u64,
        }
    }

    /// The busy time between `earlier` and this: CPU time less `spin` per park.
    pub fn busy_since(&self, earlier: &ThreadUsage, spin: Duration) -> Duration {
        let cpu = self.cpu.saturating_sub(earlier.cpu);
        let parks = self.parks.saturating_sub(earlier.parks);
        let spun = spin.saturating_mul(u32::try_from(parks).unwrap_or(u32::MAX));
        cpu.saturating_sub(spun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_work_counts_and_sleeping_does_not() {
        let a = ThreadUsage::now();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let b = ThreadUsage::now();
        assert!(b.busy_since(&a, Duration::ZERO) > Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(50));
        let c = ThreadUsage::now();
        assert!(c.parks > b.parks, "a sleep is a voluntary switch");
        assert!(c.busy_since(&b, Duration::ZERO) < Duration::from_millis(10));
        // Spin is taken off per park, never below zero.
        assert_eq!(c.busy_since(&b, Duration::from_secs(1)), Duration::ZERO);
    }
}
