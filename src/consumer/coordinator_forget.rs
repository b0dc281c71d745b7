//! The coordinator's part of deleting a topic: every group's committed offsets for it,
//! in memory and in the offsets files, and its partitions in every assignment. And at start,
//! the offsets of topics that no longer exist (a deletion a crash cut short after the topic's
//! directory was renamed away, or a topic removed by hand) are dropped the same way.

use std::collections::HashMap;
use std::sync::Arc;

use super::Coordinator;
use crate::consumer::offsets::{self, GroupOffsets};
use crate::consumer::ConsumerError;
use crate::shard::Shard;
use crate::storage::StorageError;

impl Coordinator {
    /// Forgets `topic` in every group, durably; returns the groups whose committed offsets
    /// changed. Groups known only from their files are read back first, so the one place
    /// that rewrites offsets files does it.
    pub async fn forget_topic(&self, topic: &str) -> Result<Vec<String>, ConsumerError> {
        // Cluster mode: etcd dropped every group's offsets in the topic with the topic.
        let on_disk = match self.etcd_interval {
            Some(_) => HashMap::new(),
            None => offsets::load_all(&self.fs, &self.dir)
                .await
                .map_err(|e| ConsumerError::Offsets(Arc::new(e)))?,
        };
        for (group, committed) in on_disk {
            let holds = committed.keys().any(|(t, _)| t == topic);
            if holds && !self.state.borrow().has_group(&group) {
                self.state.borrow_mut().adopt(&group, committed);
            }
        }
        let changed = self.state.borrow_mut().forget_topic(topic);
        let mut first_error = None;
        for group in &changed {
            if let Err(e) = self.persist_if(true, group).await {
                first_error.get_or_insert(e);
            }
        }
        for group in &changed {
            self.retire(group);
        }
        tracing::info!(topic, groups = ?changed, "deleted topic's committed offsets dropped");
        match first_error {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }
}

/// At start, before the coordinator serves: drops from `loaded` the offsets of topics the
/// shard does not know, and saves the groups that changed.
pub(super) async fn drop_unknown_topics(
    shard: &Shard,
    dir: &std::path::Path,
    loaded: &mut HashMap<String, GroupOffsets>,
) -> Result<(), StorageError> {
    for (group, committed) in loaded.iter_mut() {
        let before = committed.len();
        committed.retain(|(t, _), _| shard.known_topic(t).is_some());
        if committed.len() != before {
            tracing::info!(
                group,
                dropped = before - committed.len(),
                "dropping committed offsets of topics that no longer exist"
            );
            offsets::save(&shard.fs, dir, group, committed).await?;
        }
    }
    loaded.retain(|_, committed| !committed.is_empty());
    Ok(())
}
