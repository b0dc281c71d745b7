//! Configuration: command-line flags, each also settable by a `SHARDLOG_*` environment variable
//! and by a key of the same name in a TOML file (`--config`). Precedence: flag, then
//! environment, then file, then the default. Every value is validated here, so the rest of the
//! broker can trust a [`Config`]; a bad value is refused with one line naming the flag.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use thiserror::Error;

/// A refused configuration, worded for the operator.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("--{flag}: {message}")]
    Invalid { flag: &'static str, message: String },
    #[error("--config {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// How an append is made durable before it is acknowledged (the storage layer's setting).
pub use crate::storage::Durability;

/// The validated broker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub framed_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub shards: usize,
    pub ranges_per_shard: u32,
    pub segment_size: u64,
    pub retention_age: Option<Duration>,
    pub retention_bytes: Option<u64>,
    pub durability: Durability,
    pub max_frame_size: u32,
    /// Largest gRPC message (request or response) the HTTP port accepts.
    pub grpc_max_message_size: u32,
    pub zstd_level: i32,
    /// Bytes of frames a shard may hold between reading them and acknowledging them; past it,
    /// connections on that shard stop reading (TCP backpressure).
    pub shard_buffer_bytes: u64,
    /// A consumer silent for this long is dropped from its group and its partitions reassigned.
    pub consumer_timeout: Duration,
    /// Upper bound on a poll response's size (it always holds at least one item if any).
    pub max_poll_bytes: usize,
    /// Bytes of recent compressed chunks each shard keeps in memory per topic for readers.
    pub hot_tail_bytes: usize,
    /// Connections each shard accepts per server (framed, HTTP) before refusing new ones.
    pub max_connections: usize,
    /// PRODUCE frames a framed connection may have awaiting acknowledgement before the
    /// broker stops reading it.
    pub max_in_flight: u64,
    /// Connections with no request for this long are closed (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// How long a graceful shutdown waits for connections to finish.
    pub shutdown_timeout: Duration,
    /// How long a shard keeps polling for work before it sleeps (see `rt::pool`).
    pub spin_before_park: Duration,
    /// Produce requests are refused (retryably) while the data directory's filesystem has
    /// less free space than this; 0 disables the check.
    pub min_free_space: u64,
    /// Log filter (`info`, `debug`, `shardlog=trace`, …); `RUST_LOG` wins when set.
    pub log: String,
}

