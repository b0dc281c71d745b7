//! Deleting a topic on every shard. Shard 0, which decides what topics exist, drives it:
//!
//! 1. [`Shard::begin_delete`] reserves the name: creating it again (explicitly or by
//!    auto-create) is refused, retryably, until the deletion is done.
//! 2. [`Deletion::fence_everywhere`]: every shard forgets the topic and remembers its
//!    (name, incarnation) as deleted, so a request for it still on its way between shards is
//!    refused instead of bringing it back. Each partition's writer refuses frames, fails the
//!    ones not yet acknowledged (a chunk waiting for its fdatasync included), wakes the reads
//!    waiting at the end of the partition, which fail, and closes its files.
//! 3. [`Deletion::bury`]: the topic's directory is renamed to a tombstone, durably — the
//!    moment the topic is gone, whatever crash follows (see [`super::tombstone`]) — and its
//!    files are removed in the background.
//!
//! A crash before the rename leaves the topic whole; a crash after it leaves it gone. The
//! consumer groups' part (offsets, assignments) is done by the caller between the rename and
//! the release of the name (`consumer::topic_delete`).

use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::join_all;

use super::error::TopicError;
use super::{tombstone, Shard};

/// The shard that decides what topics exist.
const CATALOG: usize = 0;

/// A deletion in progress, holding its topic's name reserved on shard 0 until dropped.
pub struct Deletion {
    shard: Rc<Shard>,
    topic: String,
    incarnation: u64,
    partitions: u32,
}

impl Shard {
    /// Shard 0 only: starts deleting `name`. [`TopicError::NotFound`] when there is no such
    /// topic, [`TopicError::Deleting`] when a deletion of it is already under way.
    pub fn begin_delete(self: &Rc<Self>, name: &str) -> Result<Deletion, TopicError> {
        debug_assert_eq!(self.id, CATALOG, "topics are deleted by shard 0");
        if self.deleting.borrow().contains(name) {
            return Err(TopicError::Deleting {
                topic: name.to_string(),
            });
        }
        let Some(state) = self.known_topic(name) else {
            return Err(TopicError::NotFound {
                topic: name.to_string(),
            });
        };
        self.deleting.borrow_mut().insert(name.to_string());
        Ok(Deletion {
            shard: self.clone(),
            topic: name.to_string(),
            incarnation: state.incarnation,
            partitions: state.layout.partitions(),
        })
    }

    /// On one shard: forgets this incarnation of the topic, and fences its partitions' writers
    /// (see the module doc). Returns once their files are closed.
    async fn fence_topic(self: &Rc<Self>, name: &str, incarnation: u64) {
        {
            let mut deleted = self.deleted.borrow_mut();
            let newest = deleted.entry(name.to_string()).or_insert(incarnation);
            *newest = (*newest).max(incarnation);
        }
        let state = {
            let mut topics = self.topics.borrow_mut();
            match topics.get(name) {
                Some(t) if t.incarnation == incarnation => topics.remove(name),
                _ => None,
            }
        };
        let Some(state) = state else { return };
        join_all(state.owned().map(|w| w.fence(name))).await;
    }
}

impl Deletion {
    /// The topic being deleted.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Its partition count.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Fences the topic on every shard, all at once.
    pub async fn fence_everywhere(&self) -> Result<(), TopicError> {
        let fences = (0..self.shard.shards).map(|core| {
            let (topic, incarnation) = (self.topic.clone(), self.incarnation);
            self.shard.submit_to(core, move |s| async move {
                s.fence_topic(&topic, incarnation).await
            })
        });
        for fenced in join_all(fences).await {
            fenced?;
        }
        Ok(())
    }

    /// Renames the topic's directory to a tombstone, durably, and removes its files in the
    /// background. After this the topic is gone, also across a crash.
    pub async fn bury(&self) -> Result<(), TopicError> {
        let shard = &self.shard;
        let buried = tombstone::bury(&shard.fs, &shard.config.data_dir, &self.topic)
            .await
            .map_err(|e| TopicError::Bury {
                topic: self.topic.clone(),
                source: Arc::new(e),
            })?;
        tracing::info!(
            topic = self.topic,
            partitions = self.partitions,
            "topic deleted"
        );
        if let Some(t) = buried {
            tombstone::remove_later(&shard.fs, t);
        }
        Ok(())
    }
}

impl Drop for Deletion {
    /// Releases the name: it may be created again.
    fn drop(&mut self) {
        self.shard.deleting.borrow_mut().remove(&self.topic);
    }
}
