//! Topics a broker holds from an earlier life of their name. A topic deleted while this
//! broker was down is gone from etcd (or was created again since, as a new key with a new
//! create revision), but its files are still in the data directory; served, they would hand
//! out records of the deleted topic as if they were the new one's. Every topic opened in
//! cluster mode records the etcd revision that created its layout (`cluster-revision` in its
//! `topic.toml`); at start, after registering and before any shard opens, the broker reads
//! every topic's create revision from etcd and buries the directories whose revision etcd no
//! longer has (the single-host delete's tombstone, removed in the background by shard 0).
//!
//! Topics without a recorded revision (made on a single host before the broker joined a
//! cluster, or by a version that did not record it) are left as they are.

use std::collections::BTreeMap;
use std::path::Path;

use etcd_client::{Client, GetOptions};

use super::keys::{Key, Keys};
use super::{Cluster, ClusterError};
use crate::shard::{tombstone, topics};
use crate::storage::fs::BrokerFs;

/// Every topic's name and the etcd revision that created its layout key.
async fn topic_revisions(
    mut client: Client,
    keys: Keys,
) -> Result<BTreeMap<String, i64>, ClusterError> {
    let prefix = keys.topic("");
    let answer = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    let mut out = BTreeMap::new();
    for kv in answer.kvs() {
        let Ok(key) = kv.key_str() else { continue };
        if let Some(Key::Topic(name)) = keys.parse(key) {
            out.insert(name, kv.create_revision());
        }
    }
    Ok(out)
}

/// The topics of `loaded` whose recorded revision etcd no longer has: (name, revision).
pub fn stale_topics(
    recorded: &std::collections::HashMap<String, i64>,
    in_etcd: &BTreeMap<String, i64>,
) -> Vec<(String, i64)> {
    let mut stale: Vec<(String, i64)> = recorded
        .iter()
        .filter(|(name, rev)| in_etcd.get(*name) != Some(*rev))
        .map(|(name, rev)| (name.clone(), *rev))
        .collect();
    stale.sort();
    stale
}

impl Cluster {
    /// Start-up, before the shards open: buries every topic directory of `data_dir` whose
    /// recorded create revision etcd no longer has. Returns the names buried.
    pub fn drop_stale_topics(
        &self,
        fs: &BrokerFs,
        data_dir: &Path,
    ) -> Result<Vec<String>, ClusterError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let work = topic_revisions(self.client.clone(), self.keys.clone());
        self.runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        let in_etcd = rx.recv().map_err(|_| ClusterError::Stopped)??;
        let (fs, dir) = (fs.clone(), data_dir.to_path_buf());
        crate::rt::block_on(async move {
            let loaded = topics::load_all(&fs, &dir)
                .await
                .map_err(ClusterError::StaleTopics)?;
            let mut buried = Vec::new();
            for (name, revision) in stale_topics(&loaded.cluster_revisions, &in_etcd) {
                tombstone::bury(&fs, &dir, &name)
                    .await
                    .map_err(ClusterError::StaleTopics)?;
                tracing::warn!(
                    topic = name,
                    revision,
                    now = ?in_etcd.get(&name),
                    "dropped this broker's files of a topic deleted from the cluster while it \
                     was down"
                );
                buried.push(name);
            }
            Ok(buried)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_is_stale_when_etcd_lacks_its_revision() {
        let recorded = [("kept", 5), ("deleted", 7), ("recreated", 9)]
            .into_iter()
            .map(|(n, r)| (n.to_string(), r))
            .collect();
        let in_etcd = [("kept", 5), ("recreated", 30), ("elsewhere", 2)]
            .into_iter()
            .map(|(n, r)| (n.to_string(), r))
            .collect();
        assert_eq!(
            stale_topics(&recorded, &in_etcd),
            vec![("deleted".to_string(), 7), ("recreated".to_string(), 9)]
        );
    }
}