/// Command-line flags. Every flag is optional here so that the file and defaults can fill in.
#[derive(Debug, Default, Parser)]
#[command(
    name = "shardlog",
    version,
    about = "A thread-per-core log-streaming broker"
)]
pub struct Cli {
    /// TOML file with any of the settings below (keys named like the flags).
    #[arg(long, env = "SHARDLOG_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Directory for segments, indexes and topic layouts [default: ./data].
    #[arg(long, env = "SHARDLOG_DATA_DIR", value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Address for framed-TCP producers [default: 0.0.0.0:9254].
    #[arg(long, env = "SHARDLOG_FRAMED_LISTEN", value_name = "ADDR")]
    pub framed_listen: Option<String>,
    /// Address for HTTP/1.1 and HTTP/2 (REST, gRPC, metrics) [default: 0.0.0.0:9252].
    #[arg(long, env = "SHARDLOG_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// Number of shards, one pinned core each [default: the CPUs this process may run on].
    #[arg(long, env = "SHARDLOG_SHARDS", value_name = "N")]
    pub shards: Option<String>,
    /// Partitions per shard for new topics [default: 4].
    #[arg(long, env = "SHARDLOG_RANGES_PER_SHARD", value_name = "N")]
    pub ranges_per_shard: Option<String>,
    /// Segment file size before rolling, e.g. 1GiB, 64MiB [default: 1GiB].
    #[arg(long, env = "SHARDLOG_SEGMENT_SIZE", value_name = "BYTES")]
    pub segment_size: Option<String>,
    /// Delete segments older than this, e.g. 7d, 12h; `0` or `off` keeps them [default: 7d].
    #[arg(long, env = "SHARDLOG_RETENTION_AGE", value_name = "DURATION")]
    pub retention_age: Option<String>,
    /// Keep at most this many bytes per partition, e.g. 10GiB; `0` or `off` = no limit [default: off].
    #[arg(long, env = "SHARDLOG_RETENTION_BYTES", value_name = "BYTES")]
    pub retention_bytes: Option<String>,
    /// `fsync` (fdatasync before acknowledging) or `write` [default: fsync].
    #[arg(long, env = "SHARDLOG_DURABILITY", value_name = "MODE")]
    pub durability: Option<String>,
    /// Largest accepted frame body [default: 4MiB].
    #[arg(long, env = "SHARDLOG_MAX_FRAME_SIZE", value_name = "BYTES")]
    pub max_frame_size: Option<String>,
    /// Largest accepted gRPC message [default: 4MiB].
    #[arg(long, env = "SHARDLOG_GRPC_MAX_MESSAGE_SIZE", value_name = "BYTES")]
    pub grpc_max_message_size: Option<String>,
    /// zstd compression level for chunks, -7..=22 [default: 1].
    #[arg(
        long,
        env = "SHARDLOG_ZSTD_LEVEL",
        value_name = "LEVEL",
        allow_hyphen_values = true
    )]
    pub zstd_level: Option<String>,
    /// Per-shard budget of unacknowledged frame bytes before reads pause [default: 64MiB].
    #[arg(long, env = "SHARDLOG_SHARD_BUFFER", value_name = "BYTES")]
    pub shard_buffer: Option<String>,
    /// Drop a consumer after this long without a request, e.g. 2m, 30s [default: 2m].
    #[arg(long, env = "SHARDLOG_CONSUMER_TIMEOUT", value_name = "DURATION")]
    pub consumer_timeout: Option<String>,
    /// Largest poll response, e.g. 1MiB [default: 1MiB].
    #[arg(long, env = "SHARDLOG_MAX_POLL_BYTES", value_name = "BYTES")]
    pub max_poll_bytes: Option<String>,
    /// Recent chunks each shard keeps in memory per topic, so consumers that keep up never
    /// read the disk; `0` turns it off [default: 32MiB].
    #[arg(long, env = "SHARDLOG_HOT_TAIL", value_name = "BYTES")]
    pub hot_tail: Option<String>,
    /// Connections per shard and server before new ones are refused [default: 10000].
    #[arg(long, env = "SHARDLOG_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<String>,
    /// Frames a framed connection may have awaiting acknowledgement [default: 1024].
    #[arg(long, env = "SHARDLOG_MAX_IN_FLIGHT", value_name = "N")]
    pub max_in_flight: Option<String>,
    /// Close connections idle for this long; `off` never closes them [default: 10m].
    #[arg(long, env = "SHARDLOG_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// How long SIGTERM waits for connections to finish before exiting [default: 30s].
    #[arg(long, env = "SHARDLOG_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
    /// How long an idle shard keeps polling for work before it sleeps; `0` sleeps at once
    /// (saves CPU, costs latency) [default: 200us].
    #[arg(long, env = "SHARDLOG_SPIN_BEFORE_PARK", value_name = "DURATION")]
    pub spin_before_park: Option<String>,
    /// Refuse produce requests while the data filesystem has less free space than this;
    /// `0` disables the check [default: 1GiB].
    #[arg(long, env = "SHARDLOG_MIN_FREE_SPACE", value_name = "BYTES")]
    pub min_free_space: Option<String>,
    /// Log filter, e.g. info, debug, shardlog=trace [default: info].
    #[arg(long, env = "SHARDLOG_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// The TOML file: the same keys as the flags, kebab-case. Numbers may be given as integers or
/// as strings with units.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    framed_listen: Option<String>,
    http_listen: Option<String>,
    shards: Option<Scalar>,
    ranges_per_shard: Option<Scalar>,
    segment_size: Option<Scalar>,
    retention_age: Option<Scalar>,
    retention_bytes: Option<Scalar>,
    durability: Option<String>,
    max_frame_size: Option<Scalar>,
    grpc_max_message_size: Option<Scalar>,
    zstd_level: Option<Scalar>,
    shard_buffer: Option<Scalar>,
    consumer_timeout: Option<Scalar>,
    max_poll_bytes: Option<Scalar>,
    hot_tail: Option<Scalar>,
    max_connections: Option<Scalar>,
    max_in_flight: Option<Scalar>,
    idle_timeout: Option<Scalar>,
    shutdown_timeout: Option<Scalar>,
    spin_before_park: Option<Scalar>,
    min_free_space: Option<Scalar>,
    log: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Str(String),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => s,
        }
    }
}

impl Config {
    /// Parses the process's flags and environment, reads the file, validates.
    pub fn from_args() -> Result<Config, ConfigError> {
        Config::from_cli(Cli::parse())
    }

