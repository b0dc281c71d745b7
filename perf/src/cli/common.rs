//! The flags every broker workload shares ([`Common`]), and the parsers of durations, sizes
//! and CPU lists.

use std::time::Duration;

use clap::Args;

/// Flags shared by all workloads.
#[derive(Debug, Args)]
pub struct Common {
    /// Address of the broker's framed-protocol listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9254")]
    pub framed: String,
    /// Address of the broker's HTTP/gRPC listener (used by the HTTP and gRPC workloads).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9252")]
    pub http: String,
    /// Topic to produce to / consume from.
    #[arg(long, default_value = "perf")]
    pub topic: String,
    /// Stop after this many messages in total (warmup included).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Stop after this long (warmup included), e.g. `30s`, `2m`. Produce's default without
    /// --messages is 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Leave this first stretch out of the statistics, e.g. `2s`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Pin the harness's threads to these CPUs (e.g. `0,1` or `4-7`), to keep it off the broker's.
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// A connection waiting for an answer this long has failed.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub response_timeout: Duration,
}

/// A parsed `--cpus` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    crate::workload::limits::parse_size(s)
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 2m)"))
}

pub(super) fn parse_cpus(s: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("'{t}' is not a CPU number (examples: 0,1 or 4-7)"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range {part} runs backwards"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(num(part)?),
        }
    }
    if cpus.is_empty() {
        return Err("no CPU given".into());
    }
    Ok(CpuList(cpus))
}

/// A group name no other run uses: `{prefix}-{pid}-{ms since the epoch}`.
pub fn fresh_group(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{prefix}-{}-{ms}", std::process::id())
}
