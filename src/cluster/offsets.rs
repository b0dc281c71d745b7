//! Consumer groups' committed offsets in etcd (cluster mode), so they survive the loss of any
//! broker: `/{cluster}/offsets/{topic}/{group}` holds one group's offsets in one topic as JSON,
//! partition index → next offset to read (`{"0":120,"3":7}`). Keyed topic first so that a
//! topic's deletion removes every group's offsets in it in the same transaction.
//!
//! A save writes every topic of the group in one transaction, each key only while its topic
//! exists (a topic deleted meanwhile is left out rather than brought back). The coordinator
//! coalesces saves per group (`--offsets-interval`) and acknowledges a commit once etcd
//! has it.

use std::collections::BTreeMap;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};

use super::keys::Keys;
use super::{Cluster, ClusterError};

/// A group's committed offsets: (topic, partition index) → next offset to read.
pub type Committed = BTreeMap<(String, u32), i64>;

impl Cluster {
    /// Every committed offset of `group`, in every topic.
    pub async fn load_offsets(&self, group: &str) -> Result<Committed, ClusterError> {
        let work = load(self.client.clone(), self.keys.clone(), group.to_string());
        self.on_cluster_thread(work)
            .await
            .ok_or(ClusterError::Stopped)?
    }

    /// Replaces `group`'s committed offsets in the topics of `committed` (each topic's key is
    /// written whole).
    pub async fn save_offsets(
        &self,
        group: &str,
        committed: Committed,
    ) -> Result<(), ClusterError> {
        let work = save(
            self.client.clone(),
            self.keys.clone(),
            group.to_string(),
            committed,
        );
        self.on_cluster_thread(work)
            .await
            .ok_or(ClusterError::Stopped)?
    }

    /// The names of every group with committed offsets in etcd, in any topic, sorted.
    pub async fn offset_groups(&self) -> Result<Vec<String>, ClusterError> {
        let work = group_names(self.client.clone(), self.keys.clone());
        self.on_cluster_thread(work)
            .await
            .ok_or(ClusterError::Stopped)?
    }
}

async fn group_names(mut client: Client, keys: Keys) -> Result<Vec<String>, ClusterError> {
    let prefix = keys.offsets_all_prefix();
    let options = GetOptions::new().with_prefix().with_keys_only();
    let answer = client.get(prefix.clone(), Some(options)).await?;
    // `offsets/{topic}/{group}`: a topic name has no `/`.
    let names: std::collections::BTreeSet<String> = answer
        .kvs()
        .iter()
        .filter_map(|kv| kv.key_str().ok()?.strip_prefix(&prefix)?.split_once('/'))
        .map(|(_, group)| group.to_string())
        .collect();
    Ok(names.into_iter().collect())
}

/// One topic's offsets of a group as stored: partition index → next offset.
type TopicOffsets = BTreeMap<u32, i64>;

async fn load(mut client: Client, keys: Keys, group: String) -> Result<Committed, ClusterError> {
    let prefix = keys.offsets_all_prefix();
    let all = client
        .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
        .await?;
    let mut committed = Committed::new();
    for kv in all.kvs() {
        let Ok(key) = kv.key_str() else { continue };
        let Some((topic, g)) = key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        if g != group {
            continue;
        }
        let offsets: TopicOffsets =
            serde_json::from_slice(kv.value()).map_err(|e| ClusterError::BadRecord {
                key: key.to_string(),
                reason: e.to_string(),
            })?;
        committed.extend(
            offsets
                .into_iter()
                .map(|(j, o)| ((topic.to_string(), j), o)),
        );
    }
    Ok(committed)
}

async fn save(
    mut client: Client,
    keys: Keys,
    group: String,
    committed: Committed,
) -> Result<(), ClusterError> {
    let mut by_topic: BTreeMap<String, TopicOffsets> = BTreeMap::new();
    for ((topic, j), offset) in committed {
        by_topic.entry(topic).or_default().insert(j, offset);
    }
    // Twice at most: all topics, then (if one was deleted meanwhile) those still there.
    for _ in 0..2 {
        if by_topic.is_empty() {
            return Ok(());
        }
        let guards: Vec<Compare> = by_topic
            .keys()
            .map(|t| Compare::version(keys.topic(t), CompareOp::Greater, 0))
            .collect();
        let puts: Vec<TxnOp> = by_topic
            .iter()
            .map(|(t, o)| {
                let value = serde_json::to_vec(o).unwrap_or_default();
                TxnOp::put(keys.offsets(t, &group), value, None)
            })
            .collect();
        if client
            .txn(Txn::new().when(guards).and_then(puts))
            .await?
            .succeeded()
        {
            return Ok(());
        }
        let mut still = BTreeMap::new();
        for (t, o) in by_topic {
            if client.get(keys.topic(&t), None).await?.count() > 0 {
                still.insert(t, o);
            }
        }
        by_topic = still;
    }
    Err(ClusterError::Raced(format!("offsets of group {group}")))
}