    /// Validates flags (already merged with the environment by clap) over the file.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        fn pick(flag: Option<String>, file: Option<Scalar>) -> Option<String> {
            flag.or(file.map(Scalar::into_string))
        }
        let data_dir = cli
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data-dir", "must not be empty".into()));
        }
        let framed_listen = parse_addr(
            "framed-listen",
            cli.framed_listen.or(file.framed_listen),
            "0.0.0.0:9254",
        )?;
        let http_listen = parse_addr(
            "http-listen",
            cli.http_listen.or(file.http_listen),
            "0.0.0.0:9252",
        )?;
        if framed_listen == http_listen {
            return Err(invalid(
                "http-listen",
                format!("{http_listen} is also the --framed-listen address"),
            ));
        }
        let shards = match pick(cli.shards, file.shards) {
            Some(s) => parse_int("shards", &s, 1, 1024)? as usize,
            None => available_cpus(),
        };
        let ranges_per_shard = match pick(cli.ranges_per_shard, file.ranges_per_shard) {
            Some(s) => parse_int("ranges-per-shard", &s, 1, 256)? as u32,
            None => 4,
        };
        let segment_size = match pick(cli.segment_size, file.segment_size) {
            Some(s) => parse_size_in("segment-size", &s, 64 << 10, 1 << 40)?,
            None => 1 << 30,
        };
        let retention_age = match pick(cli.retention_age, file.retention_age) {
            Some(s) => parse_optional_duration("retention-age", &s)?,
            None => Some(Duration::from_secs(7 * 24 * 3600)),
        };
        let retention_bytes = match pick(cli.retention_bytes, file.retention_bytes) {
            Some(s) if is_off(&s) => None,
            Some(s) => Some(parse_size_in("retention-bytes", &s, 1 << 20, u64::MAX)?),
            None => None,
        };
        let durability = match cli.durability.or(file.durability).as_deref() {
            None | Some("fsync") => Durability::Fsync,
            Some("write") => Durability::Write,
            Some(other) => {
                return Err(invalid(
                    "durability",
                    format!("'{other}' is not one of: fsync, write"),
                ))
            }
        };
        let max_frame_size = match pick(cli.max_frame_size, file.max_frame_size) {
            Some(s) => parse_size_in("max-frame-size", &s, 1 << 10, 256 << 20)? as u32,
            None => 4 << 20,
        };
        let grpc_max_message_size =
            match pick(cli.grpc_max_message_size, file.grpc_max_message_size) {
                Some(s) => parse_size_in("grpc-max-message-size", &s, 1 << 10, 256 << 20)? as u32,
                None => 4 << 20,
            };
        let zstd_level = match pick(cli.zstd_level, file.zstd_level) {
            Some(s) => parse_int("zstd-level", &s, -7, 22)? as i32,
            None => 1,
        };
        let shard_buffer_bytes = match pick(cli.shard_buffer, file.shard_buffer) {
            Some(s) => parse_size_in("shard-buffer", &s, 1 << 20, 1 << 40)?,
            None => 64 << 20,
        };
        if shard_buffer_bytes < max_frame_size as u64 {
            return Err(invalid(
                "shard-buffer",
                format!("{shard_buffer_bytes} bytes is smaller than --max-frame-size ({max_frame_size})"),
            ));
        }
        let consumer_timeout = match pick(cli.consumer_timeout, file.consumer_timeout) {
            Some(s) => parse_optional_duration("consumer-timeout", &s)?
                .ok_or_else(|| invalid("consumer-timeout", "must be a positive duration".into()))?,
            None => Duration::from_secs(120),
        };
        let max_poll_bytes = match pick(cli.max_poll_bytes, file.max_poll_bytes) {
            Some(s) => parse_size_in("max-poll-bytes", &s, 1 << 10, 1 << 30)? as usize,
            None => 1 << 20,
        };
        let hot_tail_bytes = match pick(cli.hot_tail, file.hot_tail) {
            Some(s) if is_off(&s) => 0,
            Some(s) => parse_size_in("hot-tail", &s, 0, 1 << 40)? as usize,
            None => 32 << 20,
        };
        let max_connections = match pick(cli.max_connections, file.max_connections) {
            Some(s) => parse_int("max-connections", &s, 1, 1_000_000)? as usize,
            None => 10_000,
        };
        let max_in_flight = match pick(cli.max_in_flight, file.max_in_flight) {
            Some(s) => parse_int("max-in-flight", &s, 1, 65_536)? as u64,
            None => 1024,
        };
        let idle_timeout = match pick(cli.idle_timeout, file.idle_timeout) {
            Some(s) => parse_optional_duration("idle-timeout", &s)?,
            None => Some(Duration::from_secs(600)),
        };
        let shutdown_timeout = match pick(cli.shutdown_timeout, file.shutdown_timeout) {
            Some(s) => parse_optional_duration("shutdown-timeout", &s)?
                .ok_or_else(|| invalid("shutdown-timeout", "must be a positive duration".into()))?,
            None => Duration::from_secs(30),
        };
        let spin_before_park = match pick(cli.spin_before_park, file.spin_before_park) {
            Some(s) => parse_optional_duration("spin-before-park", &s)?.unwrap_or_default(),
            None => DEFAULT_SPIN_BEFORE_PARK,
        };
        if spin_before_park > Duration::from_millis(10) {
            return Err(invalid(
                "spin-before-park",
                format!(
                    "{spin_before_park:?} is too long: at most 10ms (it burns a core while idle)"
                ),
            ));
        }
        let min_free_space = match pick(cli.min_free_space, file.min_free_space) {
            Some(s) if is_off(&s) => 0,
            Some(s) => parse_size(&s).map_err(|m| invalid("min-free-space", m))?,
            None => 1 << 30,
        };
        let log = cli.log.or(file.log).unwrap_or_else(|| "info".into());
        Ok(Config {
            data_dir,
            framed_listen,
            http_listen,
            shards,
            ranges_per_shard,
            segment_size,
            retention_age,
            retention_bytes,
            durability,
            max_frame_size,
            grpc_max_message_size,
            zstd_level,
            shard_buffer_bytes,
            consumer_timeout,
            max_poll_bytes,
            hot_tail_bytes,
            max_connections,
            max_in_flight,
            idle_timeout,
            shutdown_timeout,
            spin_before_park,
            min_free_space,
            log,
        })
    }

    /// A configuration for tests: loopback ports chosen by the caller, small defaults.
    pub fn for_tests(
        data_dir: &Path,
        framed: SocketAddr,
        http: SocketAddr,
        shards: usize,
    ) -> Config {
        Config {
            data_dir: data_dir.to_path_buf(),
            framed_listen: framed,
            http_listen: http,
            shards,
            ranges_per_shard: 4,
            segment_size: 1 << 30,
            retention_age: None,
            retention_bytes: None,
            durability: Durability::Fsync,
            max_frame_size: 4 << 20,
            grpc_max_message_size: 4 << 20,
            zstd_level: 1,
            shard_buffer_bytes: 64 << 20,
            consumer_timeout: Duration::from_secs(120),
            max_poll_bytes: 1 << 20,
            hot_tail_bytes: 32 << 20,
            max_connections: 10_000,
            max_in_flight: 1024,
            idle_timeout: Some(Duration::from_secs(600)),
            shutdown_timeout: Duration::from_secs(30),
            spin_before_park: DEFAULT_SPIN_BEFORE_PARK,
            min_free_space: 0,
            log: "info".into(),
        }
    }
}

