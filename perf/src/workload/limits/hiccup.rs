//! `hiccup`: how long the host itself takes the measuring core away. One thread spins on the
//! pinned CPU reading the clock; every gap between two readings longer than a threshold is
//! time the thread did not run (an interrupt, a kernel thread, the hypervisor's steal). This
//! is the floor under the broker's scheduling-delay target (no ready task waits more than
//! 20 ms): no executor on that core can see shorter waits than a bare spinning thread does.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Gap thresholds counted, ms: 10 and 25 are the broker's scheduling-delay histogram bounds
/// around the 20 ms target.
pub const GAP_BOUNDS_MS: [f64; 6] = [1.0, 2.0, 5.0, 10.0, 20.0, 25.0];

#[derive(Debug, Clone, Serialize)]
pub struct HiccupLimits {
    pub seconds: f64,
    /// Gaps longer than each of [`GAP_BOUNDS_MS`], in that order.
    pub gaps_over_ms: Vec<(f64, u64)>,
    /// The longest gap, ms.
    pub worst_ms: f64,
    /// The time lost in gaps longer than 1 ms, ms.
    pub lost_ms: f64,
}

/// Spins for `time` on the calling thread (already pinned) and counts the gaps.
pub fn hiccup(time: Duration) -> HiccupLimits {
    let start = Instant::now();
    let mut counts = [0u64; GAP_BOUNDS_MS.len()];
    let (mut worst, mut lost) = (0.0f64, 0.0f64);
    let mut last = start;
    loop {
        let now = Instant::now();
        let gap = (now - last).as_secs_f64() * 1e3;
        last = now;
        if gap > GAP_BOUNDS_MS[0] {
            lost += gap;
            for (count, bound) in counts.iter_mut().zip(GAP_BOUNDS_MS) {
                if gap > bound {
                    *count += 1;
                }
            }
        }
        worst = worst.max(gap);
        if now - start >= time {
            break;
        }
    }
    HiccupLimits {
        seconds: start.elapsed().as_secs_f64(),
        gaps_over_ms: GAP_BOUNDS_MS.iter().copied().zip(counts).collect(),
        worst_ms: worst,
        lost_ms: lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fall_as_the_bound_rises_and_cover_the_time_asked() {
        let h = hiccup(Duration::from_millis(200));
        assert!(h.seconds >= 0.2, "{h:?}");
        assert_eq!(h.gaps_over_ms.len(), GAP_BOUNDS_MS.len());
        for w in h.gaps_over_ms.windows(2) {
            assert!(w[0].1 >= w[1].1, "{h:?}");
        }
        let longest_counted = h.gaps_over_ms.iter().rev().find(|(_, n)| *n > 0);
        if let Some((bound, _)) = longest_counted {
            assert!(h.worst_ms > *bound, "{h:?}");
        }
        assert!(h.lost_ms <= h.seconds * 1e3, "{h:?}");
    }
}
