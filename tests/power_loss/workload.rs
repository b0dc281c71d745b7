//! The workload a power-loss campaign cuts: produces with and without keys, small segments
//! that roll, retention deleting old segments, a topic created mid-run and consumer commits,
//! on the simulated file system. Every acknowledgement and commit is recorded with the op
//! number the file system had reached when it was observed: the sync it depended on came
//! before, so a cut at or after that op must keep it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use shardlog::broker::start_core;
use shardlog::config::Config;
use shardlog::consumer::coordinator::StartAt;
use shardlog::consumer::Coordinator;
use shardlog::ring::TopicLayout;
use shardlog::rt::ShardMesh;
use shardlog::shard::msg::ShardMsg;
use shardlog::shard::{topics, Shard};
use shardlog::storage::fs::{BrokerFs, FileSystem};
use shardlog::storage::sim::{CutPolicy, SimFs};
use shardlog::storage::Durability;

/// One message produced.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub partition: u32,
    /// Empty for a keyless frame.
    pub key: Vec<u8>,
    /// Its offset, once acknowledged.
    pub acked_offset: Option<i64>,
    /// The op number when the acknowledgement was seen.
    pub acked_at: u64,
}

/// A commit of consumer offsets, acknowledged at op `at_op`.
#[derive(Debug, Clone)]
pub struct Commit {
    pub group: String,
    pub positions: Vec<((String, u32), i64)>,
    pub at_op: u64,
}

/// What a run did, for the checks.
pub struct Run {
    /// By id (a message's body carries its id).
    pub messages: Vec<Message>,
    pub commits: Vec<Commit>,
    pub fs: SimFs,
    /// The op numbers the run covers (the setup before it is durable).
    pub ops: u64,
}

/// A workload: its seed and how many frames it produces.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub seed: u64,
    pub frames: usize,
}

pub const GROUP: &str = "g";
pub const CONSUMER: &str = "c1";
pub const FIRST_TOPIC: &str = "orders";
pub const LATE_TOPIC: &str = "late";

/// The workload's choices come from the simulator's seeded generator (SplitMix64).
pub use shardlog::storage::sim::Rng as Mix;

/// A message's body: its id, its key, then filler derived from the id (incompressible, so
/// segments fill and roll).
pub fn body_for(id: u64, key: &[u8]) -> Vec<u8> {
    let mut mix = Mix::new(id ^ 0xB0D1);
    let len = 200 + mix.below(2400) as usize;
    let mut b = Vec::with_capacity(len + 9 + key.len());
    b.extend_from_slice(&id.to_be_bytes());
    b.push(key.len() as u8);
    b.extend_from_slice(key);
    while b.len() < len {
        b.extend_from_slice(&mix.next_u64().to_le_bytes());
    }
    b
}

/// The id a body claims (the checker then compares the whole body).
pub fn parse_body(body: &[u8]) -> Option<u64> {
    let id = body.get(..8)?;
    Some(u64::from_be_bytes(id.try_into().ok()?))
}

/// The broker's settings for the run: one shard, two partitions per topic, 64 KiB segments,
/// 96 KiB of retention per partition (below the flag's minimum; the struct takes it).
pub fn config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        shards: 1,
        ranges_per_shard: 2,
        segment_size: 64 << 10,
        retention_bytes: Some(96 << 10),
        retention_age: None,
        auto_create_topics: true,
        durability: Durability::Fsync,
        ..Config::default()
    }
}

pub fn partition_dir(data_dir: &Path, topic: &str, layout: &TopicLayout, j: u32) -> PathBuf {
    topics::topic_dir(data_dir, topic).join(layout.partition_id(j).dir_name())
}

/// A file system holding an empty, durable data directory at `data_dir`; segment files'
/// writes are durable when they complete (O_DSYNC, as `--durability fsync` opens them) or
/// only after fdatasync.
pub async fn fresh_fs(data_dir: &Path, durable_writes: bool) -> SimFs {
    let fs = SimFs::new().with_durable_writes(durable_writes);
    fs.create_dir_all(data_dir).await.expect("data dir");
    fs.power_cut(fs.op_count(), CutPolicy::AllWritten)
}

