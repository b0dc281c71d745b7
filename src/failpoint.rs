//! Named fail points, so end-to-end tests can make a running broker misbehave at a chosen
//! place: panic a shard, or hold a message for a while to open a race on purpose.
//!
//! They are switched on only by the `SHARDLOG_FAILPOINTS` environment variable, read once at
//! start (`name[@SHARD]=action`, separated by `;`; actions `panic` and `sleep(MS)`; `@SHARD`
//! limits the point to one shard's thread), e.g. `SHARDLOG_FAILPOINTS='writer.submit@1=panic'`.
//! Never set it in production. Switched off (the normal case) a fail point costs one relaxed
//! load of a static flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that switches fail points on.
pub const ENV: &str = "SHARDLOG_FAILPOINTS";

/// Every fail point the broker has; a name not listed here is refused at start.
pub const POINTS: &[&str] = &[
    // `PartitionWriter::submit`: a frame reaching its partition's writer, on the owning shard.
    "writer.submit",
    // `Shard::submit`: a frame about to be forwarded to the shard that owns its partition.
    "shard.forward",
    // `PartitionWriter::run`: a chunk about to be written and made durable.
    "writer.write",
];

/// What a fail point does when reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Panic,
    Sleep(Duration),
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static CONFIGURED: OnceLock<Vec<Point>> = OnceLock::new();

/// One configured fail point.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Point {
    name: &'static str,
    /// Only on this shard's thread (named `shard-N`), if set.
    thread: Option<String>,
    action: Action,
}

/// Why `SHARDLOG_FAILPOINTS` was refused.
#[derive(Debug, thiserror::Error)]
#[error("{ENV}: {0}")]
pub struct FailpointError(String);

/// Reads `SHARDLOG_FAILPOINTS` (once; later calls change nothing) and says which points are on.
pub fn init_from_env() -> Result<(), FailpointError> {
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(());
    };
    let points = parse(&spec)?;
    if !points.is_empty() {
        tracing::warn!(%spec, "fail points are on: this broker will misbehave on purpose");
    }
    let on = !points.is_empty();
    if CONFIGURED.set(points).is_ok() {
        ENABLED.store(on, Ordering::Release);
    }
    Ok(())
}

fn parse(spec: &str) -> Result<Vec<Point>, FailpointError> {
    let mut out = Vec::new();
    for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, action) = item
            .split_once('=')
            .ok_or_else(|| FailpointError(format!("`{item}` is not name=action")))?;
        let (name, shard) = match name.trim().split_once('@') {
            Some((n, s)) => {
                let s: usize = s
                    .parse()
                    .map_err(|_| FailpointError(format!("`{s}` in `{item}` is not a shard")))?;
                (n, Some(format!("shard-{s}")))
            }
            None => (name.trim(), None),
        };
        let name = POINTS
            .iter()
            .copied()
            .find(|p| *p == name)
            .ok_or_else(|| FailpointError(format!("unknown fail point `{name}`")))?;
        let action = match action.trim() {
            "panic" => Action::Panic,
            a => {
                let ms = a
                    .strip_prefix("sleep(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .ok_or_else(|| {
                        FailpointError(format!("unknown action `{a}` (panic or sleep(MS))"))
                    })?;
                Action::Sleep(Duration::from_millis(ms))
            }
        };
        out.push(Point {
            name,
            thread: shard,
            action,
        });
    }
    Ok(out)
}

/// The action configured for fail point `name`, if any.
#[inline]
pub fn eval(name: &'static str) -> Option<Action> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let here = std::thread::current();
    CONFIGURED
        .get()?
        .iter()
        .find(|p| p.name == name && p.thread.as_deref().is_none_or(|t| Some(t) == here.name()))
        .map(|p| p.action)
}

/// Reaches fail point `name`: panics if so configured; otherwise returns how long to sleep
/// (the caller sleeps on its own runtime).
pub fn hit(name: &'static str) -> Option<Duration> {
    match eval(name)? {
        Action::Panic => panic!("fail point {name}"),
        Action::Sleep(d) => Some(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions_and_refuses_unknown_names() {
        let p = parse(" writer.submit@1=panic ; shard.forward=sleep(250);").unwrap();
        assert_eq!(
            p,
            vec![
                Point {
                    name: "writer.submit",
                    thread: Some("shard-1".into()),
                    action: Action::Panic
                },
                Point {
                    name: "shard.forward",
                    thread: None,
                    action: Action::Sleep(Duration::from_millis(250))
                }
            ]
        );
        assert!(parse("").unwrap().is_empty());
        for bad in [
            "nope=panic",
            "writer.submit",
            "writer.submit@x=panic",
            "writer.submit=sleep(x)",
            "writer.submit=boom",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(ENV), "{e}");
        }
    }

    #[test]
    fn switched_off_nothing_happens() {
        // Tests never set the variable, so every point is off.
        assert_eq!(hit("writer.submit"), None);
    }
}
