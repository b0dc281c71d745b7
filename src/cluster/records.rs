//! The values kept in etcd (JSON), and the plan of a new topic: its layout and where its
//! partitions go. Pure: no etcd here, so the plan is tested on its own.

use serde::{Deserialize, Serialize};

use crate::wire::ring::TopicLayout;

/// A broker's registration: what others need to reach it, and how many shards it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    pub id: u32,
    /// `host:port` of its framed port.
    pub framed: String,
    /// `host:port` of its HTTP port.
    pub http: String,
    pub shards: u32,
}

/// Who the controller is. Its epoch is the key's create revision, which only grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerRecord {
    pub broker: u32,
}

/// A topic's layout, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// The layout's generation (1; re-partitioning would make a new one).
    pub generation: u32,
    pub token_ranges: u32,
    pub ranges_per_token_range: u32,
    pub replication_factor: u32,
}

impl TopicRecord {
    /// The layout keys are routed by (the same math as a single host's).
    pub fn layout(&self) -> TopicLayout {
        TopicLayout {
            gen: self.generation,
            token_ranges: self.token_ranges,
            ranges_per_token_range: self.ranges_per_token_range,
        }
    }

    pub fn partitions(&self) -> u32 {
        self.layout().partitions()
    }
}

/// One partition's replicas and leadership. The leader epoch only grows: every change of
/// leader (or of the replicas) writes epoch + 1, guarded by the revision it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// The brokers holding a copy, the preferred leader first.
    pub replicas: Vec<u32>,
    /// The broker that serves the partition at `leader_epoch`; none: unavailable.
    pub leader: Option<u32>,
    pub leader_epoch: u64,
}

/// Most partitions per shard, as on a single host.
const MAX_PARTITIONS_PER_SHARD: u32 = 256;

/// Why a topic cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no broker of the cluster is up")]
    NoBrokers,
    #[error("{partitions} partitions: {why}")]
    BadPartitions { partitions: u32, why: String },
}

/// The layout and partition records of a new topic over the brokers `live` (any order):
/// `partitions` if given, else one token range per shard of the cluster cut into
/// `ranges_per_shard`, counting the shards of every broker in `members` (every broker that
/// ever registered: the count must not depend on which brokers happen to be up, e.g. while
/// they register again after an etcd restart) and of `live`. Token range `t` goes to the
/// `t`-th shard of the live brokers in id order (each holding as many consecutive token
/// ranges as it has shards), and a partition's further replicas to the next brokers by id.
pub fn plan_topic(
    live: &[BrokerRecord],
    members: &[BrokerRecord],
    partitions: Option<u32>,
    ranges_per_shard: u32,
    replication_factor: u32,
) -> Result<(TopicRecord, Vec<PartitionRecord>), PlanError> {
    let mut brokers: Vec<&BrokerRecord> = live.iter().filter(|b| b.shards > 0).collect();
    brokers.sort_by_key(|b| b.id);
    brokers.dedup_by_key(|b| b.id);
    if brokers.is_empty() {
        return Err(PlanError::NoBrokers);
    }
    let mut all: std::collections::BTreeMap<u32, u32> =
        members.iter().map(|b| (b.id, b.shards)).collect();
    all.extend(brokers.iter().map(|b| (b.id, b.shards)));
    let shards: u32 = all.values().sum::<u32>().max(1);
    let bad = |n: u32, why: String| PlanError::BadPartitions { partitions: n, why };
    let layout = match partitions {
        None => TopicLayout::new(shards, ranges_per_shard),
        Some(0) => return Err(bad(0, "a topic has at least one partition".into())),
        Some(n) if n > shards.saturating_mul(MAX_PARTITIONS_PER_SHARD) => {
            return Err(bad(n, "at most 256 per shard of the cluster".into()))
        }
        Some(n) if n.is_multiple_of(shards) => TopicLayout::new(shards, n / shards),
        Some(n) => TopicLayout {
            gen: 1,
            token_ranges: n,
            ranges_per_token_range: 1,
        },
    };
    let rf = replication_factor.clamp(1, brokers.len() as u32);
    let records = (0..layout.partitions())
        .map(|j| place(&brokers, &layout, rf, j))
        .collect();
    let topic = TopicRecord {
        generation: layout.gen,
        token_ranges: layout.token_ranges,
        ranges_per_token_range: layout.ranges_per_token_range,
        replication_factor: rf,
    };
    Ok((topic, records))
}

/// Records for partitions `missing` of an existing topic whose creation stopped half way (the
/// creating broker died between its transactions), placed over the brokers `live` now as a
/// new topic's would be. No broker has served them: a topic is opened only once all its
/// partition records are there.
pub fn plan_missing(
    live: &[BrokerRecord],
    topic: &TopicRecord,
    missing: &[u32],
) -> Result<Vec<(u32, PartitionRecord)>, PlanError> {
    let mut brokers: Vec<&BrokerRecord> = live.iter().filter(|b| b.shards > 0).collect();
    brokers.sort_by_key(|b| b.id);
    brokers.dedup_by_key(|b| b.id);
    if brokers.is_empty() {
        return Err(PlanError::NoBrokers);
    }
    let layout = topic.layout();
    let rf = topic.replication_factor.clamp(1, brokers.len() as u32);
    Ok(missing
        .iter()
        .map(|&j| (j, place(&brokers, &layout, rf, j)))
        .collect())
}

