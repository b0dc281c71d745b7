//! What the admin API shows of groups — their members, what each is assigned, and the
//! committed offsets — and its one change to them: resetting the offsets of a group that has
//! no members.

use super::{ConsumerError, Groups, PartitionKey};

/// A member and the partitions assigned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub id: String,
    pub partitions: Vec<PartitionKey>,
}

/// A group as the coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupView {
    pub members: Vec<MemberView>,
    pub committed: Vec<(PartitionKey, i64)>,
}

impl Groups {
    /// The groups held in memory (with members, emptied recently, or loaded at start) and
    /// their member counts, by name.
    pub fn names(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = self
            .groups
            .iter()
            .map(|(name, g)| (name.clone(), g.assignment.len()))
            .collect();
        out.sort();
        out
    }

    /// The group, if held in memory: members by id, committed offsets by partition.
    pub fn view(&self, group: &str) -> Option<GroupView> {
        let g = self.groups.get(group)?;
        let mut members: Vec<MemberView> = self
            .members
            .iter()
            .filter(|(_, m)| m.group == group)
            .map(|(id, _)| MemberView {
                id: id.clone(),
                partitions: g
                    .assignment
                    .owned(id)
                    .map(|ps| ps.iter().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        Some(GroupView {
            members,
            committed: g.committed.iter().map(|(k, o)| (k.clone(), *o)).collect(),
        })
    }

    /// Sets `group`'s committed offsets for `positions` (a reset by an operator). Refused
    /// while the group has live members, as Kafka does: they would go on from their own
    /// positions and commit over it. Returns whether anything changed.
    pub fn reset_offsets(
        &mut self,
        group: &str,
        positions: &[(PartitionKey, i64)],
    ) -> Result<bool, ConsumerError> {
        let g = self.groups.entry(group.to_string()).or_default();
        if !g.assignment.is_empty() {
            return Err(ConsumerError::GroupActive {
                group: group.to_string(),
                members: g.assignment.len(),
            });
        }
        let mut changed = false;
        for (k, off) in positions {
            if g.committed.insert(k.clone(), *off) != Some(*off) {
                changed = true;
            }
        }
        Ok(changed)
    }
}
