//! Power loss: a workload runs on the simulated file system (`storage::sim`), then the power
//! is cut after every sync and after a seeded sample of the ops between them, each image is
//! recovered with the broker's own start-up code, and the guarantees are checked (see
//! `power_loss/check.rs` and docs/reliability.md, "Power loss").
//!
//! `cargo test --test power_loss` runs a few hundred cuts; the campaign (thousands) is
//! `cargo test --test power_loss power_cut_campaign -- --ignored --nocapture`. A failure prints the
//! environment that replays exactly that cut (either test then runs only it):
//! `SHARDLOG_POWERCUT_WORKLOAD`, `SHARDLOG_POWERCUT_FRAMES`, `SHARDLOG_POWERCUT_OP`,
//! `SHARDLOG_POWERCUT_POLICY` (`synced`, `all`, `random`) and `SHARDLOG_POWERCUT_SEED`.

#[path = "power_loss/check.rs"]
mod check;
#[path = "power_loss/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use shardlog::consumer::offsets;
use shardlog::shard::topics;
use shardlog::storage::sim::{CutPolicy, SimFs};
use shardlog::storage::PartitionLog;

use check::{Recovered, RecoveredPartition};
use workload::{Mix, Run, Workload};

const DATA_DIR: &str = "/powercut/data";

/// Recovers an image with the broker's start-up code: the topic layouts on disk, each of
/// their partitions' logs (recovery runs at open, as the writer opens them) and the consumer
/// groups' committed offsets.
async fn recover(fs: &SimFs, data_dir: &Path) -> Result<Recovered, String> {
    let mut rec = Recovered::default();
    let config = workload::config(data_dir);
    let loaded = topics::load_all(fs, data_dir)
        .await
        .map_err(|e| format!("loading the topics: {e}"))?;
    for (topic, layout) in &loaded.layouts {
        for j in 0..layout.partitions() {
            let dir = workload::partition_dir(data_dir, topic, layout, j);
            let (log, _) = PartitionLog::open_with(fs.clone(), &dir, config.log_config())
                .await
                .map_err(|e| format!("opening {}: {e}", dir.display()))?;
            let records = log
                .read_all_records()
                .await
                .map_err(|e| format!("reading {}: {e}", dir.display()))?;
            rec.partitions.insert(
                (topic.clone(), j),
                RecoveredPartition {
                    start: log.start_offset(),
                    next: log.next_offset(),
                    records: records.into_iter().map(|(o, _, b)| (o, b)).collect(),
                },
            );
        }
    }
    let groups = offsets::load_all(fs, &offsets::offsets_dir(data_dir))
        .await
        .map_err(|e| format!("loading the committed offsets: {e}"))?;
    for (group, offsets) in groups {
        rec.offsets.insert(group, offsets.into_iter().collect());
    }
    Ok(rec)
}

/// One power cut to try.
#[derive(Debug, Clone, Copy)]
struct Cut {
    op: u64,
    policy: CutPolicy,
}

fn policy_env(p: CutPolicy) -> (&'static str, u64) {
    match p {
        CutPolicy::SyncedOnly => ("synced", 0),
        CutPolicy::AllWritten => ("all", 0),
        CutPolicy::RandomSubset(s) => ("random", s),
    }
}

