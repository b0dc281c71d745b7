//! What the admin API reports about topics: the list of them, from shard 0's catalog (the one
//! that decides what exists, so a topic another shard has not heard of yet is still listed),
//! and one topic's partitions with their offsets and bytes, each from its owning shard.
//!
//! Describing never creates a topic. It does open the partitions it reports (recovering them if
//! they were never opened since start): the offsets of a log are known only once it is open,
//! and an idle log is closed again when the shard's open files exceed `--max-open-files`.

use std::rc::Rc;

use futures_util::future::join_all;

use super::error::{DescribeError, RouteError, TopicError};
use super::Shard;
use crate::ring::{ShardOwnership, TopicLayout};

/// The shard whose catalog lists every topic.
const CATALOG: usize = 0;

/// One partition as its owning shard reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition's index `j` in the topic's layout.
    pub partition: u32,
    /// The shard that owns it now, `⌊j·shards/P⌋`.
    pub shard: usize,
    /// The first offset still available (after retention).
    pub first_offset: i64,
    /// The offset the next message will get.
    pub next_offset: i64,
    /// Bytes of its segments and indexes on disk.
    pub bytes: u64,
}

impl Shard {
    /// Every topic of the broker with its layout, sorted by name, as shard 0 knows them.
    pub async fn list_topics(self: &Rc<Self>) -> Result<Vec<(String, TopicLayout)>, RouteError> {
        self.submit_to(CATALOG, |s| async move {
            let mut all: Vec<(String, TopicLayout)> = s
                .topic_states()
                .iter()
                .map(|t| (t.name.clone(), t.layout))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        })
        .await
    }

    /// The layout (and incarnation) of an existing topic, asking shard 0 when this shard does
    /// not know it; [`TopicError::NotFound`] (whatever `--auto-create-topics` says) when it
    /// does not exist.
    pub async fn existing_layout(
        self: &Rc<Self>,
        name: &str,
    ) -> Result<(TopicLayout, u64), DescribeError> {
        if let Some(t) = self.known_topic(name) {
            return Ok((t.layout, t.incarnation));
        }
        let topic = name.to_string();
        self.submit_to(CATALOG, move |s| async move {
            s.known_topic(&topic).map(|t| (t.layout, t.incarnation))
        })
        .await?
        .ok_or_else(|| {
            DescribeError::Topic(TopicError::NotFound {
                topic: name.to_string(),
            })
        })
    }

    /// The topic's layout and every partition's offsets and bytes, in partition order. Each
    /// shard owning partitions is asked once, for all of its partitions.
    pub async fn describe_topic(
        self: &Rc<Self>,
        name: &str,
    ) -> Result<(TopicLayout, Vec<PartitionInfo>), DescribeError> {
        let (layout, incarnation) = self.existing_layout(name).await?;
        let owners = (0..self.shards).filter(|&s| layout.owned_by(s, self.shards).next().is_some());
        let asks = owners.map(|owner| {
            let topic = name.to_string();
            async move {
                self.submit_to(owner, move |s| async move {
                    s.local_partitions(&topic, layout, incarnation).await
                })
                .await?
            }
        });
        let mut all = Vec::new();
        for part in join_all(asks).await {
            all.extend(part?);
        }
        all.sort_by_key(|p| p.partition);
        Ok((layout, all))
    }

    /// The partitions of the topic this shard owns, opened to read their offsets.
    async fn local_partitions(
        self: &Rc<Self>,
        name: &str,
        layout: TopicLayout,
        incarnation: u64,
    ) -> Result<Vec<PartitionInfo>, DescribeError> {
        let topic = self.install_topic(name, layout, incarnation)?;
        let opens = topic.owned().map(|w| async move {
            w.check_not_deleted()?;
            let log = w.open().await.map_err(DescribeError::Storage)?;
            Ok::<_, DescribeError>(PartitionInfo {
                partition: w.partition,
                shard: self.id,
                first_offset: log.start_offset(),
                next_offset: log.next_offset(),
                bytes: log.disk_bytes(),
            })
        });
        join_all(opens).await.into_iter().collect()
    }
}
