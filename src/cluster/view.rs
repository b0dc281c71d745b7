//! What this broker knows of the cluster: every key under the cluster's prefix, read once
//! and then followed by a watch from the revision read, so the view is always etcd's state at
//! some revision (`revision`). A watch that breaks or falls behind a compaction starts over
//! with a fresh read.
//!
//! A topic whose layout key goes away (deleted through any broker) is announced on a channel
//! ([`DeletedTopics`]), so shard 0 drops the topic's local data; a fresh read that no longer
//! has a topic the previous view had announces it too.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use serde::de::DeserializeOwned;

use super::keys::{Key, Keys};
use super::leadership::Leadership;
use super::records::{BrokerRecord, ControllerRecord, PartitionRecord, TopicRecord};

/// The cluster as of etcd revision `revision`.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    pub revision: i64,
    /// Every broker that has registered, by id (its last registration).
    pub known: BTreeMap<u32, BrokerRecord>,
    /// The brokers whose lease holds, by id.
    pub live: BTreeMap<u32, BrokerRecord>,
    /// The controller's broker id and epoch (its key's create revision).
    pub controller: Option<(u32, i64)>,
    pub topics: BTreeMap<String, TopicRecord>,
    /// By topic, then partition index: the record and the revision that last wrote it (what
    /// a change must be guarded by).
    pub partitions: BTreeMap<String, BTreeMap<u32, (PartitionRecord, i64)>>,
    /// The recent sets of live brokers, kept across fresh reads (which broker coordinated a
    /// group at any moment since a point: [`LiveLog`]).
    pub live_log: LiveLog,
}

/// The last [`LiveLog::KEPT`] sets of live brokers this view has had, numbered: a consumer
/// group coordinator asks it whether a group it holds was another broker's at any moment
/// since it last looked (then its state there may be stale, and it drops it).
#[derive(Debug, Clone, Default)]
pub struct LiveLog {
    generation: u64,
    recent: VecDeque<(u64, Vec<u32>)>,
}

impl LiveLog {
    const KEPT: usize = 32;

    /// Records the live brokers now, if they differ from the last set recorded.
    pub fn observe(&mut self, live: impl Iterator<Item = u32>) {
        let ids: Vec<u32> = live.collect();
        if self.recent.back().map(|(_, l)| l) == Some(&ids) {
            return;
        }
        self.generation += 1;
        self.recent.push_back((self.generation, ids));
        if self.recent.len() > Self::KEPT {
            self.recent.pop_front();
        }
    }

    /// The number of the latest set.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every set recorded after generation `after` (the latest included), or `None` if some
    /// of them are no longer kept.
    pub fn since(&self, after: u64) -> Option<Vec<&[u32]>> {
        match self.recent.front() {
            Some(&(oldest, _)) if oldest > after.saturating_add(1) => None,
            _ => Some(
                self.recent
                    .iter()
                    .filter(|(g, _)| *g > after)
                    .map(|(_, l)| &l[..])
                    .collect(),
            ),
        }
    }
}

impl ClusterState {
    fn put(&mut self, keys: &Keys, key: &str, value: &[u8], created: i64, modified: i64) {
        let Some(which) = keys.parse(key) else {
            return;
        };
        match which {
            Key::Live(id) => {
                if let Some(r) = decode::<BrokerRecord>(key, value) {
                    self.live.insert(id, r);
                }
            }
            Key::Known(id) => {
                if let Some(r) = decode::<BrokerRecord>(key, value) {
                    self.known.insert(id, r);
                }
            }
            Key::Controller => {
                self.controller =
                    decode::<ControllerRecord>(key, value).map(|c| (c.broker, created))
            }
            Key::Topic(name) => {
                if let Some(r) = decode::<TopicRecord>(key, value) {
                    self.topics.insert(name, r);
                }
            }
            Key::Partition(topic, j) => {
                if let Some(r) = decode::<PartitionRecord>(key, value) {
                    self.partitions
                        .entry(topic)
                        .or_default()
                        .insert(j, (r, modified));
                }
            }
        }
    }

    fn delete(&mut self, keys: &Keys, key: &str) {
        match keys.parse(key) {
            Some(Key::Live(id)) => {
                self.live.remove(&id);
            }
            Some(Key::Known(id)) => {
                self.known.remove(&id);
            }
            Some(Key::Controller) => self.controller = None,
            Some(Key::Topic(name)) => {
                self.topics.remove(&name);
            }
            Some(Key::Partition(topic, j)) => {
                if let Some(ps) = self.partitions.get_mut(&topic) {
                    ps.remove(&j);
                }
            }
            None => {}
        }
    }

    /// Whether broker `id` leads partition `j` of `topic` in this view.
    pub fn leader_of(&self, topic: &str, j: u32) -> Option<(u32, u64)> {
        let (record, _) = self.partitions.get(topic)?.get(&j)?;
        record.leader.map(|l| (l, record.leader_epoch))
    }
}

