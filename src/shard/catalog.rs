//! Finding and creating topics. Shard 0 alone decides whether a topic exists and creates it
//! (persisting its layout), so the count checked against `--max-topics` is the broker's, and
//! two racing creates of one topic agree: shard 0 checks and inserts without waiting in
//! between, so the second finds the first's layout. Every other shard asks shard 0 about a
//! topic it does not know yet and then installs the answer.
//!
//! Topics found on disk at start are installed by every shard without asking: they count
//! toward the limit but are never refused.

use std::rc::Rc;
use std::sync::Arc;

use futures_channel::oneshot;

use super::error::{RouteError, TopicError};
use super::msg::ShardMsg;
use super::{topics, Shard, TopicState};
use crate::ring::TopicLayout;

/// The shard that creates topics.
const CREATOR: usize = 0;

/// Largest partition count an explicit create may ask for, per shard: the most
/// `--ranges-per-shard` allows.
const MAX_PARTITIONS_PER_SHARD: u32 = 256;

/// A topic's layout as shard 0 answered, and whether this request created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub layout: TopicLayout,
    pub created: bool,
    /// Which life of the name (see [`TopicState::incarnation`]).
    pub incarnation: u64,
}

impl Shard {
    /// The topic's state. An unknown topic is created (through shard 0) with the default
    /// layout when `--auto-create-topics` is on, and is [`TopicError::NotCreated`] when it is
    /// off. Every interface that names a topic (STARTUP, REGISTER, REST, gRPC metadata)
    /// comes through here. In cluster mode the topic comes from etcd (created there when
    /// auto-create is on), opened here with etcd's layout.
    pub async fn topic(&self, name: &str) -> Result<Rc<TopicState>, TopicError> {
        if let Some(t) = self.known_topic(name) {
            return Ok(t);
        }
        if let Some(cluster) = crate::cluster::installed() {
            let create = self.config.auto_create_topics;
            return match cluster.open_topic(self, name, create).await {
                Err(TopicError::NotFound { topic }) if !create => {
                    Err(TopicError::NotCreated { topic })
                }
                opened => opened,
            };
        }
        let create = self
            .config
            .auto_create_topics
            .then(|| self.default_layout());
        let found = match self.find_or_create(name, create, None).await {
            Err(TopicError::NotFound { topic }) => return Err(TopicError::NotCreated { topic }),
            found => found?,
        };
        self.install_topic(name, found.layout, found.incarnation)
    }

    /// The topic's state if it exists; never creates one (reads that name a topic: a typo
    /// must not make a topic). In cluster mode a topic etcd has is opened here with its layout.
    pub async fn existing_topic(&self, name: &str) -> Result<Rc<TopicState>, TopicError> {
        if let Some(t) = self.known_topic(name) {
            return Ok(t);
        }
        if let Some(cluster) = crate::cluster::installed() {
            return cluster.open_topic(self, name, false).await;
        }
        let found = self.find_or_create(name, None, None).await?;
        self.install_topic(name, found.layout, found.incarnation)
    }

