//! The adaptive zstd level (`--zstd-min-level`), as `zstd --adapt` does it: when the shard's
//! core is saturated and zstd is most of its work, chunks are compressed one level lower (down
//! to `--zstd-min-level`); when a level higher would leave zstd a minority of the core, or the
//! core room to spare, one level higher (up to `--zstd-level`). The trade is bytes on disk for
//! messages per second, made only while compression is what the core is bound by.
//!
//! The signals, sampled every quarter second and judged over the last second ([`WINDOW`]
//! samples): the shard thread's busy time (`rt::usage`), and the encoder's own account of the
//! bytes it compressed and the time it took ([`ChunkEncoder::take_work`]), from which each
//! level's cost per byte is learnt and the share of the core zstd takes follows. The busy time
//! cannot tell a saturated shard from one that is polling (`--spin-before-park`) between
//! frames that arrive every few hundred µs (glommio's own run-time account lags by seconds
//! under load, see `rt/usage.rs`), so a step down also needs zstd to take [`ZSTD_BOUND`] of the
//! core, which spinning cannot fake. A step up is taken when the next level, at the bytes now
//! flowing, would keep zstd under [`ZSTD_BOUND`] less a margin, or the busy time under
//! [`ROOM`]; after a step down the room must last longer, so a level that does not fit is not
//! tried again at once.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::rt;
use crate::rt::usage::{self, ThreadUsage};
use crate::storage::chunk::{ChunkEncoder, CompressWork};

use super::Shard;

/// How often the shard's load is sampled.
pub const SAMPLE: Duration = Duration::from_millis(250);
/// Busy fraction at which the core counts as saturated (a step down).
pub const SATURATED: f64 = 0.90;
/// Busy fraction the next level up must be predicted to stay under (one way to step up).
pub const ROOM: f64 = 0.80;
/// Share of the core zstd must take for a saturated core to step down: below it the load is
/// elsewhere (connections, consumers, or polling the busy time cannot tell from work), and a
/// lower level would not relieve it.
pub const ZSTD_BOUND: f64 = 0.60;
/// How far under [`ZSTD_BOUND`] the next level up must keep zstd's share (the other way to
/// step up), so a level does not step up into a step down.
const ZSTD_MARGIN: f64 = 0.10;
/// Samples a decision looks at (the last second); after a change of level the window starts
/// again, so a level is judged on its own samples.
pub const WINDOW: usize = 4;
/// Samples with room before a step up; after a step down, [`CALM_AFTER_DOWN`].
const CALM: u32 = 4;
const CALM_AFTER_DOWN: u32 = 12;
/// Cost assumed for a level not yet measured, relative to the current one's.
const UNKNOWN_LEVEL_COST: f64 = 1.5;
/// Weight of a new measurement in a level's cost.
const COST_WEIGHT: f64 = 0.3;

/// One sample of a shard's load.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The wall time the sample covers.
    pub window: Duration,
    /// The executor's busy time in it.
    pub busy: Duration,
    /// What the encoder compressed in it.
    pub work: CompressWork,
}

/// Chooses the level from samples of the shard's load (pure: the unit tests drive it).
#[derive(Debug)]
pub struct LevelController {
    min: i32,
    max: i32,
    level: i32,
    /// Nanoseconds per record byte, by level, as measured.
    cost: BTreeMap<i32, f64>,
    /// Samples with room in a row, and how many a step up needs now.
    calm: u32,
    calm_needed: u32,
    /// The samples since the last change, at most [`WINDOW`].
    recent: VecDeque<Sample>,
}

/// zstd's level 0 means its default, 3: the controller works on the levels as they act.
fn effective(level: i32) -> i32 {
    if level == 0 {
        3
    } else {
        level
    }
}

/// The next level up or down, skipping 0.
fn step(level: i32, up: bool) -> i32 {
    let next = if up { level + 1 } else { level - 1 };
    if next == 0 {
        if up {
            1
        } else {
            -1
        }
    } else {
        next
    }
}

