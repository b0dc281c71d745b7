//! `--io-worker-cpus` (issue 16, item 4): a shard's helper threads run where the flag says,
//! off the shard's core. The kernel's io_uring workers for the shard's thread
//! (`iou-wrk-<shard tid>`, here creating segment and index files) and glommio's blocking-pool
//! thread (named after the shard, as its creator) are allowed only on the helper CPU, and the
//! shard itself stays on its own. Read from `/proc/<pid>/task/*/status`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::framed::FramedProducer;
use common::Broker;
use shardlog::rt::pool::allowed_cpus;

/// Each thread of `pid`: (tid, name, the CPUs it may run on as the kernel prints them).
fn threads(pid: u32) -> Vec<(u32, String, String)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let Ok(tid) = t.file_name().to_string_lossy().parse() else {
            continue;
        };
        out.push((tid, field("Name:"), field("Cpus_allowed_list:")));
    }
    out
}

#[test]
fn the_shards_helper_threads_run_on_the_io_worker_cpus() {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        eprintln!("skipped: this process may run on one CPU only ({cpus:?})");
        return;
    }
    let (shard_cpu, helper_cpu) = (cpus[0], cpus[1]);
    let (shard_s, helper_s) = (shard_cpu.to_string(), helper_cpu.to_string());
    let broker = Broker::start_with(
        1,
        &[
            "--cpus",
            &shard_s,
            "--io-worker-cpus",
            &helper_s,
            "--segment-size",
            "64KiB",
        ],
    );
    let pid = broker.pid();

    let named_shard: Vec<_> = threads(pid)
        .into_iter()
        .filter(|(_, name, _)| name == "shard-0")
        .collect();
    let executor = named_shard
        .iter()
        .find(|(_, _, allowed)| *allowed == shard_s)
        .unwrap_or_else(|| panic!("no shard-0 thread pinned to CPU {shard_cpu}: {named_shard:?}"));
    assert!(
        named_shard.iter().any(|(_, _, allowed)| *allowed == helper_s),
        "the blocking pool's thread (named shard-0 too) is not on CPU {helper_cpu}: {named_shard:?}"
    );
    let workers_prefix = format!("iou-wrk-{}", executor.0);

    // New topics and segment rolls create files: io_uring hands each creation to a worker.
    // Workers exit when idle for a few seconds, so look while producing.
    let body = vec![b'x'; 16 << 10];
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while seen.is_empty() && Instant::now() < deadline {
        let mut p = FramedProducer::startup(broker.framed, &format!("steer-{round}"));
        for _ in 0..16 {
            let r = p.produce(b"", &[&body, &body]);
            assert!(r.is_ok(), "produce refused: {r:?}");
        }
        for (tid, name, allowed) in threads(pid) {
            if name.starts_with(&workers_prefix) {
                seen.insert(tid, allowed);
            }
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !seen.is_empty(),
        "no io_uring worker of the shard's thread ({workers_prefix}) was seen in {round} rounds"
    );
    for (tid, allowed) in &seen {
        assert_eq!(
            *allowed, helper_s,
            "io_uring worker {tid} may run on {allowed}, not only on CPU {helper_cpu}"
        );
    }
}