    /// Creates the topic explicitly (whatever `--auto-create-topics` says), with
    /// `partitions` partitions or the default layout. An existing topic is found, not
    /// changed: the caller compares its layout with what it asked for.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: Option<u32>,
    ) -> Result<(Rc<TopicState>, Found), TopicError> {
        let layout = match partitions {
            None => self.default_layout(),
            Some(n) => self.layout_of(name, n)?,
        };
        let found = match self.known_topic(name) {
            Some(t) => Found {
                layout: t.layout,
                created: false,
                incarnation: t.incarnation,
            },
            None => self.find_or_create(name, Some(layout), None).await?,
        };
        let state = self.install_topic(name, found.layout, found.incarnation)?;
        Ok((state, found))
    }

    /// Finds the topic, or creates it with exactly `layout`, the layout etcd holds at
    /// `cluster_revision` (cluster mode; recorded with the layout so that a broker that was
    /// down while the topic was deleted can tell its files from the topic's next life). An
    /// existing topic is found, not changed: the caller compares layouts.
    pub async fn create_topic_with_layout(
        &self,
        name: &str,
        layout: TopicLayout,
        cluster_revision: i64,
    ) -> Result<Rc<TopicState>, TopicError> {
        if let Some(t) = self.known_topic(name) {
            return Ok(t);
        }
        let found = self
            .find_or_create(name, Some(layout), Some(cluster_revision))
            .await?;
        self.install_topic(name, found.layout, found.incarnation)
    }

    /// The layout a new topic gets by default: `shards × --ranges-per-shard` partitions.
    pub fn default_layout(&self) -> TopicLayout {
        TopicLayout::new(self.shards as u32, self.config.ranges_per_shard)
    }

    /// A layout of exactly `n` partitions: the shards' token ranges cut evenly when `n` is a
    /// multiple of the shard count, else `n` token ranges of one partition each.
    fn layout_of(&self, name: &str, n: u32) -> Result<TopicLayout, TopicError> {
        let shards = self.shards as u32;
        let max = shards * MAX_PARTITIONS_PER_SHARD;
        let bad = |why| TopicError::BadPartitions {
            topic: name.to_string(),
            partitions: n,
            why,
        };
        if n == 0 {
            return Err(bad("a topic has at least one partition"));
        }
        if n > max {
            return Err(bad("at most 256 per shard"));
        }
        Ok(if n.is_multiple_of(shards) {
            TopicLayout::new(shards, n / shards)
        } else {
            TopicLayout {
                gen: 1,
                token_ranges: n,
                ranges_per_token_range: 1,
            }
        })
    }

    /// Asks shard 0 for the topic, creating it with `create` if it does not exist.
    async fn find_or_create(
        &self,
        name: &str,
        create: Option<TopicLayout>,
        cluster_revision: Option<i64>,
    ) -> Result<Found, TopicError> {
        if self.id == CREATOR {
            return self.ensure_topic(name, create, cluster_revision).await;
        }
        let (tx, rx) = oneshot::channel();
        let msg = ShardMsg::GetOrCreateTopic {
            topic: name.to_string(),
            create,
            cluster_revision,
            reply: tx,
        };
        self.mesh
            .send_to(CREATOR, msg)
            .await
            .map_err(|_| RouteError::Unreachable(CREATOR))?;
        rx.await.map_err(|_| RouteError::Dropped(CREATOR))?
    }

    /// Shard 0 only: the topic's layout, persisting `create` as a new topic's if it does not
    /// exist and the broker holds fewer than `--max-topics`. Creations run one at a time
    /// (writing the layout is an await): nothing can come between one's check and its insert.
    pub(super) async fn ensure_topic(
        &self,
        name: &str,
        create: Option<TopicLayout>,
        cluster_revision: Option<i64>,
    ) -> Result<Found, TopicError> {
        debug_assert_eq!(self.id, CREATOR, "topics are created on shard 0");
        // A topic not known yet may be being created: wait for that first, so a lookup never
        // answers "not found" for a topic whose creation is under way.
        let _one_at_a_time = match self.known_topic(name) {
            Some(_) => None,
            None => self.creating.clone().acquire_static_permit(1).await.ok(),
        };
        if self.deleting.borrow().contains(name) {
            return Err(TopicError::Deleting {
                topic: name.to_string(),
            });
        }
        if let Some(t) = self.known_topic(name) {
            return Ok(Found {
                layout: t.layout,
                created: false,
                incarnation: t.incarnation,
            });
        }
        let Some(layout) = create else {
            return Err(TopicError::NotFound {
                topic: name.to_string(),
            });
        };
        let limit = self.config.max_topics;
        if self.topic_count() >= limit {
            return Err(TopicError::LimitReached {
                topic: name.to_string(),
                limit,
            });
        }
        topics::persist(
            &self.fs,
            &self.config.data_dir,
            name,
            &layout,
            cluster_revision,
        )
        .await
        .map_err(|e| TopicError::Persist {
            topic: name.to_string(),
            source: Arc::new(e),
        })?;
        tracing::info!(
            topic = name,
            partitions = layout.partitions(),
            "topic created"
        );
        let incarnation = self.next_incarnation.get();
        self.next_incarnation.set(incarnation + 1);
        self.install_topic(name, layout, incarnation)?;
        Ok(Found {
            layout,
            created: true,
            incarnation,
        })
    }
}
