//! Named fail points, so end-to-end tests can make a running broker misbehave at a chosen
//! place: panic a shard, hold a message for a while to open a race on purpose, or make a file
//! operation fail.
//!
//! They are switched on only by the `SHARDLOG_FAILPOINTS` environment variable, read once at
//! start, e.g. `SHARDLOG_FAILPOINTS='writer.submit@1=panic'`:
//!
//! ```text
//! spec    := item (';' item)*
//! item    := NAME ['@' SHARD] '=' action
//! action  := 'panic' | 'sleep(' MS ')'
//!          | ('eio' | 'enospc' | 'short') ['(' option (',' option)* ')']    (fs.* points only)
//! option  := 'path=' SUBSTRING     only calls on a path containing it
//!          | 'nth=' N              only the Nth such call (counted from 1, from start-up)
//!          | 'from=' N             the Nth such call and every later one (the default: 1)
//! ```
//!
//! `@SHARD` limits a point to one shard's thread. The `fs.*` points sit under every file
//! operation of the broker's file system (`storage::fs::BrokerFs`); `eio` and `enospc` make
//! the call fail with that errno, `short` makes a write write only the first half of its bytes
//! (aligned down for segment writes) and report that (`short` is for `fs.write` and
//! `fs.write_buffered` only). A SUBSTRING may not contain `,` `)` or `;`. For example
//! `fs.fdatasync=eio(path=orders/,nth=2)` fails the second fdatasync of a file of topic
//! `orders`. Never set it in production. Switched off (the normal case) a fail point costs one
//! relaxed load of a static flag.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that switches fail points on.
pub const ENV: &str = "SHARDLOG_FAILPOINTS";

/// Every fail point the broker has; a name not listed here is refused at start.
pub const POINTS: &[&str] = &[
    // `PartitionWriter::submit`: a frame reaching its partition's writer, on the owning shard
    // (`sleep` blocks the shard's thread there: a task that does not yield).
    "writer.submit",
    // `Shard::submit`: a frame about to be forwarded to the shard that owns its partition.
    "shard.forward",
    // `PartitionWriter::run`: a chunk about to be written and made durable.
    "writer.write",
    // Cluster mode: a topic of more partitions than one etcd transaction takes, created in
    // etcd's first transaction, before the others (a creator dying half way).
    "cluster.topic_create",
    // The file system (`storage::fs::BrokerFs`), at each call, before the real one:
    // creating a segment, opening a buffered file (for writing), creating directories.
    "fs.create",
    // Opening an existing segment.
    "fs.open",
    // A segment (O_DIRECT) write.
    "fs.write",
    // A buffered write (indexes, offsets files, topic layouts, the clean marker).
    "fs.write_buffered",
    // fdatasync of a segment or a buffered file.
    "fs.fdatasync",
    // A segment read, or a whole small file read.
    "fs.read",
    // Listing a directory, or the metadata of a path.
    "fs.list",
    // Truncating a segment.
    "fs.truncate",
    "fs.rename",
    // Removing a file or a directory tree.
    "fs.remove",
    // Making a directory's entries durable.
    "fs.sync_dir",
];

/// Fail points where a write can come back short.
const SHORT_POINTS: &[&str] = &["fs.write", "fs.write_buffered"];

/// What a fail point does when reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Panic,
    Sleep(Duration),
    /// Fail with EIO.
    Eio,
    /// Fail with ENOSPC.
    Enospc,
    /// Write only the first half.
    Short,
}

