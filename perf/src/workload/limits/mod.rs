//! `limits`: this machine's own yardsticks, which the performance targets are ratios of.
//!
//! - **zstd**: one-core compression rate of the payload `produce` sends (same generator, size,
//!   randomness and seed), laid out as the broker lays out a chunk (`timestamp i64 | len u32 |
//!   body` per record, concatenated) and compressed as the broker does: one reused context,
//!   the given level, content checksum on, one call per batch. Measured for a big batch
//!   (`--batch-messages`, ~1 MiB) and for a typical chunk (`--chunk-messages`, one frame of 64).
//! - **fdatasync**: an O_DIRECT file appended to like a log: aligned `--chunk-size` writes at
//!   increasing offsets, each followed by `fdatasync`; latency of write + fdatasync per chunk.
//! - **bandwidth**: O_DIRECT sequential write of `--bw-size` in `--bw-block` writes (then one
//!   fdatasync, counted), then O_DIRECT sequential read of the same file. The file is deleted.
//! - **hiccup** (only when named): how often the host takes the pinned core from a thread
//!   spinning alone on it ([`hiccup`]), the floor under the scheduling-delay target.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::payload::{MessagePool, PayloadSpec, DEFAULT_POOL};
use crate::run::{cpus, progress::new_histogram};

use direct::{Aligned, DirectFile};
use fsync_mix::{fsync_mix, FsyncMixLimits, MixConfig};
use hiccup::{hiccup, HiccupLimits};

mod direct;
pub mod fsync_mix;
pub mod hiccup;

/// What to measure and how.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub payload: PayloadSpec,
    pub zstd_level: i32,
    /// Messages per big batch (default 1024: ~1 MiB of 1 KiB messages).
    pub batch_messages: usize,
    /// Messages per typical chunk (default 64: one default frame).
    pub chunk_messages: usize,
    /// How long to compress for, per batch size.
    pub zstd_time: Duration,
    pub dir: PathBuf,
    pub chunk_size: usize,
    pub fsync_iterations: u64,
    /// If set, the fdatasync test runs this long instead of a number of iterations.
    pub fsync_time: Option<Duration>,
    pub bw_size: u64,
    pub bw_block: usize,
    pub cpu: Option<usize>,
    pub zstd: bool,
    pub fsync: bool,
    pub bandwidth: bool,
    /// The disk under a broker's write pattern (`fsync-mix`), only when asked.
    pub fsync_mix: Option<MixConfig>,
    /// How long to spin counting the host's hiccups on the pinned core, only when asked.
    pub hiccup: Option<Duration>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            payload: PayloadSpec::default(),
            zstd_level: 1,
            batch_messages: 1024,
            chunk_messages: 64,
            zstd_time: Duration::from_secs(3),
            dir: PathBuf::from("./data"),
            chunk_size: 64 * 1024,
            fsync_iterations: 2000,
            fsync_time: None,
            bw_size: 1 << 30,
            bw_block: 1 << 20,
            cpu: None,
            zstd: true,
            fsync: true,
            bandwidth: true,
            fsync_mix: None,
            hiccup: None,
        }
    }
}

pub use direct::ALIGN;

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_messages == 0 || self.chunk_messages == 0 {
            return Err("--batch-messages and --chunk-messages must be at least 1".into());
        }
        if self.payload.size == 0 {
            return Err("--message-size must be at least 1".into());
        }
        if !(-131072..=22).contains(&self.zstd_level) {
            return Err("--zstd-level must be between -131072 and 22".into());
        }
        if self.chunk_size == 0 || !self.chunk_size.is_multiple_of(ALIGN) {
            return Err(format!(
                "--chunk-size must be a positive multiple of {ALIGN} (O_DIRECT)"
            ));
        }
        if self.bw_block == 0 || !self.bw_block.is_multiple_of(ALIGN) {
            return Err(format!(
                "--bw-block must be a positive multiple of {ALIGN} (O_DIRECT)"
            ));
        }
        if self.bw_size < self.bw_block as u64 {
            return Err("--bw-size must be at least one --bw-block".into());
        }
        if self.fsync_iterations == 0 {
            return Err("--fsync-iterations must be at least 1".into());
        }
        if let Some(mix) = &self.fsync_mix {
            mix.validate()?;
        }
        self.cpu.map_or(Ok(()), |c| cpus::check(&[c]))
    }
}

