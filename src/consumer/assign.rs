//! Spreading a group's partitions over its live consumers, incrementally: a join, a leave or
//! a change of subscriptions moves only the partitions that must move, so its cost follows
//! what changed, not the size of the group (a group may hold thousands of members).
//!
//! The invariants, after every operation:
//!
//! 1. every partition of a topic that some member subscribes to has exactly one owner, and
//!    that owner subscribes to the topic; nobody owns partitions of other topics;
//! 2. per topic, the partition counts of its subscribers differ by at most one;
//! 3. members with the same subscriptions (all of them, in the usual case) own totals that
//!    differ by at most one.
//!
//! How: each topic keeps its subscribers ordered by (partitions of it owned, id). A
//! partition with no owner goes to the first (least loaded); while the last owns two more
//! than the first, one of its partitions moves to the first. So a joining member takes
//! partitions from the most loaded until the topic is balanced, and a leaving member's
//! partitions go, one by one, to the least loaded. Those steps keep (1) and (2) but may
//! leave two members of one subscription class two apart in total (each topic alone is
//! balanced, but the spare partitions of several topics sit with one member): a second step
//! then moves, from the most to the least loaded member of the class, a partition of a topic
//! where the first owns one more than the second — a swap that keeps (2). Both steps look
//! only at members whose load changed, through ordered indexes: an operation costs
//! O((partitions moved + topics of the member) · log n), plus, when totals need evening out,
//! one pass over the partitions of the member giving them up.
//!
//! Assignments are sticky: what did not have to move stays. They depend on the history of
//! joins and leaves, not only on the current membership (a restart of the broker starts from
//! an empty group, so that is no durability concern).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A partition of a topic: (topic, partition index in the topic's layout).
pub type PartitionKey = (String, u32);

/// Work done by rebalancing, counted so that tests and metrics can tell that an operation
/// cost what changed rather than the group's size.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Partitions given an owner: moved from another member, or free (new, or left by the
    /// topic's last subscriber) and now taken.
    pub moves: u64,
    /// Steps taken: index updates (each O(log n)), topics checked for balance, and
    /// partitions looked at while evening out totals.
    pub steps: u64,
}

impl Work {
    /// Adds another count (totals over several groups).
    pub fn add(&mut self, other: Work) {
        self.moves += other.moves;
        self.steps += other.steps;
    }
}

struct Topic {
    /// Owner of each partition, by index.
    owners: Vec<Option<String>>,
    /// Partitions without an owner (the topic's first subscriber, or a shrink, takes them).
    free: BTreeSet<u32>,
    /// Subscribers by (partitions of this topic owned, id).
    load: BTreeSet<(u32, String)>,
}

struct Member {
    /// Subscribed topics → partitions of each owned.
    counts: BTreeMap<String, u32>,
    owned: BTreeSet<PartitionKey>,
    total: u32,
    /// The member's subscription class (members subscribing to exactly the same topics).
    class: u64,
}

/// One group's assignment.
#[derive(Default)]
pub struct Assignment {
    topics: HashMap<String, Topic>,
    members: HashMap<String, Member>,
    classes: HashMap<u64, Class>,
    class_ids: HashMap<BTreeSet<String>, u64>,
    next_class: u64,
    work: Work,
}

impl Assignment {
    /// Adds member `id`, or changes its subscriptions, with each topic's partition count
    /// (the latest count given for a topic wins), and rebalances what that changes.
    pub fn set(&mut self, id: &str, topics: &[(String, u32)]) {
        let wanted: BTreeSet<String> = topics.iter().map(|(t, _)| t.clone()).collect();
        let mut touched = BTreeSet::new();
        let mut dirty = BTreeSet::new();
        if let Some(m) = self.members.get(id) {
            let dropped: Vec<String> = m
                .counts
                .keys()
                .filter(|t| !wanted.contains(*t))
                .cloned()
                .collect();
            for t in dropped {
                self.unsubscribe(id, &t, &mut touched, &mut dirty);
            }
        }
        let class = self.class_of(wanted);
        match self.members.get_mut(id) {
            Some(m) if m.class != class => {
                let (old, total) = (m.class, m.total);
                m.class = class;
                self.leave_class(old, total, id);
                self.enter_class(class, total, id);
            }
            Some(_) => {}
            None => {
                self.members.insert(
                    id.to_string(),
                    Member {
                        counts: BTreeMap::new(),
                        owned: BTreeSet::new(),
                        total: 0,
                        class,
                    },
                );
                self.enter_class(class, 0, id);
            }
        }
        for (t, n) in topics {
            self.resize(t, *n, &mut touched, &mut dirty);
            let subscribed = self
                .members
                .get(id)
                .is_some_and(|m| m.counts.contains_key(t));
            if !subscribed {
                if let (Some(m), Some(topic)) = (self.members.get_mut(id), self.topics.get_mut(t)) {
                    m.counts.insert(t.clone(), 0);
                    topic.load.insert((0, id.to_string()));
                    self.work.steps += 1;
                    dirty.insert(t.clone());
                }
            }
        }
        touched.insert(id.to_string());
        self.settle(dirty, touched);
    }