/// Runs the workload on one real shard (the broker's start-up with the consumer coordinator,
/// `Shard::submit_messages` as the gRPC and REST servers call it, the coordinator's poll and
/// commit calls, a graceful restart two thirds of the way in), with the simulated file system
/// under it.
pub async fn run(fs: SimFs, data_dir: PathBuf, w: Workload) -> Run {
    let config = Rc::new(config(&data_dir));
    let mut shard = start(&config, &fs).await;
    let mut coordinator = Coordinator::on(&shard).expect("coordinator");
    let mut mix = Mix::new(w.seed);
    let mut messages: Vec<Message> = Vec::new();
    let mut commits = Vec::new();
    let mut topics_made = vec![FIRST_TOPIC.to_string()];
    let mut i = 0;
    let mut restarted = false;
    while i < w.frames {
        if i >= w.frames * 2 / 3 && !restarted {
            // A graceful restart: the partitions close cleanly (the clean marker), the next
            // start trusts it, and appends go on.
            restarted = true;
            shard.lifecycle.stop();
            shard.close().await;
            shardlog::consumer::api::flush(&shard).await;
            shard = start(&config, &fs).await;
            coordinator = Coordinator::on(&shard).expect("coordinator");
        }
        if i >= w.frames / 3 && topics_made.len() == 1 {
            // A topic created mid-run, by its first produce (auto-create).
            topics_made.push(LATE_TOPIC.to_string());
        }
        // A few frames at once, so the writer coalesces them (group commit).
        let at_once = 1 + mix.below(4) as usize;
        let mut frames = Vec::new();
        for _ in 0..at_once.min(w.frames - i) {
            i += 1;
            let name = &topics_made[mix.below(topics_made.len() as u64) as usize];
            let topic = shard.topic(name).await.expect("topic");
            let key = if mix.below(10) < 7 {
                format!("k{}", mix.below(5)).into_bytes()
            } else {
                Vec::new()
            };
            let j = if key.is_empty() {
                shard.keyless_partition(&topic)
            } else {
                topic.layout.partition_of_key(&key)
            };
            let count = 1 + mix.below(3) as usize;
            let first = messages.len();
            for _ in 0..count {
                messages.push(Message {
                    topic: name.clone(),
                    partition: j,
                    key: key.clone(),
                    acked_offset: None,
                    acked_at: u64::MAX,
                });
            }
            frames.push((topic, j, key, first, count));
        }
        // One partition at a time, its frames queued together so its writer coalesces them
        // (group commit), then acknowledged and the writer idle before the next partition's:
        // the writers wait for a short timer between chunks (`rt::next_io_turn`), so two at
        // once would interleave their writes by the clock, and the run's ops would differ
        // from run to run.
        frames.sort_by(|a, b| (&a.0.name, a.1).cmp(&(&b.0.name, b.1)));
        for part in frames.chunk_by(|a, b| a.0.name == b.0.name && a.1 == b.1) {
            let mut pending = Vec::new();
            for (topic, j, key, first, count) in part {
                let bodies: Vec<Vec<u8>> = (0..*count)
                    .map(|k| body_for((first + k) as u64, key))
                    .collect();
                let len = bodies.iter().map(|b| b.len() + 4).sum::<usize>() + key.len() + 1;
                let (ack, permit) = shard
                    .submit_messages(topic, *j, 0, None, key, bodies.iter().map(|b| &b[..]), len)
                    .await
                    .expect("submit");
                let (fs, first) = (fs.clone(), *first);
                pending.push(async move {
                    let ack = ack.wait().await.expect("acknowledged");
                    let at = fs.op_count();
                    drop(permit);
                    (first, ack, at)
                });
            }
            for (first, ack, at) in futures_util::future::join_all(pending).await {
                for k in 0..ack.count as usize {
                    let m = &mut messages[first + k];
                    m.acked_offset = Some(ack.offset + k as i64);
                    m.acked_at = at;
                }
            }
            for t in shard.topic_states() {
                for w in t.owned() {
                    w.wait_idle().await;
                }
            }
        }
        if mix.below(6) == 0 {
            retention(&shard).await;
        }
        if mix.below(4) == 0 {
            commits.push(commit(&shard, &coordinator, &messages, &topics_made, &fs).await);
        }
    }
    let ops = fs.op_count();
    Run {
        messages,
        commits,
        fs,
        ops,
    }
}

/// Starts the broker's one core on the simulated disk.
async fn start(config: &Rc<Config>, fs: &SimFs) -> Rc<Shard> {
    let mesh = ShardMesh::<ShardMsg>::new(1, 16);
    start_core(0, config.clone(), BrokerFs::Sim(fs.clone()), mesh)
        .await
        .expect("start the shard")
}

/// Retention over every partition, as the shard's background loop runs it.
async fn retention(shard: &Rc<Shard>) {
    for t in shard.topic_states() {
        for w in t.owned() {
            if let Some(log) = w.log() {
                log.enforce_retention(SystemTime::now())
                    .await
                    .expect("retention");
            }
        }
    }
}

/// One consumer of the group registers for every topic so far, polls (which commits its
/// previous poll in the background), is handed everything acknowledged so far, and commits
/// that, durably.
async fn commit(
    shard: &Rc<Shard>,
    coordinator: &Rc<Coordinator>,
    messages: &[Message],
    topics_made: &[String],
    fs: &SimFs,
) -> Commit {
    let topics: Vec<(String, u32)> = topics_made
        .iter()
        .map(|t| (t.clone(), layout_partitions()))
        .collect();
    coordinator
        .register(shard, CONSUMER, GROUP, &topics, StartAt::Earliest)
        .await
        .expect("register");
    let (_, session) = coordinator.plan(CONSUMER).await.expect("poll");
    let mut ends: BTreeMap<(String, u32), i64> = BTreeMap::new();
    for m in messages {
        if let Some(o) = m.acked_offset {
            let e = ends.entry((m.topic.clone(), m.partition)).or_default();
            *e = (*e).max(o + 1);
        }
    }
    let positions: Vec<((String, u32), i64)> = ends.into_iter().collect();
    coordinator
        .returned(CONSUMER, session, positions.clone())
        .expect("returned");
    coordinator.commit(CONSUMER).await.expect("commit");
    Commit {
        group: GROUP.to_string(),
        positions,
        at_op: fs.op_count(),
    }
}

fn layout_partitions() -> u32 {
    TopicLayout::new(1, 2).partitions()
}
