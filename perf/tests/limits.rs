//! `shardlog-perf limits` with tiny sizes in a scratch directory: sane JSON, files removed.

use std::process::Command;

/// Runs `shardlog-perf limits --json ARGS`, checks it succeeded, and returns its JSON.
fn limits_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .args(["limits", "--json"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn limits_with_tiny_sizes_prints_sane_json_and_cleans_up() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .args([
            "limits",
            "--json",
            "--dir",
            dir.path().to_str().unwrap(),
            "--zstd-duration",
            "100ms",
            "--zstd-level=-5",
            "--batch-messages",
            "128",
            "--chunk-messages",
            "8",
            "--fsync-iterations",
            "20",
            "--chunk-size",
            "16KiB",
            "--bw-size",
            "4MiB",
            "--bw-block",
            "256KiB",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["workload"], "limits");

    let z = &v["zstd"];
    assert_eq!(z["level"], -5);
    assert_eq!(z["checksum"], true);
    for r in [&z["batch"], &z["chunk"]] {
        assert!(r["msgs_per_sec"].as_f64().unwrap() > 1000.0, "{r}");
        assert!(r["mb_per_sec"].as_f64().unwrap() > 1.0, "{r}");
        let ratio = r["ratio"].as_f64().unwrap();
        assert!((1.0..10.0).contains(&ratio), "ratio {ratio}");
    }
    assert_eq!(z["batch"]["messages_per_batch"], 128);
    assert_eq!(z["batch"]["batch_bytes"], 128 * (12 + 1024));
    assert_eq!(z["chunk"]["messages_per_batch"], 8);

    let f = &v["fsync"];
    assert_eq!(f["writes"], 20);
    assert_eq!(f["chunk_size"], 16384);
    let (p50, p99, max) = (
        f["p50_us"].as_u64().unwrap(),
        f["p99_us"].as_u64().unwrap(),
        f["max_us"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{f}");
    assert!(f["writes_per_sec"].as_f64().unwrap() > 0.0);

    let b = &v["bandwidth"];
    assert_eq!(b["bytes"], 4 << 20);
    assert!(b["write_mb_per_sec"].as_f64().unwrap() > 0.0, "{b}");
    assert!(b["read_mb_per_sec"].as_f64().unwrap() > 0.0, "{b}");

    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "test files left behind: {left:?}");
}

#[test]
fn limits_only_runs_what_is_asked_and_rejects_bad_sizes() {
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .args([
            "limits",
            "--json",
            "--only",
            "zstd",
            "--zstd-duration",
            "50ms",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["zstd"].is_object());
    assert!(v["fsync"].is_null() && v["bandwidth"].is_null() && v["fsync_mix"].is_null());

    let out = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .args(["limits", "--chunk-size", "1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--chunk-size"));
}

/// The disk under a broker's write pattern: several paced `O_DSYNC` writers, files removed.
#[test]
fn fsync_mix_replays_the_pattern_at_the_rate_asked() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let v = limits_json(&[
        "--only",
        "fsync-mix",
        "--dir",
        dir.path().to_str().unwrap(),
        "--mix-writers",
        "3",
        "--mix-rate",
        "600",
        "--mix-size",
        "10000",
        "--mix-duration",
        "300ms",
    ]);
    assert!(v["zstd"].is_null() && v["fsync"].is_null());
    let m = &v["fsync_mix"];
    assert_eq!(m["writers"], 3);
    assert_eq!(m["chunk_size"], 12288, "rounded up to the alignment: {m}");
    // 600 writes/s for 0.3 s is 180 writes: a slow disk may fall behind, never ahead.
    let writes = m["writes"].as_u64().unwrap();
    assert!(writes > 0 && writes <= 183, "{m}");
    let (p50, p99, max) = (
        m["p50_us"].as_u64().unwrap(),
        m["p99_us"].as_u64().unwrap(),
        m["max_us"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{m}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "test files left behind: {left:?}");

    for bad in [
        ["--mix-writers", "0"],
        ["--mix-rate", "0"],
        ["--mix-duration", "0s"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
            .args(["limits", "--only", "fsync-mix", "--dir"])
            .arg(dir.path())
            .args(bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(bad[0]), "{bad:?}: {stderr}");
    }
}

#[test]
fn hiccup_spins_for_the_time_asked_and_reports_every_bound() {
    let v = limits_json(&["--only", "hiccup", "--hiccup-duration", "300ms"]);
    assert!(v["zstd"].is_null() && v["fsync"].is_null() && v["fsync_mix"].is_null());
    let h = &v["hiccup"];
    assert!(h["seconds"].as_f64().unwrap() >= 0.3, "{h}");
    let bounds: Vec<f64> = h["gaps_over_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .collect();
    assert_eq!(bounds, [1.0, 2.0, 5.0, 10.0, 20.0, 25.0], "{h}");
    assert!(h["worst_ms"].as_f64().unwrap() >= 0.0, "{h}");
}