/// The number of CPUs this process may run on (its affinity mask), at least 1.
pub fn available_cpus() -> usize {
    core_affinity::get_core_ids()
        .map(|ids| ids.len())
        .unwrap_or(1)
        .max(1)
}

fn invalid(flag: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { flag, message }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let err = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(e.message().to_string()))
}

fn parse_addr(
    flag: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let s = value.unwrap_or_else(|| default.to_string());
    s.parse().map_err(|_| {
        invalid(
            flag,
            format!("'{s}' is not an IP:port address (e.g. 127.0.0.1:9254)"),
        )
    })
}

fn parse_int(flag: &'static str, s: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let v: i64 = s
        .trim()
        .parse()
        .map_err(|_| invalid(flag, format!("'{s}' is not an integer")))?;
    if v < min || v > max {
        return Err(invalid(flag, format!("{v} is out of range {min}..={max}")));
    }
    Ok(v)
}

fn is_off(s: &str) -> bool {
    matches!(s.trim(), "0" | "off" | "none" | "")
}

/// Parses `1024`, `64KiB`, `64KB`, `1.5GiB`, `10M` (binary units; `K`, `KB` and `KiB` all mean
/// 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 4096, 64KiB, 1GiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}' (use B, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    let v = num * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(v as u64)
}

fn parse_size_in(flag: &'static str, s: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    let v = parse_size(s).map_err(|m| invalid(flag, m))?;
    if v < min || v > max {
        return Err(invalid(
            flag,
            format!("{v} bytes is out of range {min}..={max}"),
        ));
    }
    Ok(v)
}

/// Measured at half the maximum produce rate on a 2-core VM (docs/benchmarks.md): ack p50
/// 0.7-1.0 ms against 1.2-2.7 ms without spinning. An idle shard then uses 3.7% of its core
/// instead of 1.7% (every 10 ms tick is followed by 200 µs of polling).
const DEFAULT_SPIN_BEFORE_PARK: Duration = Duration::from_micros(200);

