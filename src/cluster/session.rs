//! A framed connection's topic in cluster mode (on the shards' side): the topic is found or
//! created in etcd first and then opened here with etcd's layout, so every broker names and
//! routes its partitions alike; a keyless connection writes to a partition this broker leads.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{installed, Cluster, ClusterError};
use crate::error::{Classify, ErrorClass};
use crate::ring::ShardOwnership;
use crate::shard::error::TopicError;
use crate::shard::{Shard, TopicState};

/// Why a connection's topic could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(
        "topic '{0}' exists on this broker with another layout than the cluster's (it was \
         created before the broker joined the cluster)"
    )]
    LayoutDiffers(String),
    #[error("topic '{0}' is not in this broker's view of the cluster yet")]
    NotVisible(String),
}

impl Classify for SessionError {
    fn class(&self) -> ErrorClass {
        match self {
            SessionError::Cluster(e) => e.class(),
            SessionError::Topic(e) => e.class(),
            SessionError::LayoutDiffers(_) => ErrorClass::Invalid,
            SessionError::NotVisible(_) => ErrorClass::Unavailable,
        }
    }
}

/// How long a new topic may take to show in this broker's watch of etcd.
const VISIBLE_WITHIN: Duration = Duration::from_secs(10);

/// The topic a STARTUP names and the partition its keyless frames go to: on a single host the
/// shard's own choice; in cluster mode etcd's layout and a partition this broker leads.
pub async fn open(shard: &Rc<Shard>, name: &str) -> Result<(Rc<TopicState>, u32), SessionError> {
    let Some(cluster) = installed() else {
        let topic = shard.topic(name).await?;
        let keyless = shard.keyless_partition(&topic);
        return Ok((topic, keyless));
    };
    let found = if shard.config.auto_create_topics {
        cluster.create_topic(name, None).await?
    } else {
        cluster.find_topic(name).await?
    };
    let layout = found.record.layout();
    let deadline = Instant::now() + VISIBLE_WITHIN;
    while !cluster.sees_topic(name, layout.partitions()) {
        if Instant::now() > deadline {
            return Err(SessionError::NotVisible(name.to_string()));
        }
        crate::rt::sleep(Duration::from_millis(20)).await;
    }
    let topic = shard
        .create_topic_with_layout(name, layout, found.create_revision)
        .await?;
    if topic.layout != layout {
        return Err(SessionError::LayoutDiffers(name.to_string()));
    }
    let keyless = keyless_partition(cluster, shard, &topic);
    Ok((topic, keyless))
}

/// A partition this broker leads, preferably one this shard owns (no hop at all), taken in
/// turn so connections spread; if it leads none, the shard's own choice (forwarded).
fn keyless_partition(cluster: &Cluster, shard: &Shard, topic: &TopicState) -> u32 {
    static CURSOR: AtomicUsize = AtomicUsize::new(0);
    let led: Vec<u32> = (0..topic.layout.partitions())
        .filter(|&j| cluster.leads(&topic.name, j))
        .collect();
    let here: Vec<u32> = led
        .iter()
        .copied()
        .filter(|&j| topic.layout.owner(j, shard.shards) == shard.id)
        .collect();
    let pick = if here.is_empty() { &led } else { &here };
    match pick.len() {
        0 => shard.keyless_partition(topic),
        n => pick[CURSOR.fetch_add(1, Ordering::Relaxed) % n],
    }
}