/// One-core compression of one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct ZstdRate {
    pub messages_per_batch: usize,
    /// Uncompressed batch bytes (records with their 12-byte headers).
    pub batch_bytes: usize,
    pub batches: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    /// Uncompressed input, 10^6 bytes per second (record headers included).
    pub mb_per_sec: f64,
    /// Message payload only, 10^6 bytes per second (what `produce` reports as MB/s).
    pub payload_mb_per_sec: f64,
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ZstdLimits {
    pub level: i32,
    pub checksum: bool,
    pub message_size: usize,
    pub randomness: f64,
    /// `json`, `text` or `random` (see `payload::PayloadKind`).
    pub payload: &'static str,
    pub batch: ZstdRate,
    pub chunk: ZstdRate,
}

#[derive(Debug, Clone, Serialize)]
pub struct FsyncLimits {
    pub dir: String,
    pub chunk_size: usize,
    pub writes: u64,
    pub seconds: f64,
    pub writes_per_sec: f64,
    /// Latency of one aligned O_DIRECT write plus its fdatasync, μs.
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// The fdatasync call alone.
    pub fdatasync_p50_us: u64,
    pub fdatasync_p99_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BandwidthLimits {
    pub dir: String,
    pub bytes: u64,
    pub block: usize,
    /// Sequential O_DIRECT write, 10^6 bytes per second (the final fdatasync included).
    pub write_mb_per_sec: f64,
    pub write_seconds: f64,
    /// Sequential O_DIRECT read of the same file.
    pub read_mb_per_sec: f64,
    pub read_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub workload: &'static str,
    pub cpu: Option<usize>,
    pub zstd: Option<ZstdLimits>,
    pub fsync: Option<FsyncLimits>,
    pub bandwidth: Option<BandwidthLimits>,
    pub fsync_mix: Option<FsyncMixLimits>,
    pub hiccup: Option<HiccupLimits>,
}

impl Limits {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("limits serialize")
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if let Some(z) = &self.zstd {
            let _ = writeln!(
                s,
                "zstd level {} (checksum), {} B {} messages, randomness {}, one core{}:",
                z.level,
                z.message_size,
                z.payload,
                z.randomness,
                self.cpu.map(|c| format!(" (cpu {c})")).unwrap_or_default()
            );
            for (name, r) in [("batch", &z.batch), ("chunk", &z.chunk)] {
                let _ = writeln!(
                    s,
                    "  {name:<5} {:>5} msgs ({:>8} B): {:>10.0} msg/s  {:>7.1} MB/s in  {:>7.1} MB/s payload  ratio {:.2}",
                    r.messages_per_batch,
                    r.batch_bytes,
                    r.msgs_per_sec,
                    r.mb_per_sec,
                    r.payload_mb_per_sec,
                    r.ratio
                );
            }
        }
        if let Some(f) = &self.fsync {
            let _ = writeln!(
                s,
                "fdatasync of {} B O_DIRECT appends in {}: {} writes, {:.0}/s",
                f.chunk_size, f.dir, f.writes, f.writes_per_sec
            );
            let _ = writeln!(
                s,
                "  write+fdatasync μs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (fdatasync alone p50 {} p99 {})",
                f.p50_us, f.p90_us, f.p99_us, f.p999_us, f.max_us, f.fdatasync_p50_us, f.fdatasync_p99_us
            );
        }
        if let Some(b) = &self.bandwidth {
            let _ = writeln!(
                s,
                "O_DIRECT sequential, {} MiB in {} KiB blocks in {}: write {:.0} MB/s, read {:.0} MB/s",
                b.bytes >> 20,
                b.block >> 10,
                b.dir,
                b.write_mb_per_sec,
                b.read_mb_per_sec
            );
        }
        if let Some(m) = &self.fsync_mix {
            let _ = writeln!(
                s,
                "O_DSYNC writes of {} B from {} writers at {:.0}/s ({:.0}/s reached) in {}:",
                m.chunk_size, m.writers, m.target_rate, m.writes_per_sec, m.dir
            );
            let _ = writeln!(
                s,
                "  write μs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                m.p50_us, m.p90_us, m.p99_us, m.p999_us, m.max_us
            );
        }
        if let Some(h) = &self.hiccup {
            let gaps: Vec<String> = h
                .gaps_over_ms
                .iter()
                .map(|(b, n)| format!(">{b} ms {n}"))
                .collect();
            let _ = writeln!(
                s,
                "a thread spinning alone{} for {:.0} s lost the core: {}; worst {:.2} ms, {:.1} ms lost in all",
                self.cpu.map(|c| format!(" on cpu {c}")).unwrap_or_default(),
                h.seconds,
                gaps.join(", "),
                h.worst_ms,
                h.lost_ms
            );
        }
        s
    }
}

