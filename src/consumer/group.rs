//! Consumer-group state, as kept by the coordinator (shard 0). Pure: no I/O, no clock of its
//! own (callers pass `now`), so every rule is unit-tested here.
//!
//! - A consumer belongs to one group at a time and subscribes to topics; registering again
//!   replaces its topics (and may move it to another group).
//! - Membership changes (register, goodbye, expiry) rebalance the group incrementally
//!   ([`super::assign`]): only partitions that must move do, at a cost that follows them,
//!   not the size of the group.
//! - A poll first commits the positions the consumer's previous poll returned, then answers
//!   with the partitions now assigned to it and their committed offsets.
//! - A consumer's returned positions are committed only for partitions still assigned to it,
//!   so a consumer that lost a partition in a rebalance cannot move the new owner's offset.
//! - A REGISTER of a registered id starts a new session: the returned positions not yet
//!   committed are dropped (read again), and a poll of the old session that answers later
//!   records nothing.
//! - Groups and members are bounded ([`Limits`]): a REGISTER past a limit is refused before
//!   it changes anything. A group whose last member left stays until the coordinator has
//!   saved its offsets, then is forgotten ([`Groups::forget_if_idle`]); a later REGISTER
//!   brings its offsets back from disk ([`Groups::adopt`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::assign::{Assignment, PartitionKey, Work};
use super::offsets::GroupOffsets;
use super::ConsumerError;
use crate::shard::TopicError;

struct Member {
    group: String,
    last_seen: Instant,
    /// Positions returned by the last poll, committed by the next poll, COMMIT or GOODBYE.
    returned: Vec<(PartitionKey, i64)>,
    /// The session: set by each REGISTER, so a poll of an earlier session still in flight
    /// cannot record its positions for the new one.
    session: u64,
    /// Topics it subscribed to that were deleted since its last poll, which tells it so.
    deleted: Vec<String>,
}

#[derive(Default)]
struct Group {
    committed: GroupOffsets,
    /// The members, their subscriptions and the partitions each owns.
    assignment: Assignment,
}

/// A partition a poll should read, and from where (`None`: the earliest available offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadTarget {
    pub topic: String,
    pub partition: u32,
    pub offset: Option<i64>,
}

/// Every group and consumer.
pub struct Groups {
    timeout: Duration,
    limits: Limits,
    /// Groups with at least one member (what `max_groups` bounds).
    live_groups: usize,
    members: HashMap<String, Member>,
    groups: HashMap<String, Group>,
    /// The last session number handed out.
    sessions: u64,
    /// Rebalancing work, over every group since start.
    work: Work,
}

impl Groups {
    /// State after a restart: the loaded committed offsets, no live consumers.
    pub fn new(timeout: Duration, loaded: HashMap<String, GroupOffsets>) -> Groups {
        let groups = loaded
            .into_iter()
            .map(|(name, committed)| {
                (
                    name,
                    Group {
                        committed,
                        ..Group::default()
                    },
                )
            })
            .collect();
        Groups {
            timeout,
            limits: Limits::default(),
            live_groups: 0,
            members: HashMap::new(),
            groups,
            sessions: 0,
            work: Work::default(),
        }
    }

    /// Registers (or re-registers) consumer `id` in `group` with `topics` and their partition
    /// counts, and rebalances. Returns the topics that are new to the group — no live member
    /// subscribed to them and nothing committed for them — where a start policy applies.
    /// Refused, changing nothing, past a limit ([`Groups::admits`]).
    pub fn register(
        &mut self,
        id: &str,
        group: &str,
        topics: &[(String, u32)],
        now: Instant,
    ) -> Result<Vec<String>, ConsumerError> {
        self.admits(id, group, topics.len())?;
        // A REGISTER of a registered id starts a new session: what the old session's last
        // poll returned was never confirmed, so it is dropped, not committed, and read again.
        if let Some(m) = self.members.get_mut(id) {
            m.returned.clear();
            m.deleted.clear();
            if m.group != group {
                self.remove(id);
            }
        }
        let g = self.groups.entry(group.to_string()).or_default();
        // Linear in the topics named: per topic, its count of subscribers and one ordered
        // lookup of the committed offsets.
        let a = &g.assignment;
        let others = |t: &str| {
            a.subscribers(t)
                .saturating_sub(usize::from(a.subscribes(id, t)))
        };
        let new_topics = topics
            .iter()
            .map(|(t, _)| t)
            .filter(|t| {
                let committed = g
                    .committed
                    .range((t.to_string(), 0)..)
                    .next()
                    .is_some_and(|((ct, _), _)| ct == *t);
                others(t) == 0 && !committed
            })
            .cloned()
            .collect();
        if g.assignment.is_empty() {
            self.live_groups += 1;
        }
        let before = g.assignment.work();
        g.assignment.set(id, topics);
        self.count_work(before, group);
        let member = self
            .members
            .entry(id.to_string())
            .or_insert_with(|| Member {
                group: group.to_string(),
                last_seen: now,
                returned: Vec::new(),
                session: 0,
                deleted: Vec::new(),
            });
        self.sessions += 1;
        member.session = self.sessions;
        member.last_seen = now;
        Ok(new_topics)
    }

