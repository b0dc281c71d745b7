//! What the admin API shows of groups: their members, what each is assigned, and the
//! committed offsets (a read-only view of [`Groups`]).

use super::{Groups, PartitionKey};

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
}
