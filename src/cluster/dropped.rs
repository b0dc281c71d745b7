//! Shard 0's part of a topic deleted from etcd (through any broker): the watch announces the
//! name, and shard 0 deletes the topic here the way a single host does
//! (`consumer::topic_delete`: fence every shard, bury the directory, drop the groups' local
//! state). A topic this broker never opened is nothing to drop.

use std::rc::Rc;

use futures_util::StreamExt;

use super::installed;
use crate::consumer::topic_delete::delete_topic;
use crate::consumer::ConsumerError;
use crate::shard::{Shard, TopicError};

/// On shard 0 in cluster mode: drops the local data of every topic deleted from etcd, for as
/// long as the broker runs. A single host (or a second call) does nothing.
pub async fn follow_deletions(shard: Rc<Shard>) {
    let Some(mut deleted) = installed().and_then(|c| c.take_deleted()) else {
        return;
    };
    while let Some(topic) = deleted.next().await {
        match delete_topic(&shard, &topic).await {
            Ok(d) => tracing::info!(
                topic,
                partitions = d.partitions,
                "topic deleted in the cluster; its local data dropped"
            ),
            // Never opened here, or already being dropped (the broker that took the DELETE
            // drops its own at once).
            Err(ConsumerError::Topic(
                TopicError::NotFound { .. } | TopicError::Deleting { .. },
            )) => {}
            Err(e) => tracing::error!(
                topic,
                error = %e,
                "topic deleted in the cluster, but its local data could not be dropped"
            ),
        }
    }
}