/// Runs the selected measurements in order: zstd, fdatasync, bandwidth, fsync-mix, hiccup.
pub fn run(cfg: &LimitsConfig) -> Result<Limits, String> {
    cfg.validate()?;
    if let Some(cpu) = cfg.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(format!("--cpus: cannot pin to CPU {cpu}"));
        }
    }
    let zstd = cfg.zstd.then(|| zstd_limits(cfg)).transpose()?;
    let fsync = cfg.fsync.then(|| fsync_limits(cfg)).transpose()?;
    let bandwidth = cfg.bandwidth.then(|| bandwidth_limits(cfg)).transpose()?;
    let fsync_mix = cfg
        .fsync_mix
        .map(|mix| fsync_mix(&cfg.dir, &mix))
        .transpose()?;
    let hiccup = cfg.hiccup.map(hiccup);
    Ok(Limits {
        workload: "limits",
        cpu: cfg.cpu,
        zstd,
        fsync,
        bandwidth,
        fsync_mix,
        hiccup,
    })
}

/// Batches of `n` records each, the pool's messages in order (cycled), laid out as the
/// broker's chunks are: `timestamp i64 | len u32 | body`.
fn batches(pool: &MessagePool, n: usize) -> Vec<Vec<u8>> {
    let count = pool.len().div_ceil(n).clamp(1, 64);
    let ts0 = 1_700_000_000_000_000i64;
    (0..count)
        .map(|b| {
            let mut out = Vec::new();
            for i in 0..n {
                let m = pool.get(b * n + i);
                out.extend_from_slice(&(ts0 + (b * n + i) as i64 / 64).to_be_bytes());
                out.extend_from_slice(&(m.len() as u32).to_be_bytes());
                out.extend_from_slice(m);
            }
            out
        })
        .collect()
}

