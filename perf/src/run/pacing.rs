//! Pacing: when a run stops, how its units (PRODUCE frames, Produce calls) split the messages,
//! which key each unit carries, and the open-loop schedule.

use std::thread;
use std::time::{Duration, Instant};

/// When the run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many messages (warmup included) have been answered.
    Messages(u64),
    /// After this long (warmup included), then waiting for the answers in flight.
    Duration(Duration),
}

impl Stop {
    /// `--messages N` or `--duration D`; neither: 30 seconds.
    pub fn from_flags(messages: Option<u64>, duration: Option<Duration>) -> Stop {
        match (messages, duration) {
            (Some(n), _) => Stop::Messages(n),
            (None, Some(d)) => Stop::Duration(d),
            (None, None) => Stop::Duration(Duration::from_secs(30)),
        }
    }

    pub fn validate(self) -> Result<(), String> {
        match self {
            Stop::Messages(0) => Err("--messages must be at least 1".into()),
            Stop::Duration(d) if d.is_zero() => Err("--duration must be longer than zero".into()),
            _ => Ok(()),
        }
    }

    /// How many units of `per_unit` messages the run sends (`None`: as many as time allows).
    pub fn units(self, per_unit: usize) -> Option<u64> {
        match self {
            Stop::Messages(n) => Some(n.div_ceil(per_unit as u64)),
            Stop::Duration(_) => None,
        }
    }

    /// Messages in unit `unit` (the last unit of a `Messages` run may be short).
    pub fn messages_in(self, unit: u64, per_unit: usize) -> usize {
        let per = per_unit as u64;
        match self {
            Stop::Messages(n) => (n - unit * per).min(per) as usize,
            Stop::Duration(_) => per as usize,
        }
    }

    /// When a timed run stops sending.
    pub fn deadline(self, started: Instant) -> Option<Instant> {
        match self {
            Stop::Duration(d) => Some(started + d),
            Stop::Messages(_) => None,
        }
    }
}

/// How each unit's key is chosen among `key-0 .. key-{N-1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyOrder {
    RoundRobin,
    Random,
}

impl KeyOrder {
    /// The key index of unit `unit` among `keys` (at least 1); `Random` is seeded, reproducible.
    pub fn pick(self, unit: u64, keys: usize, seed: u64) -> usize {
        let n = keys as u64;
        (match self {
            KeyOrder::RoundRobin => unit % n,
            KeyOrder::Random => splitmix64(unit ^ seed) % n,
        }) as usize
    }

    /// As the flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            KeyOrder::RoundRobin => "round-robin",
            KeyOrder::Random => "random",
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The open loop's schedule: unit `u` is due at `started + u × period`. Without a period (closed
/// loop) nothing is scheduled.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub started: Instant,
    pub period: Option<Duration>,
}

impl Schedule {
    pub fn is_open_loop(&self) -> bool {
        self.period.is_some()
    }

    /// When unit `unit` is due (open loop only).
    pub fn intended(&self, unit: u64) -> Option<Instant> {
        self.period.map(|p| self.started + p.mul_f64(unit as f64))
    }
}

/// Sleeps until `at`, or until `stop()` says so (checked at least every 100 ms); the last
/// stretch is spun with `yield_now` for a precise wake-up.
pub fn sleep_until(at: Instant, stop: impl Fn() -> bool) {
    loop {
        let now = Instant::now();
        if now >= at || stop() {
            return;
        }
        let left = at - now;
        if left > Duration::from_micros(200) {
            thread::sleep((left - Duration::from_micros(100)).min(Duration::from_millis(100)));
        } else {
            thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_split_messages() {
        let stop = Stop::Messages(130);
        assert_eq!(stop.units(64), Some(3));
        assert_eq!(
            (
                stop.messages_in(0, 64),
                stop.messages_in(1, 64),
                stop.messages_in(2, 64)
            ),
            (64, 64, 2)
        );
        assert_eq!(Stop::Duration(Duration::from_secs(1)).units(64), None);
    }

    #[test]
    fn keys_round_robin_or_seeded() {
        let rr: Vec<usize> = (0..6).map(|u| KeyOrder::RoundRobin.pick(u, 3, 7)).collect();
        assert_eq!(rr, vec![0, 1, 2, 0, 1, 2]);
        let a: Vec<usize> = (0..50).map(|u| KeyOrder::Random.pick(u, 4, 7)).collect();
        let b: Vec<usize> = (0..50).map(|u| KeyOrder::Random.pick(u, 4, 7)).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|&k| k < 4));
    }
}