    /// Removes member `id` (if present) and hands its partitions to the rest.
    pub fn remove(&mut self, id: &str) {
        let Some(m) = self.members.get(id) else {
            return;
        };
        let topics: Vec<String> = m.counts.keys().cloned().collect();
        let mut touched = BTreeSet::new();
        let mut dirty = BTreeSet::new();
        for t in topics {
            self.unsubscribe(id, &t, &mut touched, &mut dirty);
        }
        if let Some(m) = self.members.remove(id) {
            self.leave_class(m.class, m.total, id);
        }
        touched.remove(id);
        self.settle(dirty, touched);
    }

    /// Takes `topic` out of every member's subscriptions (the topic was deleted): its
    /// partitions have no owner any more, and the members keep their other topics. Returns
    /// the members that were subscribed to it.
    pub fn drop_topic(&mut self, topic: &str) -> Vec<String> {
        let ids: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.counts.contains_key(topic))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            let keep: Vec<(String, u32)> = self.members[id]
                .counts
                .keys()
                .filter(|t| *t != topic)
                .map(|t| {
                    let n = self.topics.get(t).map_or(0, |x| x.owners.len() as u32);
                    (t.clone(), n)
                })
                .collect();
            self.set(id, &keep);
        }
        self.topics.remove(topic);
        ids
    }

    /// The partitions a member owns, in (topic, index) order.
    pub fn owned(&self, id: &str) -> Option<&BTreeSet<PartitionKey>> {
        self.members.get(id).map(|m| &m.owned)
    }

    /// Whether `id` owns partition `key`.
    pub fn owns(&self, id: &str, key: &PartitionKey) -> bool {
        self.topics
            .get(&key.0)
            .and_then(|t| t.owners.get(key.1 as usize))
            .is_some_and(|o| o.as_deref() == Some(id))
    }

    /// How many members subscribe to `topic`.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |t| t.load.len())
    }

    /// Whether `id` subscribes to `topic`.
    pub fn subscribes(&self, id: &str, topic: &str) -> bool {
        self.members
            .get(id)
            .is_some_and(|m| m.counts.contains_key(topic))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The work done so far.
    pub fn work(&self) -> Work {
        self.work
    }

    /// Drops member `id`'s subscription to `t`; its partitions of `t` become free.
    fn unsubscribe(
        &mut self,
        id: &str,
        t: &str,
        touched: &mut BTreeSet<String>,
        dirty: &mut BTreeSet<String>,
    ) {
        let (Some(m), Some(topic)) = (self.members.get_mut(id), self.topics.get_mut(t)) else {
            return;
        };
        let count = m.counts.remove(t).unwrap_or(0);
        topic.load.remove(&(count, id.to_string()));
        self.work.steps += 1;
        if count > 0 {
            let mine: Vec<PartitionKey> = m
                .owned
                .range((t.to_string(), 0)..=(t.to_string(), u32::MAX))
                .cloned()
                .collect();
            for k in mine {
                m.owned.remove(&k);
                if let Some(o) = topic.owners.get_mut(k.1 as usize) {
                    *o = None;
                }
                topic.free.insert(k.1);
                self.work.steps += 2;
            }
            let (class, old) = (m.class, m.total);
            m.total = m.total.saturating_sub(count);
            let new = m.total;
            self.rekey_total(class, id, old, new);
            touched.insert(id.to_string());
        }
        dirty.insert(t.to_string());
    }

    /// Sets topic `t`'s partition count, creating the topic if needed; partitions past a
    /// smaller count lose their owners.
    fn resize(
        &mut self,
        t: &str,
        n: u32,
        touched: &mut BTreeSet<String>,
        dirty: &mut BTreeSet<String>,
    ) {
        let topic = self.topics.entry(t.to_string()).or_insert_with(|| Topic {
            owners: Vec::new(),
            free: BTreeSet::new(),
            load: BTreeSet::new(),
        });
        let had = topic.owners.len() as u32;
        if had == n {
            return;
        }
        dirty.insert(t.to_string());
        self.work.steps += u64::from(had.abs_diff(n));
        if n > had {
            topic.owners.resize(n as usize, None);
            topic.free.extend(had..n);
            return;
        }
        let gone: Vec<(u32, String)> = (n..had)
            .filter_map(|j| Some((j, topic.owners[j as usize].clone()?)))
            .collect();
        topic.owners.truncate(n as usize);
        topic.free.retain(|j| *j < n);
        for (j, owner) in gone {
            self.take(t, j, &owner);
            touched.insert(owner);
        }
    }

    /// Balances every dirty topic (invariants 1 and 2), then evens out the totals in the
    /// classes of every member whose load changed (invariant 3).
    fn settle(&mut self, mut dirty: BTreeSet<String>, mut touched: BTreeSet<String>) {
        while let Some(t) = dirty.pop_first() {
            loop {
                self.work.steps += 1;
                let Some(topic) = self.topics.get(&t) else {
                    break;
                };
                let (Some((lo_n, lo)), Some((hi_n, hi))) = (topic.load.first(), topic.load.last())
                else {
                    // Nobody reads it any more: forget it (its partitions are all free).
                    self.topics.remove(&t);
                    break;
                };
                let (lo, hi) = (lo.clone(), hi.clone());
                if let Some(&j) = topic.free.first() {
                    self.give(&t, j, &lo);
                    touched.insert(lo);
                } else if hi_n - lo_n > 1 {
                    let Some(j) = self.last_of(&hi, &t) else {
                        break;
                    };
                    self.take(&t, j, &hi);
                    self.give(&t, j, &lo);
                    touched.insert(lo);
                    touched.insert(hi);
                } else {
                    break;
                }
            }
        }
        let classes: BTreeSet<u64> = touched
            .iter()
            .filter_map(|id| self.members.get(id).map(|m| m.class))
            .collect();
        for c in classes {
            self.even_out(c);
        }
    }

    /// The highest partition of `t` that `id` owns.
    fn last_of(&self, id: &str, t: &str) -> Option<u32> {
        let m = self.members.get(id)?;
        m.owned
            .range((t.to_string(), 0)..=(t.to_string(), u32::MAX))
            .next_back()
            .map(|k| k.1)
    }

    /// Makes `id` the owner of the free partition `j` of `t`.
    fn give(&mut self, t: &str, j: u32, id: &str) {
        self.shift(t, j, id, true);
    }

    /// Frees partition `j` of `t`, owned by `id`.
    fn take(&mut self, t: &str, j: u32, id: &str) {
        self.shift(t, j, id, false);
    }

    fn shift(&mut self, t: &str, j: u32, id: &str, gain: bool) {
        let (Some(m), Some(topic)) = (self.members.get_mut(id), self.topics.get_mut(t)) else {
            return;
        };
        let Some(count) = m.counts.get_mut(t) else {
            return;
        };
        let before = *count;
        let key = (t.to_string(), j);
        if gain {
            *count += 1;
            m.owned.insert(key);
            topic.free.remove(&j);
            if let Some(o) = topic.owners.get_mut(j as usize) {
                *o = Some(id.to_string());
            }
            self.work.moves += 1;
        } else {
            *count = count.saturating_sub(1);
            m.owned.remove(&key);
            if (j as usize) < topic.owners.len() {
                topic.free.insert(j);
                topic.owners[j as usize] = None;
            }
        }
        let after = *count;
        topic.load.remove(&(before, id.to_string()));
        topic.load.insert((after, id.to_string()));
        let (class, old) = (m.class, m.total);
        m.total = if gain { old + 1 } else { old.saturating_sub(1) };
        let new = m.total;
        self.work.steps += 3;
        self.rekey_total(class, id, old, new);
    }
}

#[path = "assign_class.rs"]
mod class;
use class::Class;

#[cfg(test)]
#[path = "assign_tests.rs"]
mod tests;
