//! The workload a power-loss campaign cuts: produces with and without keys, small segments
//! that roll, retention deleting old segments, a topic created mid-run and consumer commits,
//! on the simulated file system. Every acknowledgement and commit is recorded with the op
//! number the file system had reached when it was observed: the sync it depended on came
//! before, so a cut at or after that op must keep it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use shardlog::consumer::offsets;
use shardlog::ring::TopicLayout;
use shardlog::shard::topics;
use shardlog::storage::fs::{replace_file, FileSystem};
use shardlog::storage::sim::{CutPolicy, SimFs};
use shardlog::storage::{Durability, LogConfig, PartitionLog, RecordBuf};

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

/// The size of a workload.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub seed: u64,
    pub frames: usize,
}

pub const GROUP: &str = "g";
pub const FIRST_TOPIC: &str = "orders";
pub const LATE_TOPIC: &str = "late";

/// A small deterministic generator for the workload's choices (SplitMix64).
pub struct Mix(u64);

impl Mix {
    pub fn new(seed: u64) -> Mix {
        Mix(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

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
        b.extend_from_slice(&mix.next().to_le_bytes());
    }
    b
}

/// The id a body claims (the checker then compares the whole body).
pub fn parse_body(body: &[u8]) -> Option<u64> {
    let id = body.get(..8)?;
    Some(u64::from_be_bytes(id.try_into().ok()?))
}

/// The log settings: 64 KiB segments, 256 KiB of retention per partition.
pub fn log_config() -> LogConfig {
    LogConfig {
        segment_size: 64 << 10,
        durability: Durability::Fsync,
        zstd_level: 1,
        retention_age: Some(Duration::from_secs(7 * 24 * 3600)),
        retention_bytes: Some(256 << 10),
        tail_bytes: 64 << 10,
        reclaim_step: LogConfig::RECLAIM_STEP,
    }
}

pub fn layout() -> TopicLayout {
    TopicLayout::new(1, 2)
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

/// Runs the workload on the partition logs directly (the storage layer, as the writer
/// drives it: one append per frame, made durable before it is acknowledged).
pub async fn run(fs: SimFs, data_dir: PathBuf, w: Workload) -> Run {
    let config = log_config();
    let layout = layout();
    let mut mix = Mix::new(w.seed);
    let mut messages: Vec<Message> = Vec::new();
    let mut commits = Vec::new();
    let mut logs: HashMap<(String, u32), PartitionLog<SimFs>> = HashMap::new();
    let mut topics_made = vec![FIRST_TOPIC.to_string()];
    let mut keyless = 0u32;
    let mut committed: BTreeMap<(String, u32), i64> = BTreeMap::new();
    for i in 0..w.frames {
        if i == 0 || i == w.frames / 3 {
            // What creating a topic leaves: its directory, durably named in the data dir.
            let name = if i == 0 { FIRST_TOPIC } else { LATE_TOPIC };
            fs.create_dir_all(&topics::topic_dir(&data_dir, name))
                .await
                .expect("topic dir");
            fs.sync_dir(&data_dir).await.expect("sync");
            if i > 0 {
                topics_made.push(LATE_TOPIC.to_string());
            }
        }
        let topic = topics_made[mix.below(topics_made.len() as u64) as usize].clone();
        let key = if mix.below(10) < 7 {
            format!("k{}", mix.below(5)).into_bytes()
        } else {
            Vec::new()
        };
        let j = if key.is_empty() {
            keyless += 1;
            keyless % layout.partitions()
        } else {
            layout.partition_of_key(&key)
        };
        let pk = (topic.clone(), j);
        if !logs.contains_key(&pk) {
            let dir = partition_dir(&data_dir, &topic, &layout, j);
            let (log, _) = PartitionLog::open_with(fs.clone(), &dir, config.clone())
                .await
                .expect("open a partition");
            logs.insert(pk.clone(), log);
        }
        let log = &logs[&pk];
        let count = 1 + mix.below(3) as usize;
        let mut batch = RecordBuf::default();
        let first_id = messages.len() as u64;
        for k in 0..count {
            batch.push(
                1_700_000_000_000_000 + i as i64,
                &body_for(first_id + k as u64, &key),
            );
            messages.push(Message {
                topic: topic.clone(),
                partition: j,
                key: key.clone(),
                acked_offset: None,
                acked_at: u64::MAX,
            });
        }
        let info = log.append(&batch).await.expect("append");
        let at = fs.op_count();
        for k in 0..count {
            let m = &mut messages[first_id as usize + k];
            m.acked_offset = Some(info.start_offset + k as i64);
            m.acked_at = at;
        }
        if i % 6 == 5 {
            for log in logs.values() {
                log.enforce_retention(std::time::SystemTime::now())
                    .await
                    .expect("retention");
            }
        }
        if i % 4 == 3 {
            // A consumer that has read everything acknowledged so far commits it.
            let mut positions = Vec::new();
            for (k, log) in &logs {
                let end = log.next_offset();
                if committed.get(k) != Some(&end) {
                    committed.insert(k.clone(), end);
                    positions.push((k.clone(), end));
                }
            }
            let dir = offsets::offsets_dir(&data_dir);
            fs.create_dir_all(&dir).await.expect("offsets dir");
            fs.sync_dir(&data_dir).await.expect("sync");
            let file = offsets::file_name(GROUP);
            replace_file(&fs, &dir, &file, &offsets::encode(GROUP, &committed))
                .await
                .expect("commit");
            commits.push(Commit {
                group: GROUP.to_string(),
                positions,
                at_op: fs.op_count(),
            });
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
