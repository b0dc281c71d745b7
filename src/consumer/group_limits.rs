//! The bounds on groups and members, and forgetting groups nobody uses, so that neither
//! grows without end whatever clients register (see `--max-groups` and its neighbours).

use super::{Group, Groups};
use crate::consumer::offsets::GroupOffsets;
use crate::consumer::ConsumerError;

/// The bounds on groups and members (see `--max-groups` and its neighbours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Groups with at least one live member.
    pub max_groups: usize,
    pub max_consumers_per_group: usize,
    /// Live consumers in all groups together.
    pub max_consumers: usize,
    pub max_topics_per_consumer: usize,
}

impl Default for Limits {
    /// No limit beyond what the wire allows (tests of the state machine alone).
    fn default() -> Limits {
        Limits {
            max_groups: usize::MAX,
            max_consumers_per_group: usize::MAX,
            max_consumers: usize::MAX,
            max_topics_per_consumer: usize::MAX,
        }
    }
}

impl Groups {
    /// The same state, bounded by `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Groups {
        self.limits = limits;
        self
    }

    /// Whether `group` is in memory (it has members, or had them and awaits forgetting, or
    /// was loaded at start).
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// Brings a group back into memory with the offsets read from its file (nothing if it is
    /// there already: what memory holds is never older than the file).
    pub fn adopt(&mut self, group: &str, committed: GroupOffsets) {
        self.groups
            .entry(group.to_string())
            .or_insert_with(|| Group {
                committed,
                ..Group::default()
            });
    }

    /// Forgets `group` if it has no member, returning whether it did. The coordinator calls
    /// it once the group's offsets are on disk, so memory holds only groups in use.
    pub fn forget_if_idle(&mut self, group: &str) -> bool {
        let idle = self
            .groups
            .get(group)
            .is_some_and(|g| g.assignment.is_empty());
        if idle {
            self.groups.remove(group);
        }
        idle
    }

    /// The names of the groups in memory without a member (loaded at start, or just left).
    pub fn idle_groups(&self) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, g)| g.assignment.is_empty())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// (groups in memory, groups with members, members).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.groups.len(), self.live_groups, self.members.len())
    }

    /// Refuses a REGISTER that would take the broker or the group past a limit.
    pub fn admits(&self, id: &str, group: &str, topics: usize) -> Result<(), ConsumerError> {
        let l = &self.limits;
        if topics > l.max_topics_per_consumer {
            return Err(ConsumerError::TooManyTopics {
                count: topics,
                max: l.max_topics_per_consumer,
            });
        }
        let current = self.members.get(id).map(|m| m.group.as_str());
        if current == Some(group) {
            return Ok(());
        }
        // A consumer already registered (moving to another group) holds its slot already.
        if current.is_none() && self.members.len() >= l.max_consumers {
            return Err(ConsumerError::TooManyConsumersInAll {
                max: l.max_consumers,
            });
        }
        let size = self.groups.get(group).map_or(0, |g| g.assignment.len());
        if size >= l.max_consumers_per_group {
            return Err(ConsumerError::TooManyConsumers {
                group: group.to_string(),
                max: l.max_consumers_per_group,
            });
        }
        // A member moving out of a group it is alone in frees that group's slot.
        let frees = current
            .and_then(|g| self.groups.get(g))
            .is_some_and(|g| g.assignment.len() == 1);
        if size == 0 && self.live_groups >= l.max_groups && !frees {
            return Err(ConsumerError::TooManyGroups { max: l.max_groups });
        }
        Ok(())
    }
}
