//! `chaos` against the real broker binary: a few kill-and-restart cycles at 1 and 2 shards must
//! find nothing, and the same loop over a broker that loses the tail of its segments at each
//! restart must say so (exit 3, a LOST violation with the seed and cycle).
//!
//! Like `broker.rs`, these look for the broker next to the test executable's directory
//! (`target/debug/shardlog`, which `cargo test --workspace` builds), or at `SHARDLOG_BIN`, and
//! are skipped, with a line saying so, when it is absent.

#[path = "common/broker_bin.rs"]
mod broker_bin;
use broker_bin::broker_binary;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Runs `chaos --json --quiet` with `args`; returns the exit code, the summary and stderr.
fn chaos(broker: &Path, data: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog-perf"))
        .arg("chaos")
        .arg("--broker-bin")
        .arg(broker)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .args(["--json", "--quiet"])
        .output()
        .expect("run shardlog-perf chaos");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}); stderr: {stderr}"));
    (out.status.code(), v, stderr)
}

#[test]
fn a_few_crash_cycles_lose_nothing_at_one_and_two_shards() {
    let Some(bin) = broker_binary() else {
        eprintln!("SKIPPED chaos: no shardlog binary next to the test executable");
        return;
    };
    for shards in ["1", "2"] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let (code, v, stderr) = chaos(
            &bin,
            &dir.path().join("data"),
            &[
                "--shards",
                shards,
                "--cycles",
                "3",
                "--seed",
                "14",
                "--min-run",
                "300ms",
                "--max-run",
                "1s",
                "--stop-probability",
                "0.5",
            ],
        );
        assert_eq!(code, Some(0), "shards {shards}: {v}\n{stderr}");
        assert_eq!(v["cycles"], 3, "{v}");
        assert_eq!(v["violations"], 0, "{v}");
        assert_eq!(v["shards"].as_u64(), shards.parse().ok(), "{v}");
        let acked = v["acknowledged"].as_u64().unwrap();
        assert!(acked > 0, "nothing was acknowledged: {v}");
        assert_eq!(v["verified"].as_u64(), Some(acked), "{v}");
        assert!(v["restart_ms_p50"].as_f64().unwrap() > 0.0, "{v}");
    }
}

#[test]
fn a_broker_that_loses_acknowledged_messages_is_caught() {
    let Some(bin) = broker_binary() else {
        eprintln!("SKIPPED chaos: no shardlog binary next to the test executable");
        return;
    };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // Before each start, cut every partition's newest segment to half its size (whole 4 KiB
    // blocks): what a crash can never do to acknowledged data, and what recovery then takes
    // for a torn tail.
    let lossy = dir.path().join("lossy-shardlog");
    std::fs::write(
        &lossy,
        format!(
            "#!/bin/sh\n\
             for part in \"$2\"/*/*/; do\n\
             \x20 seg=$(ls \"$part\"*.log 2>/dev/null | sort | tail -n 1)\n\
             \x20 [ -n \"$seg\" ] || continue\n\
             \x20 size=$(stat -c %s \"$seg\")\n\
             \x20 truncate -s $(( size / 2 / 4096 * 4096 )) \"$seg\"\n\
             done\n\
             exec '{}' \"$@\"\n",
            bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&lossy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, v, stderr) = chaos(
        &lossy,
        &dir.path().join("data"),
        &[
            "--cycles",
            "3",
            "--seed",
            "99",
            "--min-run",
            "1s",
            "--max-run",
            "1s",
        ],
    );
    assert_eq!(code, Some(3), "{v}\n{stderr}");
    assert!(v["violations"].as_u64().unwrap() > 0, "{v}");
    assert!(stderr.contains("VIOLATION: seed 99 cycle 1"), "{stderr}");
    assert!(stderr.contains("LOST"), "{stderr}");
}
