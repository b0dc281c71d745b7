//! `limits --only fsync-mix`: the disk's latency under the write pattern of a broker at half
//! its maximum rate, with no broker. Several writers (a shard's partitions) each append
//! chunk-sized writes to their own `O_DIRECT | O_DSYNC` file preallocated up front, as the
//! broker's segment files are, paced together at a total rate (open loop: each writer has a
//! schedule and never waits for the others). The latency recorded is each write's own time,
//! so this is the floor under any acknowledgement that waits for one such write.
//!
//! `perf/bench.sh` runs it after the half-rate step with that step's write rate and mean chunk
//! size, read from the broker's `/metrics`.

use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::direct::{Aligned, DirectFile, ALIGN};
use crate::run::progress::new_histogram;

/// The write pattern to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixConfig {
    /// Concurrent writers, one file each (the partitions of a shard; 4 by default).
    pub writers: usize,
    /// Writes per second, all writers together.
    pub rate: f64,
    /// Bytes per write (rounded up to the O_DIRECT alignment).
    pub chunk_size: usize,
    pub time: Duration,
}

impl MixConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=256).contains(&self.writers) {
            return Err("--mix-writers must be between 1 and 256".into());
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1e6) {
            return Err("--mix-rate must be a number of writes per second in (0, 1000000]".into());
        }
        if self.chunk_size == 0 || self.chunk_size > 64 << 20 {
            return Err("--mix-size must be between 1 byte and 64 MiB".into());
        }
        if self.time.is_zero() {
            return Err("--mix-duration must be more than zero".into());
        }
        Ok(())
    }

    /// The write size actually used: `chunk_size` rounded up to the alignment.
    pub fn write_size(&self) -> usize {
        self.chunk_size.next_multiple_of(ALIGN)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FsyncMixLimits {
    pub dir: String,
    pub writers: usize,
    /// Bytes per write (aligned).
    pub chunk_size: usize,
    /// The rate asked for and the rate reached (writes per second, all writers).
    pub target_rate: f64,
    pub writes_per_sec: f64,
    pub writes: u64,
    pub seconds: f64,
    /// Latency of one `O_DSYNC` write, μs.
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Runs the mix in `dir` and reports the latency of every write.
pub fn fsync_mix(dir: &Path, cfg: &MixConfig) -> Result<FsyncMixLimits, String> {
    cfg.validate()?;
    let size = cfg.write_size();
    let interval = Duration::from_secs_f64(cfg.writers as f64 / cfg.rate);
    // Each file is preallocated for every write its schedule can hold.
    let per_writer = (cfg.time.as_secs_f64() / interval.as_secs_f64()).ceil() as u64;
    let files = (0..cfg.writers)
        .map(|w| {
            let f = DirectFile::create_dsync(dir, &format!("shardlog-limits-mix{w}"))?;
            f.fallocate(per_writer * size as u64)?;
            Ok(f)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let start = Instant::now() + Duration::from_millis(20);
    let results: Vec<Result<Histogram<u64>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(w, file)| {
                // Writers are staggered evenly within one interval.
                let first = start + interval.mul_f64(w as f64 / cfg.writers as f64);
                s.spawn(move || writer(file, size, first, interval, start + cfg.time))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a mix writer panicked".into()))
            })
            .collect()
    });
    let mut all = new_histogram();
    for r in results {
        all.add(r?)
            .map_err(|e| format!("merging histograms: {e}"))?;
    }
    let seconds = cfg.time.as_secs_f64();
    Ok(FsyncMixLimits {
        dir: dir.display().to_string(),
        writers: cfg.writers,
        chunk_size: size,
        target_rate: cfg.rate,
        writes_per_sec: all.len() as f64 / seconds,
        writes: all.len(),
        seconds,
        p50_us: all.value_at_quantile(0.5),
        p90_us: all.value_at_quantile(0.9),
        p99_us: all.value_at_quantile(0.99),
        p999_us: all.value_at_quantile(0.999),
        max_us: all.max(),
    })
}

/// One writer: a write every `interval` from `first` until `end`, at increasing offsets. A
/// write that comes due while the previous one is still running starts as soon as it ends.
fn writer(
    file: &DirectFile,
    size: usize,
    first: Instant,
    interval: Duration,
    end: Instant,
) -> Result<Histogram<u64>, String> {
    let buf = Aligned::new(size);
    let mut hist = new_histogram();
    let mut k = 0u64;
    loop {
        let due = first + interval.mul_f64(k as f64);
        if due >= end {
            return Ok(hist);
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let t0 = Instant::now();
        file.pwrite(&buf, k * size as u64)?;
        hist.saturating_record(t0.elapsed().as_micros().max(1) as u64);
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> MixConfig {
        MixConfig {
            writers: 3,
            rate: 600.0,
            chunk_size: 10_000,
            time: Duration::from_millis(300),
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(cfg().validate().is_ok());
        for bad in [
            MixConfig {
                writers: 0,
                ..cfg()
            },
            MixConfig { rate: 0.0, ..cfg() },
            MixConfig {
                rate: f64::NAN,
                ..cfg()
            },
            MixConfig {
                chunk_size: 0,
                ..cfg()
            },
            MixConfig {
                time: Duration::ZERO,
                ..cfg()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