/// Partition `j`'s record: token range `t` goes to the `t`-th shard of `brokers` (sorted by
/// id, each holding as many consecutive slots as it has shards), further replicas to the next
/// brokers by id; leader epoch 1.
fn place(brokers: &[&BrokerRecord], layout: &TopicLayout, rf: u32, j: u32) -> PartitionRecord {
    let slots = brokers
        .iter()
        .map(|b| b.shards as usize)
        .sum::<usize>()
        .max(1);
    let slot = (j / layout.ranges_per_token_range) as usize % slots;
    // The broker holding slot `slot`.
    let mut first = 0;
    let mut seen = 0;
    for (i, b) in brokers.iter().enumerate() {
        seen += b.shards as usize;
        if slot < seen {
            first = i;
            break;
        }
    }
    let replicas: Vec<u32> = (0..rf as usize)
        .map(|k| brokers[(first + k) % brokers.len()].id)
        .collect();
    PartitionRecord {
        leader: replicas.first().copied(),
        replicas,
        leader_epoch: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: u32, shards: u32) -> BrokerRecord {
        BrokerRecord {
            id,
            framed: format!("b{id}:9254"),
            http: format!("b{id}:9252"),
            shards,
        }
    }

    #[test]
    fn implicit_topics_spread_token_ranges_over_every_shard() {
        let live = [broker(7, 1), broker(2, 2), broker(5, 1)];
        let (topic, parts) = plan_topic(&live, &[], None, 2, 1).unwrap();
        assert_eq!((topic.token_ranges, topic.ranges_per_token_range), (4, 2));
        let leaders: Vec<u32> = parts.iter().map(|p| p.leader.unwrap()).collect();
        assert_eq!(leaders, [2, 2, 2, 2, 5, 5, 7, 7]);
        assert!(parts
            .iter()
            .all(|p| p.leader_epoch == 1 && p.replicas.len() == 1));
    }

    #[test]
    fn explicit_counts_and_replicas() {
        let live = [broker(1, 1), broker(2, 1), broker(3, 1)];
        let (topic, parts) = plan_topic(&live, &[], Some(5), 4, 2).unwrap();
        assert_eq!(topic.partitions(), 5);
        assert_eq!(topic.replication_factor, 2);
        assert_eq!(parts[0].replicas, [1, 2]);
        assert_eq!(parts[2].replicas, [3, 1]);
        assert_eq!(
            plan_topic(&live, &[], Some(6), 4, 1)
                .unwrap()
                .0
                .token_ranges,
            3
        );
        assert_eq!(
            plan_topic(&live, &[], Some(3), 4, 9)
                .unwrap()
                .0
                .replication_factor,
            3
        );
        assert!(plan_topic(&live, &[], Some(0), 4, 1).is_err());
        // Past the 128 operations of one etcd transaction: created in several (topics.rs).
        assert_eq!(
            plan_topic(&live, &[], Some(600), 4, 1).unwrap().1.len(),
            600
        );
        assert!(plan_topic(&live, &[], Some(3 * 256 + 1), 4, 1).is_err());
        assert_eq!(plan_topic(&[], &[], None, 4, 1), Err(PlanError::NoBrokers));
    }

    #[test]
    fn missing_partitions_are_placed_as_a_new_topics_would_be() {
        let live = [broker(7, 1), broker(2, 2), broker(5, 1)];
        let (topic, parts) = plan_topic(&live, &[], None, 2, 1).unwrap();
        let missing = plan_missing(&live, &topic, &[1, 6, 7]).unwrap();
        for (j, record) in missing {
            assert_eq!(record, parts[j as usize], "partition {j}");
        }
        assert_eq!(plan_missing(&[], &topic, &[0]), Err(PlanError::NoBrokers));
    }

    #[test]
    fn the_default_count_counts_brokers_that_are_down_too() {
        let members = [broker(1, 1), broker(2, 1), broker(3, 1)];
        // Only broker 3 is up (the others registering again): still 3 x 4 partitions, all on it.
        let (topic, parts) = plan_topic(&[broker(3, 1)], &members, None, 4, 1).unwrap();
        assert_eq!(topic.partitions(), 12);
        assert!(parts.iter().all(|p| p.leader == Some(3)));
        // A broker that registered since counts whether or not it is a member yet.
        let (topic, _) = plan_topic(&[broker(4, 2)], &members, None, 4, 1).unwrap();
        assert_eq!(topic.partitions(), 20);
    }
}
