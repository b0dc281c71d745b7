//! The consumer-group coordinator: one per broker, on shard 0, in that shard's core-local
//! state. It owns every group's state ([`Groups`]) and the offsets files; transports reach it
//! with `Shard::submit_to` (see [`super::api`]), each request in its own task on shard 0. It
//! drops silent consumers on a timer, and after a restart clamps committed offsets to the
//! recovered ends of their logs before serving polls.
//!
//! Memory holds the groups in use: a group whose last member left or timed out is forgotten
//! once its offsets are on disk ([`Coordinator::retire`]), and read back from its file when
//! a consumer registers in it again. Offsets files themselves stay on disk.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::assign::PartitionKey;
use super::group::{GroupView, Groups, Limits, ReadTarget};
use super::offsets::{self, offsets_dir};
use super::ConsumerError;
use crate::rt;
use crate::shard::notify::LocalNotify;
use crate::shard::Shard;
use crate::stats::GroupStats;
use crate::storage::fs::BrokerFs;
use crate::storage::StorageError;
use crate::wire::consumer::StartPolicy;

/// Where a group starts in a topic it has no committed offsets for: the framed REGISTER's
/// policies, or (REST `startTime`) the first record at or after a time (μs since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    Time(i64),
}

impl From<StartPolicy> for StartAt {
    fn from(p: StartPolicy) -> StartAt {
        match p {
            StartPolicy::Earliest => StartAt::Earliest,
            StartPolicy::Latest => StartAt::Latest,
        }
    }
}

/// Where a group's offsets file writes stand: changes requested, changes on disk, and whether
/// a write is in flight.
#[derive(Debug, Default)]
struct Persist {
    requested: u64,
    done: u64,
    running: bool,
    /// When the last write started (cluster mode paces etcd writes by it).
    last: Option<Instant>,
}

pub struct Coordinator {
    state: RefCell<Groups>,
    dir: PathBuf,
    /// The offsets files' file system (the shard's).
    fs: BrokerFs,
    timeout: Duration,
    /// Offsets-file writes per group, coalesced (see [`Coordinator::persist_if`]).
    persisting: RefCell<HashMap<String, Persist>>,
    persisted: LocalNotify,
    /// Set once loaded offsets were checked against the logs' recovered ends.
    verified: Cell<bool>,
    verified_signal: LocalNotify,
    /// Cluster mode: offsets live in etcd, written at most once per group per this long
    /// (`--offsets-interval`); `None`: offsets files on this broker.
    etcd_interval: Option<Duration>,
    /// Cluster mode: the generation of the view's live-broker log up to which groups that
    /// moved away were dropped ([`Coordinator::release_moved`]).
    released: Cell<u64>,
}

/// The shard that hosts the coordinator.
pub const COORDINATOR_SHARD: usize = 0;

impl Coordinator {
    /// On shard 0, before it serves: loads the committed offsets of every group, installs the
    /// coordinator in the shard's [`CoreLocals`](crate::shard::CoreLocals) and starts its
    /// expiry timer and the post-restart clamping of loaded offsets.
    pub async fn install(shard: &Rc<Shard>) -> Result<(), StorageError> {
        let config = &shard.config;
        let dir = offsets_dir(&config.data_dir);
        let etcd_interval = crate::cluster::installed().map(|_| config.offsets_interval);
        // Cluster mode: a group's offsets are read from etcd when the group is first used.
        let mut loaded = HashMap::new();
        if etcd_interval.is_none() {
            loaded = offsets::load_all(&shard.fs, &dir).await?;
            forget::drop_unknown_topics(shard, &dir, &mut loaded).await?;
        }
        let me = Rc::new(Coordinator {
            state: RefCell::new(
                Groups::new(config.consumer_timeout, loaded).with_limits(Limits {
                    max_groups: config.max_groups,
                    max_consumers_per_group: config.max_consumers_per_group,
                    max_consumers: config.max_consumers,
                    max_topics_per_consumer: config.max_topics_per_consumer,
                }),
            ),
            dir,
            fs: shard.fs.clone(),
            timeout: config.consumer_timeout,
            persisting: RefCell::new(HashMap::new()),
            persisted: LocalNotify::default(),
            verified: Cell::new(false),
            verified_signal: LocalNotify::default(),
            etcd_interval,
            released: Cell::new(0),
        });
        shard.locals.insert(me.clone());
        let (c, sh) = (me.clone(), shard.clone());
        rt::spawn_detached(async move { c.clamp_loaded(&sh).await });
        rt::spawn_detached(async move { me.expiry_loop().await });
        Ok(())
    }

