//! What the broker writes to its log, as a service manager or a file sees it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The broker's log up to "shardlog ready", started with `--shards shards` and its output
/// into a pipe.
fn log_until_ready(shards: usize) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--framed-listen")
        .arg(common::free_addr().to_string())
        .arg("--http-listen")
        .arg(common::free_addr().to_string())
        .args(["--shards", &shards.to_string(), "--log", "info"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start shardlog");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let ready = line.contains("shardlog ready");
            let _ = tx.send(line);
            if ready {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while !lines
        .last()
        .is_some_and(|l: &String| l.contains("shardlog ready"))
    {
        assert!(
            Instant::now() < deadline,
            "not ready; log so far: {lines:?}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

/// Logs written to a pipe (a journal, a file) carry no terminal colour codes.
#[test]
fn logs_into_a_pipe_have_no_colour_codes() {
    let lines = log_until_ready(1);
    assert!(lines.len() > 1, "{lines:?}");
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "a colour code in {l:?}");
    }
}

/// More shards than the CPUs the process may use is allowed, with a warning saying so.
#[test]
fn more_shards_than_cpus_starts_with_a_warning() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lines = log_until_ready(cpus + 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("more than the CPUs")),
        "{lines:?}"
    );
}
