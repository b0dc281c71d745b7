//! Forgetting a deleted topic in every group (see [`Groups::forget_topic`]).

use super::{Groups, Work};
#[cfg(doc)]
use crate::shard::TopicError;

impl Groups {
    /// Forgets a deleted topic: every group's committed offsets for it, and its partitions in
    /// every assignment. A member that was subscribed to it keeps its other topics; its next
    /// poll fails once with [`TopicError::Deleted`]. Returns the groups whose committed
    /// offsets changed (to be saved).
    pub fn forget_topic(&mut self, topic: &str) -> Vec<String> {
        let mut changed = Vec::new();
        let mut told = Vec::new();
        for (name, g) in &mut self.groups {
            let before = g.committed.len();
            g.committed.retain(|(t, _), _| t != topic);
            if g.committed.len() != before {
                changed.push(name.clone());
            }
            let w = g.assignment.work();
            told.extend(g.assignment.drop_topic(topic));
            let after = g.assignment.work();
            self.work.add(Work {
                moves: after.moves - w.moves,
                steps: after.steps - w.steps,
            });
        }
        for id in told {
            if let Some(m) = self.members.get_mut(&id) {
                m.deleted.push(topic.to_string());
            }
        }
        for m in self.members.values_mut() {
            m.returned.retain(|(k, _)| k.0 != topic);
        }
        changed.sort();
        changed
    }
}