    /// The coordinator on this core (shard 0).
    pub fn on(shard: &Shard) -> Result<Rc<Coordinator>, ConsumerError> {
        shard
            .locals
            .get()
            .ok_or(ConsumerError::NoCoordinator(shard.id))
    }

    /// Joins (or re-joins) a group; `topics` carries each topic's partition count.
    pub async fn register(
        &self,
        shard: &Rc<Shard>,
        consumer: &str,
        group: &str,
        topics: &[(String, u32)],
        start: StartAt,
    ) -> Result<(), ConsumerError> {
        if !self.state.borrow().has_group(group) {
            // A group forgotten when it emptied (or never seen): its committed offsets are on
            // disk, if anywhere. Checked against the limits first, so a client that names
            // new groups without end costs no file reads once the broker is full.
            self.state.borrow().admits(consumer, group, topics.len())?;
            let loaded = self.load_group(group).await?;
            self.state.borrow_mut().adopt(group, loaded);
        }
        let before = self.group_of(consumer);
        let registered = self
            .state
            .borrow_mut()
            .register(consumer, group, topics, Instant::now());
        let new_topics = match registered {
            Ok(new_topics) => new_topics,
            Err(e) => {
                // A group adopted above for a refused REGISTER is not kept.
                self.retire(group);
                return Err(e);
            }
        };
        if !before.is_empty() && before != group {
            self.retire(&before);
        }
        tracing::info!(consumer, group, ?topics, "consumer registered");
        match start {
            StartAt::Latest | StartAt::Time(_) if !new_topics.is_empty() => {
                self.start_at(shard, group, &new_topics, start).await
            }
            _ => Ok(()),
        }
    }

    /// Commits the consumer's previous poll and says what to read now, and in which session
    /// (to pass to [`Coordinator::returned`]).
    pub async fn plan(
        self: &Rc<Self>,
        consumer: &str,
    ) -> Result<(Vec<ReadTarget>, u64), ConsumerError> {
        while !self.verified.get() {
            let wake = self.verified_signal.notified();
            if self.verified.get() {
                break;
            }
            wake.await;
        }
        let (group, changed, targets) = self.state.borrow_mut().poll(consumer, Instant::now())?;
        let session = self.state.borrow().session(consumer)?;
        // The commit a poll makes for its predecessor is saved in the background: a crash
        // before it lands re-delivers one poll (at-least-once, as any crash after a poll
        // would), and the poll does not wait on an fsync.
        if changed {
            self.persist_in_background(group);
        }
        Ok((targets, session))
    }

    /// Records the positions a poll of `session` returned to the consumer (committed by its
    /// next request; ignored if it registered again since).
    pub fn returned(
        &self,
        consumer: &str,
        session: u64,
        positions: Vec<(PartitionKey, i64)>,
    ) -> Result<(), ConsumerError> {
        self.state
            .borrow_mut()
            .returned_in(consumer, session, positions, Instant::now())
    }

    /// Commits the positions the consumer's last poll returned, durably.
    pub async fn commit(&self, consumer: &str) -> Result<(), ConsumerError> {
        let changed = self.state.borrow_mut().commit(consumer, Instant::now())?;
        let group = self.group_of(consumer);
        self.persist_if(changed, &group).await
    }

