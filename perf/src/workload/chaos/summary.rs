//! The outcome of a chaos run: counts, restart time percentiles, and every violation found.

use serde::Serialize;

/// What a chaos run did and found (`--json` prints it as one object).
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub shards: usize,
    /// Kill-and-restart cycles completed (each followed by a full check).
    pub cycles: u32,
    /// SIGSTOP pauses, and kills made while the broker was stopped.
    pub stops: u32,
    pub kills_while_stopped: u32,
    /// Messages the client was told were stored.
    pub acknowledged: u64,
    /// Messages whose answer was lost (a failed call or delivery): may or may not be stored.
    pub maybe: u64,
    /// Of those, the ones found in the topic.
    pub maybe_stored: u64,
    /// Acknowledged messages found, at the offset where they were first found, by the last
    /// check.
    pub verified: u64,
    /// Records in the topic at the last check.
    pub records: u64,
    /// Extra copies of messages the framed producer sent again after a crash.
    pub duplicates: u64,
    /// Messages of one key stored after later ones because they were sent again.
    pub reordered_by_retry: u64,
    /// Records a consumer group was delivered again after a crash (never below its last
    /// acknowledged commit).
    pub redeliveries: u64,
    pub violations: u64,
    pub restart_ms_p50: f64,
    pub restart_ms_p99: f64,
    pub restart_ms_max: f64,
    pub duration_s: f64,
    /// The first violations (all of them are printed to stderr as found).
    pub violation_list: Vec<String>,
    /// Why the run stopped early, if it did for any reason other than a violation.
    pub failure: Option<String>,
}

/// The `q` quantile (0..=1) of `samples` in milliseconds (nearest rank).
pub fn quantile_ms(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

impl Summary {
    pub fn to_text(&self) -> String {
        let mut t = format!(
            "chaos: seed {} shards {}: {} cycles ({} SIGSTOP pauses, {} kills while stopped) in {:.1} s\n\
             messages: {} acknowledged, {} maybe ({} of them stored); {} acknowledged verified, {} records in the topic\n\
             {} duplicates from retries, {} reordered by retries, {} group redeliveries\n\
             restart: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n\
             violations: {}\n",
            self.seed,
            self.shards,
            self.cycles,
            self.stops,
            self.kills_while_stopped,
            self.duration_s,
            self.acknowledged,
            self.maybe,
            self.maybe_stored,
            self.verified,
            self.records,
            self.duplicates,
            self.reordered_by_retry,
            self.redeliveries,
            self.restart_ms_p50,
            self.restart_ms_p99,
            self.restart_ms_max,
            self.violations,
        );
        for v in &self.violation_list {
            t.push_str(&format!("  {v}\n"));
        }
        if let Some(f) = &self.failure {
            t.push_str(&format!("failure: {f}\n"));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile_ms(&s, 0.5), 50.0);
        assert_eq!(quantile_ms(&s, 0.99), 99.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
        assert_eq!(quantile_ms(&[3.0], 0.99), 3.0);
    }
}