/// A value of the cluster's keys; one that does not parse (written by something else) is
/// skipped with a warning rather than trusted.
fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key, "ignoring an etcd value that does not parse: {e}");
            None
        }
    }
}

/// The shared view: written by the watch task, read by anyone.
pub type SharedState = Arc<RwLock<ClusterState>>;

/// Where the names of topics deleted from etcd go (to shard 0, which drops their data).
pub type DeletedTopics = futures_channel::mpsc::UnboundedSender<String>;

/// Follows the cluster's keys into `state`, forever, bringing the partition fences along
/// under the same lock.
pub async fn follow(
    mut client: Client,
    keys: Keys,
    state: SharedState,
    fences: Arc<Leadership>,
    deleted: DeletedTopics,
) {
    loop {
        if let Err(e) = read_and_watch(&mut client, &keys, &state, &fences, &deleted).await {
            tracing::warn!("etcd watch: {e}; reading the cluster again");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reads everything, then applies the watch's events until it ends.
async fn read_and_watch(
    client: &mut Client,
    keys: &Keys,
    state: &SharedState,
    fences: &Leadership,
    deleted: &DeletedTopics,
) -> Result<(), etcd_client::Error> {
    let prefix = keys.prefix().to_string();
    let all = client
        .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = all.header().map_or(0, |h| h.revision());
    let mut fresh = ClusterState {
        revision,
        ..ClusterState::default()
    };
    for kv in all.kvs() {
        if let Ok(key) = kv.key_str() {
            fresh.put(
                keys,
                key,
                kv.value(),
                kv.create_revision(),
                kv.mod_revision(),
            );
        }
    }
    let gone: Vec<String> = {
        let mut s = state.write().unwrap_or_else(|e| e.into_inner());
        let gone = s
            .topics
            .keys()
            .filter(|t| !fresh.topics.contains_key(*t))
            .cloned()
            .collect();
        fresh.live_log = std::mem::take(&mut s.live_log);
        fresh.live_log.observe(fresh.live.keys().copied());
        *s = fresh;
        fences.refresh(&s);
        gone
    };
    for topic in gone {
        let _ = deleted.unbounded_send(topic);
    }
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = client.watch(prefix, Some(options)).await?;
    while let Some(batch) = stream.message().await? {
        if batch.canceled() || batch.compact_revision() > 0 {
            return Ok(());
        }
        let mut s = state.write().unwrap_or_else(|e| e.into_inner());
        for event in batch.events() {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            match event.event_type() {
                EventType::Put => s.put(
                    keys,
                    key,
                    kv.value(),
                    kv.create_revision(),
                    kv.mod_revision(),
                ),
                EventType::Delete => {
                    if let Some(Key::Topic(topic)) = keys.parse(key) {
                        let _ = deleted.unbounded_send(topic);
                    }
                    s.delete(keys, key)
                }
            }
        }
        if let Some(h) = batch.header() {
            s.revision = s.revision.max(h.revision());
        }
        let ClusterState { live, live_log, .. } = &mut *s;
        live_log.observe(live.keys().copied());
        fences.refresh(&s);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_log_keeps_recent_changes_and_says_when_it_lost_some() {
        let mut log = LiveLog::default();
        assert_eq!(log.since(0), Some(vec![]));
        log.observe([1, 2, 3].into_iter());
        log.observe([1, 2, 3].into_iter());
        assert_eq!(log.generation(), 1);
        log.observe([1, 2].into_iter());
        assert_eq!(log.since(0), Some(vec![&[1, 2, 3][..], &[1, 2][..]]));
        assert_eq!(log.since(1), Some(vec![&[1, 2][..]]));
        assert_eq!(log.since(2), Some(vec![]));
        for i in 0..40 {
            log.observe([i].into_iter());
        }
        assert_eq!(log.since(1), None);
        assert_eq!(log.since(log.generation() - 1).map(|v| v.len()), Some(1));
    }

    #[test]
    fn puts_and_deletes_make_the_state() {
        let keys = Keys::new("c");
        let mut s = ClusterState::default();
        let b = br#"{"id":1,"framed":"h:1","http":"h:2","shards":1}"#;
        s.put(&keys, &keys.live(1), b, 5, 5);
        s.put(&keys, &keys.known(1), b, 5, 5);
        s.put(&keys, &keys.controller(), br#"{"broker":1}"#, 6, 6);
        s.put(
            &keys,
            &keys.partition("t", 0),
            br#"{"replicas":[1],"leader":1,"leader_epoch":3}"#,
            7,
            9,
        );
        s.put(&keys, &keys.partition("t", 1), b"not json", 7, 7);
        assert_eq!(s.controller, Some((1, 6)));
        assert_eq!(s.leader_of("t", 0), Some((1, 3)));
        assert_eq!(s.leader_of("t", 1), None);
        s.delete(&keys, &keys.live(1));
        s.delete(&keys, &keys.controller());
        assert!(s.live.is_empty() && s.controller.is_none());
        assert_eq!(s.known.len(), 1);
    }
}
