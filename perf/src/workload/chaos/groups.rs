//! Consumer groups of a chaos run: one `shardlog-client` [`Consumer`] per group (auto-commit:
//! each poll commits the one before), rejoining after every crash, and a [`GroupTracker`] that
//! checks what the group is delivered, as it arrives: per partition the offsets must continue
//! where the group got to (a gap is a lost record), and a record delivered again (after a
//! crash) must be at or after the group's last acknowledged commit and be the same record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shardlog_client::{Consumer, ConsumerConfig, Record};
use shardlog_wire::ring::TopicLayout;

use super::ledger::MessageId;

/// A record's id packed in a u64 (`producer << 56 | seq`), as the trackers store it.
pub fn pack(id: Option<MessageId>) -> u64 {
    id.map_or(UNREADABLE, |i| ((i.producer as u64) << 56) | i.seq)
}

/// A record whose body is not a chaos message.
pub const UNREADABLE: u64 = u64::MAX;
/// An offset the group never got (a gap).
const SKIPPED: u64 = u64::MAX - 1;

/// One group's view of each partition.
#[derive(Debug, Default, Clone)]
struct Delivered {
    /// Ids by offset, from 0: everything the group was delivered, in order.
    ids: Vec<u64>,
    /// Offsets below this were committed (the commit was acknowledged).
    committed: i64,
}

/// What one group was delivered, checked as it arrives.
#[derive(Debug)]
pub struct GroupTracker {
    pub name: String,
    seed: u64,
    partitions: Vec<Delivered>,
    /// (token, range index) → partition index.
    index_of: HashMap<(i64, u8), u32>,
    pub redeliveries: u64,
    pub violations: Vec<String>,
}

impl GroupTracker {
    pub fn new(name: &str, layout: &TopicLayout, seed: u64) -> GroupTracker {
        let n = layout.partitions();
        GroupTracker {
            name: name.to_string(),
            seed,
            partitions: vec![Delivered::default(); n as usize],
            index_of: (0..n)
                .map(|j| {
                    let p = layout.partition_id(j);
                    ((p.token, p.range_index), j)
                })
                .collect(),
            redeliveries: 0,
            violations: Vec::new(),
        }
    }

    /// Records a poll's records; returns, per partition, the position its commit will make.
    pub fn deliver(&mut self, records: &[Record], cycle: u32) -> Vec<(u32, i64)> {
        let mut through: HashMap<u32, i64> = HashMap::new();
        for r in records {
            let Some(&p) = self
                .index_of
                .get(&(r.partition.token, r.partition.range_index))
            else {
                self.violation(
                    cycle,
                    format!("a record of an unknown partition {:?}", r.partition),
                );
                continue;
            };
            let id = pack(MessageId::parse(&r.value));
            let d = &mut self.partitions[p as usize];
            let next = d.ids.len() as i64;
            let problem = if r.offset == next {
                d.ids.push(id);
                None
            } else if r.offset > next {
                let gap = format!("offsets {next}..{} were never delivered (a gap)", r.offset);
                d.ids.resize(r.offset as usize, SKIPPED);
                d.ids.push(id);
                Some(gap)
            } else if r.offset < d.committed {
                Some(format!(
                    "offset {} delivered again, below the acknowledged commit {}",
                    r.offset, d.committed
                ))
            } else {
                self.redeliveries += 1;
                let before = d.ids[r.offset as usize];
                (before != id)
                    .then(|| format!("offset {} delivered again with another record", r.offset))
            };
            if let Some(what) = problem {
                self.violation(cycle, format!("partition {p}: {what}"));
            }
            let e = through.entry(p).or_insert(0);
            *e = (*e).max(r.offset + 1);
        }
        through.into_iter().collect()
    }

    /// The positions of a poll were committed (the next poll, which commits first, succeeded).
    pub fn committed(&mut self, positions: &[(u32, i64)]) {
        for &(p, next) in positions {
            if let Some(d) = self.partitions.get_mut(p as usize) {
                d.committed = d.committed.max(next);
            }
        }
    }

    /// How far the group got in partition `p`.
    pub fn delivered_len(&self, p: u32) -> usize {
        self.partitions.get(p as usize).map_or(0, |d| d.ids.len())
    }

    /// The id the group was delivered at `offset` of `p`.
    pub fn delivered_at(&self, p: u32, offset: usize) -> Option<u64> {
        self.partitions.get(p as usize)?.ids.get(offset).copied()
    }

    pub fn violation(&mut self, cycle: u32, what: String) {
        self.violations.push(format!(
            "seed {} cycle {cycle}: group {}: {what}",
            self.seed, self.name
        ));
    }
}

pub type SharedTracker = Arc<Mutex<GroupTracker>>;

pub fn lock(t: &Mutex<GroupTracker>) -> MutexGuard<'_, GroupTracker> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// One member of `tracker`'s group, polling until `stop`; rejoins after every failure (the
/// broker was killed or is restarting).
pub async fn member(
    framed: String,
    topic: String,
    tracker: SharedTracker,
    cycle: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
) {
    let name = lock(&tracker).name.clone();
    let mut config = ConsumerConfig::new(framed, name.clone(), format!("{name}-1"), &[&topic]);
    config.max_wait = Duration::from_millis(100);
    config.request_timeout = Duration::from_secs(120);
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut consumer) = Consumer::join(config.clone()).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut pending: Vec<(u32, i64)> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let Ok(records) = consumer.poll().await else {
                break;
            };
            let mut t = lock(&tracker);
            t.committed(&pending);
            pending = t.deliver(&records, cycle.load(Ordering::SeqCst));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn layout() -> TopicLayout {
        TopicLayout {
            gen: 1,
            token_ranges: 1,
            ranges_per_token_range: 2,
        }
    }

    fn rec(offset: i64, seq: u64) -> Record {
        let id = MessageId {
            producer: 0,
            seq,
            key: 0,
        };
        Record {
            topic: "t".into(),
            partition: layout().partition_id(0),
            offset,
            timestamp_us: 0,
            value: Bytes::from(id.body(3)),
        }
    }

    #[test]
    fn in_order_delivery_and_redelivery_after_the_commit_pass() {
        let mut t = GroupTracker::new("g", &layout(), 7);
        let pos = t.deliver(&[rec(0, 10), rec(1, 11)], 1);
        assert_eq!(pos, vec![(0, 2)]);
        t.committed(&[(0, 1)]);
        t.deliver(&[rec(1, 11), rec(2, 12)], 1);
        assert_eq!(t.redeliveries, 1);
        assert!(t.violations.is_empty(), "{:?}", t.violations);
        assert_eq!(t.delivered_len(0), 3);
    }

    #[test]
    fn gaps_early_redeliveries_and_changed_records_are_violations() {
        let mut t = GroupTracker::new("g", &layout(), 7);
        t.deliver(&[rec(0, 10), rec(1, 11)], 1);
        t.committed(&[(0, 2)]);
        t.deliver(&[rec(1, 11)], 2);
        t.deliver(&[rec(4, 14)], 2);
        assert_eq!(t.violations.len(), 2, "{:?}", t.violations);
        assert!(t.violations[0].contains("seed 7 cycle 2"));
        assert!(t.violations[1].contains("gap"));
        t.committed(&[(0, 3)]);
        t.deliver(&[rec(4, 99)], 3);
        assert!(t.violations[2].contains("another record"));
    }
}
