//! Topics on this broker in cluster mode: etcd holds every topic's layout, and a broker
//! opens a topic locally with exactly that layout the first time anything names it (a
//! STARTUP, a consumer REGISTER or poll, a REST request, an explicit create), so every
//! broker names and routes its partitions alike. Deleting a topic deletes its keys in etcd;
//! every broker then drops its local data ([`super::dropped`]).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::topics::{self, TopicFound, TopicRemoved};
use super::{Cluster, ClusterError};
use crate::shard::error::TopicError;
use crate::shard::{Shard, TopicState};

/// How long a topic found in etcd may take to show in this broker's watch of it.
const VISIBLE_WITHIN: Duration = Duration::from_secs(10);

impl Cluster {
    /// The topic `name` on this broker, opened with etcd's layout: found in etcd, or, with
    /// `create`, created there by compare-and-swap (the default layout over the brokers up).
    /// Not found in etcd (and not created) is [`TopicError::NotFound`].
    pub async fn open_topic(
        &self,
        shard: &Shard,
        name: &str,
        create: bool,
    ) -> Result<Rc<TopicState>, TopicError> {
        let found = if create {
            self.create_topic(name, None).await
        } else {
            self.find_topic(name).await
        };
        let found = found.map_err(|e| topic_error(name, e))?;
        self.open_found(shard, name, &found)
            .await
            .map_err(|e| topic_error(name, e))
    }

    /// Opens `name` on this broker with the layout etcd holds (`found`), once this broker's
    /// view has the topic and its partitions. A topic this broker already holds with another
    /// layout is refused.
    pub async fn open_found(
        &self,
        shard: &Shard,
        name: &str,
        found: &TopicFound,
    ) -> Result<Rc<TopicState>, ClusterError> {
        let layout = found.record.layout();
        let deadline = Instant::now() + VISIBLE_WITHIN;
        while !self.sees_topic(name, layout.partitions()) {
            if Instant::now() > deadline {
                return Err(ClusterError::NotVisible(name.to_string()));
            }
            crate::rt::sleep(Duration::from_millis(20)).await;
        }
        let topic = shard
            .create_topic_with_layout(name, layout, found.create_revision)
            .await
            .map_err(|e| ClusterError::Topic(Box::new(e)))?;
        if topic.layout != layout {
            return Err(ClusterError::LayoutDiffers(name.to_string()));
        }
        Ok(topic)
    }

    /// Deletes `name`'s keys in etcd, in one transaction (see [`topics::delete_topic`]).
    pub async fn delete_topic(&self, name: &str) -> Result<TopicRemoved, ClusterError> {
        let work = topics::delete_topic(self.client.clone(), self.keys.clone(), name.to_string());
        self.on_cluster_thread(work)
            .await
            .ok_or(ClusterError::Stopped)?
    }

    /// The receiver of deleted topics' names, for shard 0 (once).
    pub(super) fn take_deleted(&self) -> Option<futures_channel::mpsc::UnboundedReceiver<String>> {
        self.deleted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// A cluster failure naming `topic` as the data plane reports it: a topic etcd does not have
/// is not found, a local failure is itself, anything else carries its cause and class.
fn topic_error(topic: &str, e: ClusterError) -> TopicError {
    match e {
        ClusterError::TopicNotFound(_) => TopicError::NotFound {
            topic: topic.to_string(),
        },
        ClusterError::Topic(e) => *e,
        e => TopicError::Cluster {
            topic: topic.to_string(),
            source: Arc::new(e),
        },
    }
}