/// Cuts after every sync (or, with `budget`, an even sample of them) and a seeded sample of
/// the other ops; `every_policy` tries each sync point under all three policies.
fn plan_cuts(run: &Run, w: Workload, budget: usize, every_policy: bool) -> Vec<Cut> {
    let mut mix = Mix::new(w.seed ^ 0xC075);
    let syncs = run.fs.sync_points();
    let step = if budget == 0 {
        1
    } else {
        syncs.len().div_ceil(budget * 2 / 3).max(1)
    };
    let mut cuts = Vec::new();
    for (i, op) in syncs.iter().copied().enumerate().step_by(step) {
        let random = CutPolicy::RandomSubset(mix.next_u64());
        if every_policy {
            cuts.extend(
                [CutPolicy::SyncedOnly, CutPolicy::AllWritten, random]
                    .map(|policy| Cut { op, policy }),
            );
        } else {
            let policy = match i % 5 {
                0 => CutPolicy::SyncedOnly,
                1 => CutPolicy::AllWritten,
                _ => random,
            };
            cuts.push(Cut { op, policy });
        }
    }
    let between = if budget == 0 {
        syncs.len()
    } else {
        budget.saturating_sub(cuts.len())
    };
    for _ in 0..between {
        let op = 1 + mix.below(run.ops.max(1));
        cuts.push(Cut {
            op,
            policy: CutPolicy::RandomSubset(mix.next_u64()),
        });
    }
    cuts
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

/// The cut the environment asks to replay, if any.
fn replay_from_env(frames: usize) -> Option<(Workload, Cut)> {
    let op = env_u64("SHARDLOG_POWERCUT_OP")?;
    let workload = Workload {
        seed: env_u64("SHARDLOG_POWERCUT_WORKLOAD").unwrap_or(1),
        frames: env_u64("SHARDLOG_POWERCUT_FRAMES").map_or(frames, |f| f as usize),
    };
    let seed = env_u64("SHARDLOG_POWERCUT_SEED").unwrap_or(0);
    let policy = match std::env::var("SHARDLOG_POWERCUT_POLICY").as_deref() {
        Ok("synced") => CutPolicy::SyncedOnly,
        Ok("all") => CutPolicy::AllWritten,
        Ok("random") | Err(_) => CutPolicy::RandomSubset(seed),
        Ok(other) => panic!("SHARDLOG_POWERCUT_POLICY={other}: synced, all or random"),
    };
    Some((workload, Cut { op, policy }))
}

/// What a campaign found.
#[derive(Debug, Default)]
struct Summary {
    cuts: usize,
    /// Cuts during the recovery of a cut image.
    second_cuts: usize,
    by_policy: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
}

/// Runs workload `w` (odd seeds: O_DSYNC segment writes; even: write + fdatasync) and tries
/// `cuts` (or the planned ones) on it.
async fn campaign_one(
    w: Workload,
    budget: usize,
    every_policy: bool,
    only: Option<Cut>,
) -> Summary {
    let data_dir = PathBuf::from(DATA_DIR);
    let durable_writes = w.seed % 2 == 1;
    let fs = workload::fresh_fs(&data_dir, durable_writes).await;
    let run = workload::run(fs, data_dir.clone(), w).await;
    // What the run did: partitions whose start moved up had segments deleted by retention.
    if let Ok(end) = recover(&run.fs.power_cut(run.ops, CutPolicy::AllWritten), &data_dir).await {
        let acked = run
            .messages
            .iter()
            .filter(|m| m.acked_offset.is_some())
            .count();
        let parts: Vec<String> = end
            .partitions
            .iter()
            .map(|((t, j), p)| format!("{t}/{j} {}..{}", p.start, p.next))
            .collect();
        println!(
            "workload {}: {acked} messages acknowledged, {} commits, {} ops, {} syncs; {}",
            w.seed,
            run.commits.len(),
            run.ops,
            run.fs.sync_points().len(),
            parts.join(", ")
        );
    }
    if let Ok(path) = std::env::var("SHARDLOG_POWERCUT_OPLOG") {
        std::fs::write(&path, run.fs.op_log().join("\n")).expect("write the op log");
    }
    let cuts = match only {
        Some(c) => vec![c],
        None => plan_cuts(&run, w, budget, every_policy),
    };
    let mut out = Summary::default();
    for cut in cuts {
        let image = run.fs.power_cut(cut.op, cut.policy);
        let (name, seed) = policy_env(cut.policy);
        out.cuts += 1;
        *out.by_policy.entry(name).or_default() += 1;
        let mut problems = match recover(&image, &data_dir).await {
            Ok(rec) => check::violations(&run, cut.op, &rec),
            Err(e) => vec![format!("recovery failed: {e}")],
        };
        // A second cut during that recovery (it truncates torn tails, rewrites padding and
        // indexes, removes the clean marker), at an op and with a seed derived from this cut's,
        // then recovery again: the same guarantees must hold.
        let during = image.op_count();
        if problems.is_empty() && during > 0 {
            let mut mix = Mix::new(cut.op ^ seed.rotate_left(17));
            let op2 = 1 + mix.below(during);
            let again = image.power_cut(op2, CutPolicy::RandomSubset(mix.next_u64()));
            out.second_cuts += 1;
            problems = match recover(&again, &data_dir).await {
                Ok(rec) => check::violations(&run, cut.op, &rec),
                Err(e) => vec![format!("recovery failed: {e}")],
            }
            .into_iter()
            .map(|p| format!("after a second cut at op {op2} of recovery's {during}: {p}"))
            .collect();
        }
        if !problems.is_empty() {
            out.failures.push(format!(
                "workload {} ({} segment writes), cut after op {} of {}, policy {name}:\n  {}\n  \
                 replay: SHARDLOG_POWERCUT_WORKLOAD={} SHARDLOG_POWERCUT_FRAMES={} \
                 SHARDLOG_POWERCUT_OP={} SHARDLOG_POWERCUT_POLICY={name} \
                 SHARDLOG_POWERCUT_SEED={seed} cargo test --test power_loss -- --nocapture",
                w.seed,
                if durable_writes {
                    "O_DSYNC"
                } else {
                    "fdatasync"
                },
                cut.op,
                run.ops,
                problems.join("\n  "),
                w.seed,
                w.frames,
                cut.op,
            ));
        }
    }
    out
}

/// Runs the workloads and their cuts, or only the cut the environment names.
fn campaign(workloads: Vec<Workload>, budget: usize, every_policy: bool) -> Summary {
    shardlog::rt::block_on_unpreempted(async move {
        let mut total = Summary::default();
        let frames = workloads.first().map_or(0, |w| w.frames);
        let runs: Vec<(Workload, Option<Cut>)> = match replay_from_env(frames) {
            Some((w, cut)) => vec![(w, Some(cut))],
            None => workloads.into_iter().map(|w| (w, None)).collect(),
        };
        for (w, only_cut) in runs {
            let s = campaign_one(w, budget, every_policy, only_cut).await;
            total.cuts += s.cuts;
            total.second_cuts += s.second_cuts;
            for (k, v) in s.by_policy {
                *total.by_policy.entry(k).or_default() += v;
            }
            total.failures.extend(s.failures);
        }
        total
    })
}

fn report(s: &Summary) {
    println!(
        "power cuts: {} ({:?}), second cuts during recovery: {}, failures: {}",
        s.cuts,
        s.by_policy,
        s.second_cuts,
        s.failures.len()
    );
    for f in s.failures.iter().take(20) {
        println!("{f}");
    }
    assert!(
        s.failures.is_empty(),
        "{} of {} power cuts failed (see above)",
        s.failures.len(),
        s.cuts
    );
}

#[test]
fn every_acknowledged_message_survives_a_power_cut() {
    let workloads = (1..=2).map(|seed| Workload { seed, frames: 120 }).collect();
    let s = campaign(workloads, 150, false);
    report(&s);
}

/// The campaign: thousands of cuts over several workloads. `SHARDLOG_POWERCUT_WORKLOADS`
/// (default 4) workloads of `SHARDLOG_POWERCUT_FRAMES` (default 300) frames each, every sync
/// point under every policy plus as many random points between.
#[test]
#[ignore]
fn power_cut_campaign() {
    let n = env_u64("SHARDLOG_POWERCUT_WORKLOADS").unwrap_or(4);
    let frames = env_u64("SHARDLOG_POWERCUT_FRAMES").unwrap_or(300) as usize;
    let workloads = (1..=n).map(|seed| Workload { seed, frames }).collect();
    let s = campaign(workloads, 0, true);
    report(&s);
}
