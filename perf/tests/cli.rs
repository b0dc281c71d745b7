//! The `shardlog-perf` binary end to end, against the fake broker.

mod common;

use std::process::{Command, Output};

use common::{closed_port, FakeBroker, FakeOptions};

fn perf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .args(args)
        .output()
        .expect("run shardlog-perf")
}

#[test]
fn json_summary_is_one_object_with_the_keys() {
    let fake = FakeBroker::start(FakeOptions::default());
    let out = perf(&[
        "produce",
        "--framed",
        &fake.addr(),
        "--messages",
        "500",
        "--connections",
        "2",
        "--messages-per-frame",
        "20",
        "--keys",
        "2",
        "--json",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one line: {stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in [
        "workload",
        "msgs_per_sec",
        "mb_per_sec",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "max_us",
        "acked",
        "errors",
        "duration_s",
        "connections",
        "in_flight",
        "messages_per_frame",
        "message_size",
        "keys",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["workload"], "produce");
    assert_eq!(v["acked"], 500);
    assert_eq!(v["errors"], 0);
    assert_eq!(v["connections"], 2);
    assert_eq!(v["messages_per_frame"], 20);
    assert_eq!(v["message_size"], 1024);
    assert_eq!(v["keys"], 2);
    assert!(v["failure"].is_null());
    assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(
        fake.stats
            .messages
            .load(std::sync::atomic::Ordering::SeqCst),
        500
    );
}

#[test]
fn text_summary_and_progress() {
    let fake = FakeBroker::start(FakeOptions::default());
    let out = perf(&[
        "produce",
        "--framed",
        &fake.addr(),
        "--duration",
        "1200ms",
        "--connections",
        "1",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    for word in ["throughput", "msg/s", "MB/s", "p50", "p99.9", "max"] {
        assert!(stdout.contains(word), "{word} missing from {stdout}");
    }
    // A progress line after the first second: elapsed, rates, acked, errors, p99.
    let line = stderr.lines().next().expect("a progress line");
    for word in ["s]", "msg/s", "MB/s", "acked", "errors", "p99"] {
        assert!(line.contains(word), "{word} missing from {line}");
    }
}

#[test]
fn unreachable_broker_exits_non_zero_with_a_clear_line() {
    let addr = closed_port();
    let out = perf(&["produce", "--framed", &addr, "--messages", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "error: connection 1 of 4 to the framed endpoint {addr} failed: cannot connect"
        )),
        "{stderr}"
    );
}

#[test]
fn verify_without_a_broker_fails_to_connect() {
    let addr = closed_port();
    let out = perf(&["produce", "--framed", &addr, "--verify", "--messages", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("verify: cannot connect"), "{stderr}");
}

#[test]
fn bad_flags_exit_with_usage_errors() {
    let out = perf(&["produce", "--randomness", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("--randomness"));
    let out = perf(&["produce", "--duration", "forever"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn errors_from_the_broker_are_printed_once() {
    let fake = FakeBroker::start(FakeOptions {
        error_every: Some(2),
        ..FakeOptions::default()
    });
    let out = perf(&[
        "produce",
        "--framed",
        &fake.addr(),
        "--messages",
        "1000",
        "--messages-per-frame",
        "10",
        "--json",
        "--quiet",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.matches("disk nearly full").count(),
        1,
        "printed once: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"], 50);
    assert_eq!(v["acked"], 500);
    assert_eq!(v["error_codes"]["unavailable(6)"], 50);
}

#[test]
fn ctrl_c_still_prints_the_summary() {
    let fake = FakeBroker::start(FakeOptions::default());
    let child = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .args(["produce", "--framed", &fake.addr(), "--json", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    // SAFETY: signalling the child this test started, by its id.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["interrupted"], true);
    assert!(v["acked"].as_u64().unwrap() > 0);
    assert!(v["duration_s"].as_f64().unwrap() < 5.0);
}
