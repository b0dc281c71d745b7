//! Deleting a topic, as the admin API asks for it: the data plane's part on every shard
//! (`shard::delete`: fence, then bury the directory) and the groups' part on the coordinator
//! (committed offsets and assignments), in that order, while shard 0 keeps the name from
//! being created again. Both live on shard 0, so the whole deletion runs there, in a task of
//! its own: a client that goes away does not cut it short.
//!
//! The directory's rename is the point of no return. The groups' offsets are dropped after
//! it; if a crash comes in between, the coordinator drops them at the next start (offsets of
//! a topic that does not exist are not kept).

use std::rc::Rc;

use super::coordinator::{Coordinator, COORDINATOR_SHARD};
use super::ConsumerError;
use crate::shard::Shard;

/// What a deletion removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDeleted {
    pub topic: String,
    pub partitions: u32,
    /// The groups that had committed offsets for it.
    pub groups: Vec<String>,
}

/// Deletes `topic` everywhere: its partitions' files on every shard, its layout, its state in
/// memory, and every group's committed offsets and assignments for it. Requests in flight on
/// it fail with "topic was deleted" (class not found). Not found when there is no such topic.
pub async fn delete_topic(shard: &Rc<Shard>, topic: &str) -> Result<TopicDeleted, ConsumerError> {
    // The coordinator's shard is also the one that decides what topics exist.
    let topic = topic.to_string();
    shard
        .submit_to(COORDINATOR_SHARD, move |core| async move {
            let coordinator = Coordinator::on(&core)?;
            let deletion = core.begin_delete(&topic)?;
            deletion.fence_everywhere().await?;
            deletion.bury().await?;
            let groups = coordinator.forget_topic(&topic).await?;
            Ok(TopicDeleted {
                partitions: deletion.partitions(),
                topic,
                groups,
            })
        })
        .await?
}