fn zstd_rate(cfg: &LimitsConfig, pool: &MessagePool, n: usize) -> Result<ZstdRate, String> {
    let inputs = batches(pool, n);
    let mut c = zstd::bulk::Compressor::new(cfg.zstd_level).map_err(|e| format!("zstd: {e}"))?;
    c.include_checksum(true).map_err(|e| format!("zstd: {e}"))?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(inputs[0].len()));
    let (mut batches, mut in_bytes, mut out_bytes) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    loop {
        for input in &inputs {
            out.clear();
            c.compress_to_buffer(input, &mut out)
                .map_err(|e| format!("zstd: {e}"))?;
            batches += 1;
            in_bytes += input.len() as u64;
            out_bytes += out.len() as u64;
        }
        if start.elapsed() >= cfg.zstd_time {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let msgs = batches * n as u64;
    Ok(ZstdRate {
        messages_per_batch: n,
        batch_bytes: inputs[0].len(),
        batches,
        seconds: secs,
        msgs_per_sec: msgs as f64 / secs,
        mb_per_sec: in_bytes as f64 / secs / 1e6,
        payload_mb_per_sec: (msgs * cfg.payload.size as u64) as f64 / secs / 1e6,
        ratio: in_bytes as f64 / out_bytes.max(1) as f64,
    })
}

fn zstd_limits(cfg: &LimitsConfig) -> Result<ZstdLimits, String> {
    let pool = MessagePool::generate(
        cfg.payload,
        DEFAULT_POOL.max(cfg.batch_messages).max(cfg.chunk_messages),
    );
    Ok(ZstdLimits {
        level: cfg.zstd_level,
        checksum: true,
        message_size: cfg.payload.size,
        randomness: cfg.payload.randomness,
        payload: cfg.payload.kind.name(),
        batch: zstd_rate(cfg, &pool, cfg.batch_messages)?,
        chunk: zstd_rate(cfg, &pool, cfg.chunk_messages)?,
    })
}

fn fsync_limits(cfg: &LimitsConfig) -> Result<FsyncLimits, String> {
    let file = DirectFile::create(&cfg.dir, "shardlog-limits-fsync")?;
    let buf = Aligned::new(cfg.chunk_size);
    let (mut total, mut sync_only) = (new_histogram(), new_histogram());
    let start = Instant::now();
    let mut writes = 0u64;
    loop {
        let done = match cfg.fsync_time {
            Some(d) => start.elapsed() >= d,
            None => writes >= cfg.fsync_iterations,
        };
        if done {
            break;
        }
        let t0 = Instant::now();
        file.pwrite(&buf, writes * cfg.chunk_size as u64)?;
        let t1 = Instant::now();
        file.fdatasync()?;
        let t2 = Instant::now();
        total.saturating_record((t2 - t0).as_micros().max(1) as u64);
        sync_only.saturating_record((t2 - t1).as_micros().max(1) as u64);
        writes += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(FsyncLimits {
        dir: cfg.dir.display().to_string(),
        chunk_size: cfg.chunk_size,
        writes,
        seconds: secs,
        writes_per_sec: writes as f64 / secs,
        p50_us: total.value_at_quantile(0.5),
        p90_us: total.value_at_quantile(0.9),
        p99_us: total.value_at_quantile(0.99),
        p999_us: total.value_at_quantile(0.999),
        max_us: total.max(),
        fdatasync_p50_us: sync_only.value_at_quantile(0.5),
        fdatasync_p99_us: sync_only.value_at_quantile(0.99),
    })
}

fn bandwidth_limits(cfg: &LimitsConfig) -> Result<BandwidthLimits, String> {
    let file = DirectFile::create(&cfg.dir, "shardlog-limits-bw")?;
    let mut buf = Aligned::new(cfg.bw_block);
    let blocks = cfg.bw_size / cfg.bw_block as u64;
    let bytes = blocks * cfg.bw_block as u64;
    let start = Instant::now();
    for b in 0..blocks {
        file.pwrite(&buf, b * cfg.bw_block as u64)?;
    }
    file.fdatasync()?;
    let write_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut offset = 0u64;
    while offset < bytes {
        let n = file.pread(&mut buf, offset)?;
        if n == 0 {
            return Err(format!("short O_DIRECT read at offset {offset}"));
        }
        offset += n as u64;
    }
    let read_seconds = start.elapsed().as_secs_f64();
    Ok(BandwidthLimits {
        dir: cfg.dir.display().to_string(),
        bytes,
        block: cfg.bw_block,
        write_mb_per_sec: bytes as f64 / write_seconds / 1e6,
        write_seconds,
        read_mb_per_sec: bytes as f64 / read_seconds / 1e6,
        read_seconds,
    })
}

/// Parses sizes such as `64KiB`, `1GiB`, `4096`, `2M` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64KiB, 1GiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' in '{s}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2m").unwrap(), 2 << 20);
        assert!(parse_size("x").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn batches_are_broker_records() {
        let pool = MessagePool::generate(PayloadSpec::default(), 128);
        let b = batches(&pool, 64);
        assert_eq!(b.len(), 2);
        let recs: Vec<_> = shardlog_wire::record::RecordIter::new(&b[1])
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(recs.len(), 64);
        assert_eq!(recs[0].body, pool.get(64));
    }
}