fn parse_optional_duration(flag: &'static str, s: &str) -> Result<Option<Duration>, ConfigError> {
    if is_off(s) {
        return Ok(None);
    }
    humantime::parse_duration(s.trim()).map(Some).map_err(|e| {
        invalid(
            flag,
            format!("'{s}' is not a duration (e.g. 7d, 12h, 30m): {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Config, String> {
        let mut full = vec!["shardlog"];
        full.extend_from_slice(args);
        let cli = Cli::try_parse_from(full).map_err(|e| e.to_string())?;
        Config::from_cli(cli).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = cli(&[]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.framed_listen.port(), 9254);
        assert_eq!(c.http_listen.port(), 9252);
        assert_eq!(c.ranges_per_shard, 4);
        assert_eq!(c.durability, Durability::Fsync);
        assert_eq!(c.max_frame_size, 4 << 20);
        assert_eq!(c.grpc_max_message_size, 4 << 20);
        assert_eq!(c.consumer_timeout, Duration::from_secs(120));
        assert_eq!(c.max_poll_bytes, 1 << 20);
        assert!(c.shards >= 1);
        let c = cli(&["--consumer-timeout", "2s", "--max-poll-bytes", "64KiB"]).unwrap();
        assert_eq!(c.consumer_timeout, Duration::from_secs(2));
        assert_eq!(c.max_poll_bytes, 64 << 10);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        let c = cli(&[
            "--retention-age",
            "12h",
            "--retention-bytes",
            "1GiB",
            "--zstd-level",
            "-5",
        ])
        .unwrap();
        assert_eq!(c.retention_age, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(c.retention_bytes, Some(1 << 30));
        assert_eq!(c.zstd_level, -5);
        assert_eq!(
            cli(&["--retention-age", "off"]).unwrap().retention_age,
            None
        );
        assert_eq!(
            cli(&[]).unwrap().spin_before_park,
            Duration::from_micros(200)
        );
        let spin = |v: &str| cli(&["--spin-before-park", v]).unwrap().spin_before_park;
        assert_eq!(spin("0"), Duration::ZERO);
        assert_eq!(spin("50us"), Duration::from_micros(50));
        assert_eq!(spin("1ms"), Duration::from_millis(1));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (&["--shards", "0"][..], "--shards"),
            (&["--shards", "many"], "--shards"),
            (&["--framed-listen", "nowhere"], "--framed-listen"),
            (&["--durability", "maybe"], "--durability"),
            (&["--max-frame-size", "1"], "--max-frame-size"),
            (&["--grpc-max-message-size", "1"], "--grpc-max-message-size"),
            (
                &["--grpc-max-message-size", "1TiB"],
                "--grpc-max-message-size",
            ),
            (&["--zstd-level", "99"], "--zstd-level"),
            (&["--segment-size", "1KiB"], "--segment-size"),
            (&["--retention-age", "soon"], "--retention-age"),
            (&["--ranges-per-shard", "0"], "--ranges-per-shard"),
            (&["--consumer-timeout", "0"], "--consumer-timeout"),
            (&["--consumer-timeout", "later"], "--consumer-timeout"),
            (&["--max-poll-bytes", "1"], "--max-poll-bytes"),
            (&["--spin-before-park", "1s"], "--spin-before-park"),
            (&["--spin-before-park", "busy"], "--spin-before-park"),
        ] {
            let err = cli(args).unwrap_err();
            assert!(err.starts_with(flag), "{args:?} gave {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn file_is_below_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardlog.toml");
        std::fs::write(
            &path,
            "data-dir = \"/srv/log\"\nshards = 3\nsegment-size = \"64MiB\"\nzstd-level = 3\n\
             grpc-max-message-size = \"1MiB\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = cli(&["--config", p, "--shards", "2"]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/log"));
        assert_eq!(c.shards, 2);
        assert_eq!(c.segment_size, 64 << 20);
        assert_eq!(c.zstd_level, 3);
        assert_eq!(c.grpc_max_message_size, 1 << 20);
        std::fs::write(&path, "bogus-key = 1\n").unwrap();
        let err = cli(&["--config", p]).unwrap_err();
        assert!(err.contains("bogus-key"), "{err}");
        std::fs::write(&path, "shards = \"x\"\n").unwrap();
        assert!(cli(&["--config", p]).unwrap_err().starts_with("--shards"));
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/shardlog.example.toml");
        let c = cli(&["--config", path]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/shardlog"));
        assert_eq!(c.min_free_space, 1 << 30);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(600)));
    }
}
