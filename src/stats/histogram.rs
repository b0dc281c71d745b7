//! A fixed-bucket latency histogram for one shard: plain `Cell`s, no atomics, no allocation.
//! Recording is a short scan of the bucket bounds and two additions.

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds: 50 µs to 5 s in 1–2.5–5 steps. Values above
/// the last bound land in the implicit `+Inf` bucket.
pub const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// Buckets including `+Inf`.
pub const SLOTS: usize = BUCKETS_US.len() + 1;

/// A shard-local histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    counts: [Cell<u64>; SLOTS],
    sum_us: Cell<u64>,
}

impl Histogram {
    /// Records one observation of `us` microseconds.
    #[inline]
    pub fn record_us(&self, us: u64) {
        let i = BUCKETS_US.partition_point(|&b| b < us);
        let c = &self.counts[i];
        c.set(c.get() + 1);
        self.sum_us.set(self.sum_us.get().saturating_add(us));
    }

    /// Records one observation.
    #[inline]
    pub fn record(&self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// A plain copy of the current state.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].get()),
            sum_us: self.sum_us.get(),
        }
    }
}

/// A histogram's state as plain data (`Send`), mergeable across shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per-bucket (not cumulative) counts, bucket `i` bounded by [`BUCKETS_US`]`[i]`; the last
    /// slot counts observations above every bound.
    pub counts: [u64; SLOTS],
    pub sum_us: u64,
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s observations to this one.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// Buckets as `(upper bound in seconds, count in this bucket)`, the last bound being
    /// `+Inf`: the shape `prometheus-client` encodes (it accumulates them).
    pub fn buckets_seconds(&self) -> [(f64, u64); SLOTS] {
        std::array::from_fn(|i| {
            let bound = BUCKETS_US
                .get(i)
                .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
            (bound, self.counts[i])
        })
    }

    /// The sum of observations in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let h = Histogram::default();
        for us in [0, 50, 51, 100, 4_999_999, 5_000_000, 5_000_001, u64::MAX] {
            h.record_us(us);
        }
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2, "0 and 50 (le is inclusive)");
        assert_eq!(s.counts[1], 2, "51 and 100");
        assert_eq!(s.counts[15], 2, "just under and exactly 5 s");
        assert_eq!(s.counts[16], 2, "above 5 s goes to +Inf");
        assert_eq!(s.count(), 8);
        assert_eq!(s.sum_us, u64::MAX, "the sum saturates");
    }

    #[test]
    fn durations_and_sums() {
        let h = Histogram::default();
        h.record(Duration::from_micros(700));
        h.record(Duration::from_millis(3));
        let s = h.snapshot();
        assert_eq!(s.counts[4], 1, "700 µs ≤ 1 ms");
        assert_eq!(s.counts[6], 1, "3 ms ≤ 5 ms");
        assert_eq!(s.sum_us, 3_700);
        assert!((s.sum_seconds() - 0.0037).abs() < 1e-12);
        let b = s.buckets_seconds();
        assert_eq!(b[0], (50e-6, 0));
        assert_eq!(b[4], (0.001, 1));
        assert_eq!(b[16].0, f64::INFINITY);
    }

    #[test]
    fn merge_adds_counts_and_sums() {
        let (a, b) = (Histogram::default(), Histogram::default());
        a.record_us(10);
        b.record_us(10);
        b.record_us(1_000_000);
        let mut m = a.snapshot();
        m.merge(&b.snapshot());
        assert_eq!(m.counts[0], 2);
        assert_eq!(m.counts[13], 1);
        assert_eq!(m.count(), 3);
        assert_eq!(m.sum_us, 1_000_020);
    }
}
