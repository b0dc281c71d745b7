//! Spreading a group's partitions over its live consumers. Pure and deterministic, so every
//! rebalance of the same membership gives the same answer.
//!
//! The rule: list every partition of the topics the group's consumers subscribe to, sorted by
//! (topic, partition index); partition number `i` of that list goes to the consumer at
//! position `i mod n` among the `n` consumers (sorted by id) that subscribe to its topic. When
//! every consumer subscribes to the same topics — the usual case — that is exactly "partition
//! `i` to consumer `i mod n`", so counts differ by at most one, and partitions of one topic
//! alternate between consumers (and so between shards) rather than coming in blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A partition of a topic: (topic, partition index in the topic's layout).
pub type PartitionKey = (String, u32);

/// Work done by rebalancing, counted so that tests and metrics can tell what an operation
/// cost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Partitions given an owner: moved from another member, or free (new, or left by the
    /// topic's last subscriber) and now taken.
    pub moves: u64,
    /// Steps taken: members and partitions visited.
    pub steps: u64,
}

/// Assigns partitions. `members` maps each consumer id to its subscribed topics;
/// `partitions` gives each topic's partition count. Every consumer appears in the result,
/// possibly with nothing assigned.
pub fn assign(
    members: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, u32>,
) -> HashMap<String, Vec<PartitionKey>> {
    let mut out: HashMap<String, Vec<PartitionKey>> =
        members.keys().map(|m| (m.clone(), Vec::new())).collect();
    // Each topic's subscribers, sorted by id (members iterate in id order): one pass over
    // the subscriptions, not one over the members per topic.
    let mut by_topic: HashMap<&str, Vec<&String>> = HashMap::new();
    for (id, topics) in members {
        for t in topics {
            by_topic.entry(t.as_str()).or_default().push(id);
        }
    }
    let mut i = 0usize;
    for (topic, &count) in partitions {
        let Some(subscribers) = by_topic.get(topic.as_str()) else {
            continue;
        };
        for j in 0..count {
            let owner = subscribers[i % subscribers.len()];
            out.entry(owner.clone())
                .or_default()
                .push((topic.clone(), j));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        list.iter()
            .map(|(id, ts)| (id.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn parts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn even_round_robin_by_sorted_id() {
        let m = members(&[("c", &["t"]), ("a", &["t"]), ("b", &["t"])]);
        let a = assign(&m, &parts(&[("t", 8)]));
        let js = |id: &str| a[id].iter().map(|(_, j)| *j).collect::<Vec<_>>();
        assert_eq!(js("a"), vec![0, 3, 6]);
        assert_eq!(js("b"), vec![1, 4, 7]);
        assert_eq!(js("c"), vec![2, 5]);
    }

    #[test]
    fn every_partition_exactly_once_and_balanced() {
        for n in 1..6 {
            let ids: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            let m: BTreeMap<_, _> = ids
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        ["x", "y"].iter().map(|t| t.to_string()).collect(),
                    )
                })
                .collect();
            let a = assign(&m, &parts(&[("x", 8), ("y", 3)]));
            let mut all: Vec<PartitionKey> = a.values().flatten().cloned().collect();
            all.sort();
            assert_eq!(all.len(), 11);
            all.dedup();
            assert_eq!(all.len(), 11);
            let sizes: Vec<usize> = a.values().map(Vec::len).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn topics_go_only_to_their_subscribers() {
        let m = members(&[("a", &["x"]), ("b", &["x", "y"])]);
        let a = assign(&m, &parts(&[("x", 2), ("y", 2), ("z", 4)]));
        assert!(a["a"].iter().all(|(t, _)| t == "x"));
        assert_eq!(a["b"].iter().filter(|(t, _)| t == "y").count(), 2);
        assert!(a.values().flatten().all(|(t, _)| t != "z"));
        assert!(assign(&BTreeMap::new(), &parts(&[("x", 2)])).is_empty());
    }

    #[test]
    fn deterministic() {
        let m = members(&[("b", &["t"]), ("a", &["t"])]);
        let p = parts(&[("t", 5)]);
        assert_eq!(assign(&m, &p), assign(&m, &p));
    }
}