impl LevelController {
    /// Levels from `min` to `max` (zstd's, 0 read as 3), starting at `max`.
    pub fn new(min: i32, max: i32) -> LevelController {
        let max = effective(max);
        let min = effective(min).min(max);
        LevelController {
            min,
            max,
            level: max,
            cost: BTreeMap::new(),
            calm: 0,
            calm_needed: CALM,
            recent: VecDeque::with_capacity(WINDOW),
        }
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Takes one sample; returns the new level when it changes.
    pub fn observe(&mut self, s: Sample) -> Option<i32> {
        if s.work.raw_bytes > 0 {
            let measured = s.work.nanos as f64 / s.work.raw_bytes as f64;
            let c = self.cost.entry(self.level).or_insert(measured);
            *c += COST_WEIGHT * (measured - *c);
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(s);
        if self.recent.len() < WINDOW {
            return None;
        }
        let window: f64 = self.recent.iter().map(|s| s.window.as_nanos() as f64).sum();
        if window <= 0.0 {
            return None;
        }
        let busy = self
            .recent
            .iter()
            .map(|s| s.busy.as_nanos() as f64)
            .sum::<f64>()
            / window;
        let raw_bytes: u64 = self.recent.iter().map(|s| s.work.raw_bytes).sum();
        let compress_share = self.recent.iter().map(|s| s.work.nanos as f64).sum::<f64>() / window;
        if busy >= SATURATED && compress_share >= ZSTD_BOUND && self.level > self.min {
            self.calm_needed = CALM_AFTER_DOWN;
            return Some(self.change(false));
        }
        if self.level >= self.max || !self.room_for_next(busy, compress_share, raw_bytes, window) {
            self.calm = 0;
            return None;
        }
        self.calm += 1;
        if self.calm < self.calm_needed {
            return None;
        }
        self.calm_needed = CALM;
        Some(self.change(true))
    }

    fn change(&mut self, up: bool) -> i32 {
        self.level = step(self.level, up);
        self.calm = 0;
        self.recent.clear();
        self.level
    }

    /// Whether the next level up, compressing the bytes now flowing, would keep zstd's share
    /// of the core under [`ZSTD_BOUND`] less [`ZSTD_MARGIN`], or the busy fraction under
    /// [`ROOM`].
    fn room_for_next(&self, busy: f64, compress_share: f64, raw_bytes: u64, window: f64) -> bool {
        let now = self.cost.get(&self.level).copied().unwrap_or(0.0);
        let next = self
            .cost
            .get(&step(self.level, true))
            .copied()
            .unwrap_or(now * UNKNOWN_LEVEL_COST);
        let extra = (next - now).max(0.0) * raw_bytes as f64 / window;
        compress_share + extra < ZSTD_BOUND - ZSTD_MARGIN || busy + extra < ROOM
    }
}

impl Shard {
    /// With `--zstd-min-level`, samples the shard's load every [`SAMPLE`] and moves the level
    /// of its chunk encoder between that and `--zstd-level`.
    pub(super) async fn adaptive_level_loop(self: Rc<Self>) {
        let Some(min) = self.config.zstd_min_level else {
            return;
        };
        let max = self.config.zstd_level;
        let encoder = match ChunkEncoder::for_this_thread(max) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "no chunk encoder; the zstd level stays fixed");
                return;
            }
        };
        let mut ctl = LevelController::new(min as i32, max);
        let spin = match usage::SPINS_BEFORE_PARK {
            true => self.config.spin_before_park,
            false => Duration::ZERO,
        };
        let (mut usage, mut at) = (ThreadUsage::now(), Instant::now());
        encoder.borrow_mut().take_work();
        while !self.lifecycle.is_stopping() {
            rt::sleep(SAMPLE).await;
            let (usage_now, now) = (ThreadUsage::now(), Instant::now());
            let work = encoder.borrow_mut().take_work();
            let sample = Sample {
                window: now - at,
                busy: usage_now.busy_since(&usage, spin),
                work,
            };
            (usage, at) = (usage_now, now);
            if let Some(level) = ctl.observe(sample) {
                if let Err(e) = encoder.borrow_mut().set_level(level) {
                    tracing::warn!(level, error = %e, "cannot change the zstd level");
                    return;
                }
                tracing::debug!(shard = self.id, level, "zstd level changed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quarter second at `busy` (0..1), compressing `mb` MB at `ns_per_byte`.
    fn sample(busy: f64, mb: f64, ns_per_byte: f64) -> Sample {
        let raw_bytes = (mb * 1e6) as u64;
        Sample {
            window: SAMPLE,
            busy: SAMPLE.mul_f64(busy),
            work: CompressWork {
                raw_bytes,
                nanos: (raw_bytes as f64 * ns_per_byte) as u64,
            },
        }
    }

    #[test]
    fn a_saturated_core_steps_down_to_the_minimum_and_no_further() {
        let mut c = LevelController::new(-3, 3);
        assert_eq!(c.level(), 3);
        let mut seen = vec![];
        for _ in 0..5 * WINDOW {
            if let Some(l) = c.observe(sample(0.97, 100.0, 2.0)) {
                seen.push(l);
            }
        }
        // One step per WINDOW samples; 0 is zstd's default level (3), never a step.
        assert_eq!(seen, vec![2, 1, -1, -2, -3]);
        assert_eq!(c.level(), -3);
    }

    #[test]
    fn a_busy_core_where_zstd_is_a_minority_keeps_its_level() {
        let mut c = LevelController::new(-3, 3);
        // 100 MB at 1 ns/byte: zstd takes 40 % of a core that reads 97 % busy (a shard
        // polling between frames reads that busy too).
        for _ in 0..20 {
            assert_eq!(c.observe(sample(0.97, 100.0, 1.0)), None);
        }
        assert_eq!(c.level(), 3);
    }

    #[test]
    fn a_saturated_core_that_is_not_compressing_keeps_its_level() {
        let mut c = LevelController::new(-3, 3);
        // 0.4 MB at 1 ns/byte = 0.4 ms of 250 ms: the load is something else.
        for _ in 0..10 {
            assert_eq!(c.observe(sample(0.99, 0.4, 1.0)), None);
        }
        assert_eq!(c.level(), 3);
    }

    #[test]
    fn steps_back_up_only_when_the_next_level_would_fit() {
        let mut c = LevelController::new(1, 3);
        // Saturated at 3 (2.0 ns/byte) and 2 (1.5 ns/byte): down to 1, judged over WINDOW.
        let mut downs: Vec<_> = (0..WINDOW)
            .filter_map(|_| c.observe(sample(0.95, 100.0, 2.0)))
            .collect();
        downs.extend((0..WINDOW).filter_map(|_| c.observe(sample(0.95, 100.0, 1.5))));
        assert_eq!(downs, vec![2, 1]);
        // At level 1 (1.0 ns/byte) the core is 70 % busy with 100 MB per sample: level 2 would
        // add 0.5 ns × 100 MB = 50 ms of 250 (20 %) → 90 %: no room, however long it lasts.
        for _ in 0..20 {
            assert_eq!(c.observe(sample(0.70, 100.0, 1.0)), None);
        }
        // The load halves: level 2 would add 10 % → 45 %: up, after CALM_AFTER_DOWN samples.
        let mut waited = 0;
        while c.observe(sample(0.35, 50.0, 1.0)).is_none() {
            waited += 1;
            assert!(waited < 20, "never stepped up");
        }
        // CALM_AFTER_DOWN samples with room (the window mixing the two loads has room too).
        assert_eq!(waited + 1, CALM_AFTER_DOWN);
        assert_eq!(c.level(), 2);
        // Then to 3 after CALM samples with room, once a window of level 2 is seen.
        let ups: Vec<_> = (0..20)
            .filter_map(|_| c.observe(sample(0.35, 50.0, 1.5)))
            .collect();
        assert_eq!(ups, vec![3]);
        assert_eq!(c.level(), 3);
    }

    #[test]
    fn an_idle_shard_returns_to_the_configured_level() {
        let mut c = LevelController::new(-1, 1);
        let downs: Vec<_> = (0..WINDOW)
            .filter_map(|_| c.observe(sample(0.95, 100.0, 2.0)))
            .collect();
        assert_eq!(downs, vec![-1]);
        let ups: Vec<_> = (0..20)
            .filter_map(|_| c.observe(sample(0.02, 0.0, 0.0)))
            .collect();
        assert_eq!(ups, vec![1]);
    }

    #[test]
    fn level_zero_means_three_and_a_minimum_above_the_maximum_is_the_maximum() {
        assert_eq!(LevelController::new(1, 0).level(), 3);
        let mut c = LevelController::new(5, 2);
        for _ in 0..10 {
            assert_eq!(c.observe(sample(0.99, 100.0, 2.0)), None);
        }
        assert_eq!(c.level(), 2);
    }
}