    /// Commits exactly `positions`, durably (see [`Groups::commit_positions`]).
    pub async fn commit_positions(
        &self,
        consumer: &str,
        positions: Vec<(PartitionKey, i64)>,
    ) -> Result<(), ConsumerError> {
        let changed =
            self.state
                .borrow_mut()
                .commit_positions(consumer, positions, Instant::now())?;
        let group = self.group_of(consumer);
        self.persist_if(changed, &group).await
    }

    /// Commits, leaves the group and rebalances it.
    pub async fn goodbye(&self, consumer: &str) -> Result<(), ConsumerError> {
        let (group, changed) = self.state.borrow_mut().goodbye(consumer, Instant::now())?;
        tracing::info!(consumer, group, "consumer left");
        let saved = self.persist_if(changed, &group).await;
        self.retire(&group);
        saved
    }

    /// (groups in memory, groups with members, consumers).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.state.borrow().counts()
    }

    /// The groups and the work of their rebalances, for metrics.
    pub fn group_stats(&self) -> GroupStats {
        let state = self.state.borrow();
        let (in_memory, live, consumers) = state.counts();
        let work = state.work();
        GroupStats {
            live_groups: live as u64,
            groups_in_memory: in_memory as u64,
            consumers: consumers as u64,
            rebalance_moves: work.moves,
            rebalance_steps: work.steps,
        }
    }

    /// Every group, by name, with its member count: those in memory, and those only on disk
    /// (saved, then forgotten once empty).
    pub async fn list_groups(&self) -> Result<Vec<(String, usize)>, ConsumerError> {
        let on_disk = offsets::load_all(&self.fs, &self.dir)
            .await
            .map_err(|e| ConsumerError::Offsets(Arc::new(e)))?;
        let mut all: std::collections::BTreeMap<String, usize> =
            on_disk.into_keys().map(|g| (g, 0)).collect();
        all.extend(self.state.borrow().names());
        Ok(all.into_iter().collect())
    }

    /// A group's members, assignments and committed offsets; a group only on disk has no
    /// members. [`ConsumerError::NoSuchGroup`] when it has neither.
    pub async fn describe_group(&self, group: &str) -> Result<GroupView, ConsumerError> {
        if let Some(v) = self.state.borrow().view(group) {
            return Ok(v);
        }
        let committed = self.load_group(group).await?;
        if committed.is_empty() {
            return Err(ConsumerError::NoSuchGroup(group.to_string()));
        }
        Ok(GroupView {
            members: Vec::new(),
            committed: committed.into_iter().collect(),
        })
    }

    /// Resets `group`'s committed offsets to `positions`, durably (a group not in memory is
    /// read from its file first). Refused while the group has live members.
    pub async fn reset_group(
        &self,
        group: &str,
        positions: Vec<(PartitionKey, i64)>,
    ) -> Result<(), ConsumerError> {
        if !self.state.borrow().has_group(group) {
            let loaded = self.load_group(group).await?;
            self.state.borrow_mut().adopt(group, loaded);
        }
        let reset = self.state.borrow_mut().reset_offsets(group, &positions);
        let saved = match reset {
            Ok(changed) => self.persist_if(changed, group).await,
            Err(e) => Err(e),
        };
        self.retire(group);
        tracing::info!(group, ?positions, ok = saved.is_ok(), "group offsets reset");
        saved
    }

    /// Every group's committed offsets, for metrics (consumer lag).
    pub fn committed_offsets(&self) -> Vec<(String, PartitionKey, i64)> {
        self.state.borrow().all_committed()
    }

    /// The group `consumer` is a member of here, if any.
    pub fn member_of(&self, consumer: &str) -> Option<String> {
        self.state.borrow().group_of(consumer)
    }

    fn group_of(&self, consumer: &str) -> String {
        self.state.borrow().group_of(consumer).unwrap_or_default()
    }

    /// Commits the current end of every partition of `topics` for a new group that asked to
    /// start from the latest offset.
    /// Sets the group's first positions in `topics` (where it has none) to each partition's
    /// end, or to its first record at or after a time.
    async fn start_at(
        &self,
        shard: &Rc<Shard>,
        group: &str,
        topics: &[String],
        start: StartAt,
    ) -> Result<(), ConsumerError> {
        let mut states = Vec::new();
        for t in topics {
            states.push(shard.topic(t).await?);
            rt::yield_if_needed().await;
        }
        let reads = states.iter().flat_map(|ts| {
            (0..ts.layout.partitions()).map(move |j| async move {
                let time_us = match start {
                    StartAt::Time(t_us) => Some(t_us),
                    _ => None,
                };
                // Cluster mode: a partition another broker leads starts where its leader says.
                let at_leader = match crate::cluster::installed() {
                    Some(c) => {
                        c.offsets_at_leader(&ts.name, j, time_us.unwrap_or(0))
                            .await?
                    }
                    None => None,
                };
                let offset = match (at_leader, time_us) {
                    (Some(o), Some(_)) => o.offset,
                    (Some(o), None) => o.next_offset,
                    (None, Some(t_us)) => shard.offset_for_time(ts, j, t_us).await?.offset,
                    (None, None) => shard.bounds(ts, j).await?.1,
                };
                Ok(((ts.name.clone(), j), offset))
            })
        });
        let positions = join_all(reads)
            .await
            .into_iter()
            .collect::<Result<Vec<(PartitionKey, i64)>, ConsumerError>>()?;
        let changed = self.state.borrow_mut().set_initial(group, &positions);
        self.persist_if(changed, group).await
    }

    /// After a restart: lowers every committed offset that points past its log's recovered
    /// end (data lost to a crash, or a log removed by hand), then lets polls through.
    async fn clamp_loaded(&self, shard: &Rc<Shard>) {
        let all = self.state.borrow().all_committed();
        let mut touched = Vec::new();
        for (group, key, off) in all {
            let Some(ts) = shard.known_topic(&key.0) else {
                continue;
            };
            if key.1 >= ts.layout.partitions() {
                continue;
            }
            // Cluster mode: only a partition this broker leads has its log here.
            if crate::cluster::installed().is_some_and(|c| !c.leads(&key.0, key.1)) {
                continue;
            }
            match shard.bounds(&ts, key.1).await {
                Ok((_, end)) if off > end => {
                    tracing::warn!(
                        group,
                        topic = key.0,
                        partition = key.1,
                        committed = off,
                        end,
                        "committed offset is past the end of the recovered log; clamping it"
                    );
                    if self.state.borrow_mut().clamp_committed(&group, &key, end) {
                        touched.push(group);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(group, topic = key.0, partition = key.1, error = %e,
                    "cannot check a committed offset against its log"),
            }
        }
        touched.dedup();
        for g in touched {
            if let Err(e) = self.persist_if(true, &g).await {
                tracing::error!(group = g, error = %e, "cannot save clamped offsets");
            }
        }
        self.verified.set(true);
        self.verified_signal.notify();
        // Groups loaded from disk have no member yet: keep only what is in use.
        let idle = self.state.borrow().idle_groups();
        for g in idle {
            self.retire(&g);
            rt::yield_if_needed().await;
        }
    }

    async fn expiry_loop(&self) {
        let tick = (self.timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
        loop {
            rt::sleep(tick).await;
            self.release_moved();
            let dropped = self.state.borrow_mut().expire(Instant::now());
            for (id, group) in dropped {
                tracing::info!(
                    consumer = id,
                    group,
                    timeout = ?self.timeout,
                    "consumer silent for too long; dropped and its partitions reassigned"
                );
                self.retire(&group);
            }
        }
    }
}

#[path = "coordinator_forget.rs"]
mod forget;
#[path = "coordinator_persist.rs"]
mod persist;
#[path = "coordinator_release.rs"]
mod release;

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