impl Action {
    /// The error an `Eio` or `Enospc` action injects.
    pub fn error(self) -> Option<std::io::Error> {
        let errno = match self {
            Action::Eio => libc::EIO,
            Action::Enospc => libc::ENOSPC,
            _ => return None,
        };
        Some(std::io::Error::from_raw_os_error(errno))
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static CONFIGURED: OnceLock<Vec<Point>> = OnceLock::new();

/// One configured fail point.
#[derive(Debug)]
struct Point {
    name: &'static str,
    /// Only on this shard's thread (named `shard-N`), if set.
    thread: Option<String>,
    action: Action,
    /// Only calls on a path holding this (fs points).
    path: Option<String>,
    /// Which matching calls fire.
    when: When,
    /// Matching calls so far.
    calls: AtomicU64,
}

impl PartialEq for Point {
    fn eq(&self, o: &Point) -> bool {
        (self.name, &self.thread, self.action, &self.path, self.when)
            == (o.name, &o.thread, o.action, &o.path, o.when)
    }
}

/// Which of the calls matching a point fire (counted from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Nth(u64),
    From(u64),
}

/// Why `SHARDLOG_FAILPOINTS` was refused.
#[derive(Debug, thiserror::Error)]
#[error("{ENV}: {0}")]
pub struct FailpointError(String);

/// Reads `SHARDLOG_FAILPOINTS` (once; later calls change nothing) and says which points are on.
pub fn init_from_env() -> Result<(), FailpointError> {
    match std::env::var(ENV) {
        Ok(spec) => init(&spec),
        Err(_) => Ok(()),
    }
}

/// Switches on the fail points `spec` names (the grammar of `SHARDLOG_FAILPOINTS`), once per
/// process: later calls change nothing. For tests that drive the broker's parts in process.
pub fn init(spec: &str) -> Result<(), FailpointError> {
    let points = parse(spec)?;
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
        let (action, path, when) = parse_action(name, action.trim())?;
        out.push(Point {
            name,
            thread: shard,
            action,
            path,
            when,
            calls: AtomicU64::new(0),
        });
    }
    Ok(out)
}

/// An action, with the options of a file-system one.
fn parse_action(name: &str, a: &str) -> Result<(Action, Option<String>, When), FailpointError> {
    let err = |why: String| FailpointError(format!("`{name}={a}`: {why}"));
    let (word, args) = match a.split_once('(') {
        Some((w, rest)) => {
            let args = rest
                .strip_suffix(')')
                .ok_or_else(|| err("no closing parenthesis".into()))?;
            (w.trim(), Some(args))
        }
        None => (a, None),
    };
    let action = match (word, args) {
        ("panic", None) => return Ok((Action::Panic, None, When::From(1))),
        ("sleep", Some(ms)) => {
            let ms = ms
                .trim()
                .parse::<u64>()
                .map_err(|_| err(format!("`{ms}` is not milliseconds")))?;
            return Ok((
                Action::Sleep(Duration::from_millis(ms)),
                None,
                When::From(1),
            ));
        }
        ("eio", _) => Action::Eio,
        ("enospc", _) => Action::Enospc,
        ("short", _) => Action::Short,
        _ => {
            return Err(err(
                "unknown action (panic, sleep(MS), or for fs.* points eio, enospc, short)".into(),
            ))
        }
    };
    if !name.starts_with("fs.") {
        return Err(err("eio, enospc and short are for fs.* points".into()));
    }
    if action == Action::Short && !SHORT_POINTS.contains(&name) {
        return Err(err(format!("short is for {}", SHORT_POINTS.join(" and "))));
    }
    let (mut path, mut when) = (None, When::From(1));
    for opt in args.into_iter().flat_map(|a| a.split(',')) {
        let (key, value) = opt
            .split_once('=')
            .ok_or_else(|| err(format!("`{opt}` is not key=value")))?;
        let count = || match value.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(err(format!("`{value}` is not a count from 1"))),
        };
        match key.trim() {
            "path" if !value.is_empty() => path = Some(value.to_string()),
            "nth" => when = When::Nth(count()?),
            "from" => when = When::From(count()?),
            k => return Err(err(format!("unknown option `{k}` (path, nth, from)"))),
        }
    }
    Ok((action, path, when))
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

/// The action configured for file-system fail point `name` on a call at `path`, if this call
/// is one that fires. Every matching call is counted, fired or not.
#[inline]
pub fn eval_at(name: &'static str, path: &Path) -> Option<Action> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    eval_at_slow(name, path)
}

#[cold]
fn eval_at_slow(name: &'static str, path: &Path) -> Option<Action> {
    fire(CONFIGURED.get()?, name, path)
}

