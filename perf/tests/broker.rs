//! `consume`, `e2e` and `produce --verify` against a real broker process (1 shard, loopback,
//! a scratch data directory, free ports).
//!
//! The broker binary is another package's, so Cargo does not hand its path to these tests: they
//! look for it next to the test executable's directory (`target/debug/shardlog`, which
//! `cargo test --workspace` builds) and are skipped, with a line saying so, when it is absent.
//! `SHARDLOG_BIN=/path/to/shardlog` points them at another broker binary.

#[path = "common/broker_bin.rs"]
mod broker_bin;
use broker_bin::broker_binary;

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A broker process, killed when dropped.
struct Broker {
    child: Child,
    framed: SocketAddr,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a 1-shard broker, or `None` (with a note) when the binary is not built.
    fn start(test: &str) -> Option<Broker> {
        let Some(bin) = broker_binary() else {
            eprintln!(
                "SKIPPED {test}: no shardlog binary next to the test executable; \
                 run `cargo build -p shardlog` or `cargo test --workspace`"
            );
            return None;
        };
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let framed = free_addr();
        let http = free_addr();
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--shards", "1", "--framed-listen"])
            .arg(framed.to_string())
            .arg("--http-listen")
            .arg(http.to_string())
            .env("RUST_LOG", "warn,shardlog::broker=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start shardlog");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("shardlog ready") {
                    let _ = tx.send(());
                }
            }
        });
        let mut broker = Broker {
            child,
            framed,
            http,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while rx.try_recv().is_err() {
            if let Some(status) = broker.child.try_wait().unwrap() {
                panic!("shardlog exited during start-up: {status}");
            }
            assert!(Instant::now() < deadline, "shardlog did not become ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(broker)
    }

    fn addr(&self) -> String {
        self.framed.to_string()
    }

    /// The HTTP port (HTTP/1.1, and HTTP/2 for gRPC).
    fn http_addr(&self) -> String {
        self.http.to_string()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(self.framed).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs shardlog-perf with `--json --quiet`; returns the exit code and the JSON summary.
fn perf(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .args(args)
        .args(["--json", "--quiet"])
        .output()
        .expect("run shardlog-perf");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}); stderr: {stderr}"));
    (out.status.code(), v)
}

#[test]
fn produce_verify_reads_everything_back_even_from_a_used_topic() {
    let Some(b) = Broker::start("produce_verify") else {
        return;
    };
    let addr = b.addr();
    for (keys, n) in [("50", 3000u64), ("0", 2000)] {
        let (code, v) = perf(&[
            "produce",
            "--framed",
            &addr,
            "--topic",
            "v",
            "--messages",
            &n.to_string(),
            "--messages-per-frame",
            "16",
            "--keys",
            keys,
            "--verify",
        ]);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(v["acked"], n);
        assert_eq!(v["verified"], n, "{v}");
        for k in ["missing", "duplicates", "out_of_order", "corrupt"] {
            assert_eq!(v[k], 0, "{k}: {v}");
        }
        // Only this run's records are read back, though the topic already held some.
        assert_eq!(v["records_read"], n, "{v}");
    }
}

#[test]
fn consume_drains_what_was_produced() {
    let Some(b) = Broker::start("consume") else {
        return;
    };
    let addr = b.addr();
    let (code, v) = perf(&[
        "produce",
        "--framed",
        &addr,
        "--topic",
        "c",
        "--messages",
        "4000",
        "--keys",
        "7",
    ]);
    assert_eq!(code, Some(0), "{v}");
    let (code, v) = perf(&[
        "consume",
        "--framed",
        &addr,
        "--topic",
        "c",
        "--consumers",
        "2",
        "--until-empty",
        "--max-wait-ms",
        "50",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["workload"], "consume");
    assert_eq!(v["acked"], 4000, "{v}");
    assert_eq!(v["acked_bytes"], 4000 * 1024);
    assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(
        v["wire_bytes"].as_u64().unwrap() < 4000 * 1024,
        "compressed on the wire"
    );
    assert!(v["p99_us"].as_u64().unwrap() > 0);

    // The group committed everything: a second drain finds nothing; --no-decode counts bytes.
    let (code, v) = perf(&[
        "consume",
        "--framed",
        &addr,
        "--topic",
        "c",
        "--until-empty",
        "--max-wait-ms",
        "0",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["acked"], 0, "{v}");
    let (code, v) = perf(&[
        "consume",
        "--framed",
        &addr,
        "--topic",
        "c",
        "--group",
        "bytes-only",
        "--until-empty",
        "--max-wait-ms",
        "0",
        "--no-decode",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["raw_bytes"], 4000 * (12 + 1024), "{v}");
}

#[test]
fn consume_stops_after_messages() {
    let Some(b) = Broker::start("consume_messages") else {
        return;
    };
    let addr = b.addr();
    let (code, _) = perf(&[
        "produce",
        "--framed",
        &addr,
        "--topic",
        "m",
        "--messages",
        "3000",
    ]);
    assert_eq!(code, Some(0));
    let (code, v) = perf(&[
        "consume",
        "--framed",
        &addr,
        "--topic",
        "m",
        "--messages",
        "1000",
    ]);
    assert_eq!(code, Some(0), "{v}");
    let got = v["acked"].as_u64().unwrap();
    assert!((1000..=3000).contains(&got), "{v}");
}

#[test]
fn e2e_reports_end_to_end_and_ack_latency() {
    let Some(b) = Broker::start("e2e") else {
        return;
    };
    let addr = b.addr();
    // Something older in the topic: a fresh e2e group starts at the end and does not count it.
    let (code, _) = perf(&[
        "produce",
        "--framed",
        &addr,
        "--topic",
        "e",
        "--messages",
        "500",
    ]);
    assert_eq!(code, Some(0));
    let (code, v) = perf(&[
        "e2e",
        "--framed",
        &addr,
        "--topic",
        "e",
        "--messages",
        "3000",
        "--rate",
        "6000",
        "--messages-per-frame",
        "20",
        "--connections",
        "2",
        "--max-wait-ms",
        "100",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["workload"], "e2e");
    assert_eq!(v["produce_acked"], 3000, "{v}");
    assert_eq!(v["consumed"], 3000, "{v}");
    let (p50, p99, max) = (
        v["p50_us"].as_u64().unwrap(),
        v["p99_us"].as_u64().unwrap(),
        v["max_us"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{v}");
    assert!(max < 20_000_000, "{v}");
    assert!(v["ack_p99_us"].as_u64().unwrap() > 0);
    assert!(v["produce_msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["consume_msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(v["timestamps"], true);
}

#[test]
fn grpc_produce_then_grpc_consume_reads_the_same_counts() {
    let Some(b) = Broker::start("grpc_produce_consume") else {
        return;
    };
    let http = b.http_addr();
    // No metadata: partition 0; `--partition 2`: partition 2. Short last calls included.
    for (extra, n) in [(None, "3000"), (Some("2"), "1000")] {
        let mut args = vec![
            "grpc-produce",
            "--http",
            &http,
            "--topic",
            "g",
            "--messages",
            n,
            "--connections",
            "2",
            "--streams",
            "3",
            "--values-per-call",
            "50",
        ];
        if let Some(p) = extra {
            args.extend(["--partition", p]);
        }
        let (code, v) = perf(&args);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(v["workload"], "grpc-produce");
        assert_eq!(v["acked"], n.parse::<u64>().unwrap(), "{v}");
        assert_eq!(v["errors"], 0, "{v}");
        assert_eq!(v["unanswered_calls"], 0, "{v}");
        let (p50, p99, max) = (
            v["p50_us"].as_u64().unwrap(),
            v["p99_us"].as_u64().unwrap(),
            v["max_us"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{v}");
        assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0);
    }
    let (code, v) = perf(&[
        "grpc-consume",
        "--http",
        &http,
        "--topic",
        "g",
        "--partitions",
        "0,2",
        "--until-idle",
        "1s",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["workload"], "grpc-consume");
    assert_eq!(v["acked"], 4000, "{v}");
    assert_eq!(v["acked_bytes"], 4000 * 1024, "{v}");
    assert_eq!(v["offset_gaps"], 0, "{v}");
    assert_eq!(v["next_offsets"]["0"], 3000, "{v}");
    assert_eq!(v["next_offsets"]["2"], 1000, "{v}");

    // --messages from an offset stops at exactly that many.
    let (code, v) = perf(&[
        "grpc-consume",
        "--http",
        &http,
        "--topic",
        "g",
        "--from-offset",
        "2500",
        "--messages",
        "400",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["acked"], 400, "{v}");
    assert_eq!(v["next_offsets"]["0"], 2900, "{v}");

    // What gRPC produced, the framed consumer reads too.
    let (code, v) = perf(&[
        "consume",
        "--framed",
        &b.addr(),
        "--topic",
        "g",
        "--until-empty",
        "--max-wait-ms",
        "0",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["acked"], 4000, "{v}");
}

#[test]
fn grpc_produce_with_keys_spreads_over_partitions() {
    let Some(b) = Broker::start("grpc_produce_keys") else {
        return;
    };
    let http = b.http_addr();
    let (code, v) = perf(&[
        "grpc-produce",
        "--http",
        &http,
        "--topic",
        "k",
        "--messages",
        "2000",
        "--keys",
        "20",
        "--values-per-call",
        "40",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["acked"], 2000, "{v}");
    assert_eq!(v["keys"], 20);
    // 1 shard × 4 ranges: partitions 0..3.
    let (code, v) = perf(&[
        "grpc-consume",
        "--http",
        &http,
        "--topic",
        "k",
        "--partitions",
        "0,1,2,3",
        "--until-idle",
        "1s",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["acked"], 2000, "{v}");
    let used = (0..4)
        .filter(|p| v["next_offsets"][p.to_string()].as_u64().unwrap() > 0)
        .count();
    assert!(used >= 2, "20 keys land in more than one partition: {v}");
}

#[test]
fn grpc_errors_are_counted_and_a_refusing_broker_fails_the_run() {
    let Some(b) = Broker::start("grpc_errors") else {
        return;
    };
    // Partition 9 does not exist (4 partitions): every call is INVALID_ARGUMENT.
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .args(["grpc-produce", "--http", &b.http_addr(), "--topic", "x"])
        .args([
            "--partition",
            "9",
            "--messages",
            "200",
            "--values-per-call",
            "10",
        ])
        .args(["--json", "--quiet"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["acked"], 0, "{v}");
    assert_eq!(v["errors"], 20, "{v}");
    assert_eq!(v["error_codes"]["invalid_argument(3)"], 20, "{v}");
    // Nothing listening: a setup error, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .args(["grpc-consume", "--http", &free_addr().to_string()])
        .args(["--until-idle", "1s", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

/// The HTTP consumer transport against the broker's REST consumer API.
#[test]
fn consume_over_http_drains_what_was_produced() {
    let Some(b) = Broker::start("consume_http") else {
        return;
    };
    let (code, v) = perf(&[
        "produce",
        "--framed",
        &b.addr(),
        "--topic",
        "h",
        "--messages",
        "3000",
        "--keys",
        "7",
    ]);
    assert_eq!(code, Some(0), "{v}");
    let http = b.http_addr();
    let (code, v) = perf(&[
        "consume",
        "--transport",
        "http",
        "--http",
        &http,
        "--topic",
        "h",
        "--consumers",
        "2",
        "--until-empty",
        "--max-wait-ms",
        "50",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["transport"], "http");
    assert_eq!(v["acked"], 3000, "{v}");
    assert_eq!(v["acked_bytes"], 3000 * 1024);
    assert!(v["wire_bytes"].as_u64().unwrap() < 3000 * 1024, "{v}");
    // Each poll committed the previous one and GOODBYE the last: nothing is left.
    let (code, v) = perf(&[
        "consume",
        "--transport",
        "http",
        "--http",
        &http,
        "--topic",
        "h",
        "--until-empty",
        "--max-wait-ms",
        "0",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["acked"], 0, "{v}");
    // --messages stops early.
    let (code, v) = perf(&[
        "consume",
        "--transport",
        "http",
        "--http",
        &http,
        "--topic",
        "h",
        "--group",
        "other",
        "--messages",
        "1000",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert!((1000..=3000).contains(&v["acked"].as_u64().unwrap()), "{v}");
}