    /// Sets starting positions for partitions that have no committed offset yet; returns
    /// whether anything changed.
    pub fn set_initial(&mut self, group: &str, positions: &[(PartitionKey, i64)]) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let mut changed = false;
        for (k, off) in positions {
            if !g.committed.contains_key(k) {
                g.committed.insert(k.clone(), *off);
                changed = true;
            }
        }
        changed
    }

    /// The first half of a poll: commits the previous poll's positions, then returns what to
    /// read now. The bool says whether committed offsets changed (and must be persisted).
    pub fn poll(
        &mut self,
        id: &str,
        now: Instant,
    ) -> Result<(String, bool, Vec<ReadTarget>), ConsumerError> {
        // A topic it subscribed to was deleted: said once, before anything else (its other
        // topics' positions are committed by the next poll).
        if let Some(topic) = self.member(id)?.deleted.pop() {
            return Err(ConsumerError::Topic(TopicError::Deleted { topic }));
        }
        let changed = self.commit(id, now)?;
        let group = self.members[id].group.clone();
        let g = &self.groups[&group];
        let targets = g
            .assignment
            .owned(id)
            .map(|ps| {
                ps.iter()
                    .map(|k| ReadTarget {
                        topic: k.0.clone(),
                        partition: k.1,
                        offset: g.committed.get(k).copied(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((group, changed, targets))
    }

    /// The second half of a poll: the positions it returned to the consumer.
    pub fn returned(
        &mut self,
        id: &str,
        positions: Vec<(PartitionKey, i64)>,
        now: Instant,
    ) -> Result<(), ConsumerError> {
        let session = self.session(id)?;
        self.returned_in(id, session, positions, now)
    }

    /// The consumer's current session (see [`Groups::returned_in`]).
    pub fn session(&self, id: &str) -> Result<u64, ConsumerError> {
        self.members
            .get(id)
            .map(|m| m.session)
            .ok_or_else(|| ConsumerError::UnknownConsumer(id.to_string()))
    }

    /// The second half of a poll planned in `session`: the positions it returned. Ignored
    /// when the consumer registered again meanwhile (a new session): that poll's answer went
    /// to a client that is gone, and its records must be read again.
    pub fn returned_in(
        &mut self,
        id: &str,
        session: u64,
        positions: Vec<(PartitionKey, i64)>,
        now: Instant,
    ) -> Result<(), ConsumerError> {
        let m = self.member(id)?;
        if m.session == session {
            m.last_seen = now;
            m.returned = positions;
        }
        Ok(())
    }

    /// Commits the positions the consumer's last poll returned; returns whether committed
    /// offsets changed.
    pub fn commit(&mut self, id: &str, now: Instant) -> Result<bool, ConsumerError> {
        let m = self.member(id)?;
        m.last_seen = now;
        let returned = std::mem::take(&mut m.returned);
        let group = m.group.clone();
        let g = self.groups.entry(group).or_default();
        let mut changed = false;
        for (k, off) in returned {
            if g.assignment.owns(id, &k) && g.committed.get(&k) != Some(&off) {
                g.committed.insert(k, off);
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Commits exactly `positions` (partition, next offset to read) and makes them what the
    /// consumer's next poll commits for those partitions, so the records after them are
    /// read again: a manual commit of what was processed. Refused whole, changing nothing,
    /// when a partition is not assigned to the consumer or an offset is negative or past what
    /// it was given (its last poll's position, else the committed offset).
    pub fn commit_positions(
        &mut self,
        id: &str,
        positions: Vec<(PartitionKey, i64)>,
        now: Instant,
    ) -> Result<bool, ConsumerError> {
        let m = self
            .members
            .get(id)
            .ok_or_else(|| ConsumerError::UnknownConsumer(id.to_string()))?;
        let g = self.groups.get(&m.group);
        for (k, off) in &positions {
            if !g.is_some_and(|g| g.assignment.owns(id, k)) {
                return Err(ConsumerError::NotAssigned {
                    consumer: id.to_string(),
                    topic: k.0.clone(),
                    partition: k.1,
                });
            }
            let returned = m.returned.iter().find(|(r, _)| r == k).map(|(_, o)| *o);
            let committed = g.and_then(|g| g.committed.get(k).copied());
            let given = returned.max(committed).unwrap_or(0);
            if *off < 0 || *off > given {
                return Err(ConsumerError::PastDelivered {
                    consumer: id.to_string(),
                    topic: k.0.clone(),
                    partition: k.1,
                    offset: *off,
                    given,
                });
            }
        }
        let m = self.member(id)?;
        m.last_seen = now;
        for (k, off) in &positions {
            match m.returned.iter_mut().find(|(r, _)| r == k) {
                Some(r) => r.1 = *off,
                None => m.returned.push((k.clone(), *off)),
            }
        }
        let group = m.group.clone();
        let g = self.groups.entry(group).or_default();
        let mut changed = false;
        for (k, off) in positions {
            if g.committed.get(&k) != Some(&off) {
                g.committed.insert(k, off);
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Commits, then removes the consumer and rebalances its group. Returns the group and
    /// whether committed offsets changed.
    pub fn goodbye(&mut self, id: &str, now: Instant) -> Result<(String, bool), ConsumerError> {
        let changed = self.commit(id, now)?;
        let group = self.remove(id).unwrap_or_default();
        Ok((group, changed))
    }

    /// Drops consumers silent for longer than the timeout (without committing what their last
    /// poll returned) and rebalances their groups. Returns the dropped ids and their groups.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, String)> {
        let silent: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.last_seen) > self.timeout)
            .map(|(id, _)| id.clone())
            .collect();
        silent
            .into_iter()
            .filter_map(|id| {
                let group = self.remove(&id)?;
                Some((id, group))
            })
            .collect()
    }

    /// A group's committed offsets.
    pub fn committed(&self, group: &str) -> Option<&GroupOffsets> {
        self.groups.get(group).map(|g| &g.committed)
    }

    /// Every committed offset, for clamping after a restart.
    pub fn all_committed(&self) -> Vec<(String, PartitionKey, i64)> {
        let mut out = Vec::new();
        for (name, g) in &self.groups {
            for (k, off) in &g.committed {
                out.push((name.clone(), k.clone(), *off));
            }
        }
        out
    }

    /// Lowers a committed offset that points past its log's end; returns whether it changed.
    pub fn clamp_committed(&mut self, group: &str, key: &PartitionKey, end: i64) -> bool {
        match self
            .groups
            .get_mut(group)
            .and_then(|g| g.committed.get_mut(key))
        {
            Some(off) if *off > end => {
                *off = end;
                true
            }
            _ => false,
        }
    }

    /// The group a consumer belongs to.
    pub fn group_of(&self, id: &str) -> Option<String> {
        self.members.get(id).map(|m| m.group.clone())
    }

    /// The partitions assigned to a consumer, in (topic, index) order.
    pub fn assignment(&self, id: &str) -> Option<impl Iterator<Item = &PartitionKey>> {
        let m = self.members.get(id)?;
        Some(self.groups.get(&m.group)?.assignment.owned(id)?.iter())
    }

    fn member(&mut self, id: &str) -> Result<&mut Member, ConsumerError> {
        self.members
            .get_mut(id)
            .ok_or_else(|| ConsumerError::UnknownConsumer(id.to_string()))
    }

    fn remove(&mut self, id: &str) -> Option<String> {
        let m = self.members.remove(id)?;
        if let Some(g) = self.groups.get_mut(&m.group) {
            let before = g.assignment.work();
            g.assignment.remove(id);
            if g.assignment.is_empty() {
                self.live_groups = self.live_groups.saturating_sub(1);
            }
            self.count_work(before, &m.group);
        }
        Some(m.group)
    }

    /// Adds to the total what `group`'s assignment did since `before`.
    fn count_work(&mut self, before: Work, group: &str) {
        if let Some(g) = self.groups.get(group) {
            let after = g.assignment.work();
            self.work.add(Work {
                moves: after.moves - before.moves,
                steps: after.steps - before.steps,
            });
        }
    }

    /// Rebalancing work over every group since start.
    pub fn work(&self) -> Work {
        self.work
    }
}

#[path = "group_forget.rs"]
mod forget;
#[path = "group_limits.rs"]
mod limits;
#[path = "group_view.rs"]
mod view;
pub use limits::Limits;
pub use view::{GroupView, MemberView};

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "group_rebalance_tests.rs"]
mod rebalance_tests;