/// Counts a call to `name` at `path` against `points`; the action of the first that fires.
fn fire(points: &[Point], name: &str, path: &Path) -> Option<Action> {
    let here = std::thread::current();
    let path = path.to_string_lossy();
    let mut fired = None;
    for p in points {
        let on_thread = p.thread.as_deref().is_none_or(|t| Some(t) == here.name());
        let on_path = p.path.as_deref().is_none_or(|s| path.contains(s));
        if p.name != name || !on_thread || !on_path {
            continue;
        }
        let n = p.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let fires = match p.when {
            When::Nth(k) => n == k,
            When::From(k) => n >= k,
        };
        if fires && fired.is_none() {
            fired = Some(p.action);
        }
    }
    fired
}

/// Reaches fail point `name`: panics if so configured; otherwise returns how long to sleep
/// (the caller sleeps on its own runtime).
pub fn hit(name: &'static str) -> Option<Duration> {
    match eval(name)? {
        Action::Panic => panic!("fail point {name}"),
        Action::Sleep(d) => Some(d),
        // Refused for points other than fs.* at start.
        Action::Eio | Action::Enospc | Action::Short => None,
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
                    action: Action::Panic,
                    path: None,
                    when: When::From(1),
                    calls: AtomicU64::new(0),
                },
                Point {
                    name: "shard.forward",
                    thread: None,
                    action: Action::Sleep(Duration::from_millis(250)),
                    path: None,
                    when: When::From(1),
                    calls: AtomicU64::new(0),
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
            "writer.submit=eio",
            "fs.rename=short",
            "fs.write=eio(",
            "fs.write=eio(nth=0)",
            "fs.write=eio(from=x)",
            "fs.write=eio(size=3)",
            "fs.write=eio(path)",
            "fs.write=sleep(1",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(ENV), "{e}");
        }
    }

    #[test]
    fn file_system_faults_parse_with_their_options() {
        let p = parse("fs.write@0=short(path=orders/,nth=3);fs.fdatasync=enospc(from=2)").unwrap();
        let got: Vec<_> = p
            .iter()
            .map(|p| {
                (
                    p.name,
                    p.thread.as_deref(),
                    p.action,
                    p.path.as_deref(),
                    p.when,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "fs.write",
                    Some("shard-0"),
                    Action::Short,
                    Some("orders/"),
                    When::Nth(3)
                ),
                ("fs.fdatasync", None, Action::Enospc, None, When::From(2)),
            ]
        );
        let p = parse("fs.rename=eio").unwrap();
        assert_eq!((p[0].action, p[0].when), (Action::Eio, When::From(1)));
        let e = Action::Enospc.error().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(Action::Eio.error().unwrap().raw_os_error(), Some(libc::EIO));
    }

    #[test]
    fn a_file_fault_fires_on_its_calls_and_paths_only() {
        let p = parse("fs.write=eio(path=/a/,nth=2);fs.sync_dir=enospc(from=2)").unwrap();
        let (a, b) = (Path::new("/d/a/1.log"), Path::new("/d/b/1.log"));
        assert_eq!(fire(&p, "fs.write", b), None, "another path is not counted");
        assert_eq!(fire(&p, "fs.write", a), None, "the first call passes");
        assert_eq!(fire(&p, "fs.read", a), None, "another point");
        assert_eq!(
            fire(&p, "fs.write", a),
            Some(Action::Eio),
            "the second fails"
        );
        assert_eq!(fire(&p, "fs.write", a), None, "only the second");
        assert_eq!(fire(&p, "fs.sync_dir", b), None);
        for _ in 0..3 {
            assert_eq!(
                fire(&p, "fs.sync_dir", a),
                Some(Action::Enospc),
                "from the second on"
            );
        }
        // On another shard's thread a point limited to shard 7 never fires.
        let p = parse("fs.write@7=eio").unwrap();
        assert_eq!(fire(&p, "fs.write", a), None);
    }

    #[test]
    fn switched_off_nothing_happens() {
        // Tests never set the variable, so every point is off.
        assert_eq!(hit("writer.submit"), None);
        assert_eq!(eval_at("fs.write", Path::new("/x")), None);
    }
}
