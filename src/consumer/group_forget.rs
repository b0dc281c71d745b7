//! Forgetting a deleted topic in every group (see [`Groups::forget_topic`]), and the members
//! of groups another broker coordinates now ([`Groups::drop_members_of`]).

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

    /// Drops every member of the groups `drop` names, without committing what their last
    /// polls returned (cluster mode: another broker coordinates those groups now). Returns the
    /// dropped members' ids.
    pub fn drop_members_of(&mut self, drop: &dyn Fn(&str) -> bool) -> Vec<String> {
        let ids: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| drop(&m.group))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.remove(id);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::consumer::ConsumerError;
    use crate::error::{Classify, ErrorClass};

    fn topics(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn a_deleted_topic_leaves_every_group_and_its_members_are_told_once() {
        let now = Instant::now();
        let on_disk = HashMap::from([(
            "idle".to_string(),
            [(("gone".to_string(), 0), 4), (("kept".to_string(), 0), 1)].into(),
        )]);
        let mut g = Groups::new(Duration::from_secs(120), on_disk);
        g.register("a", "grp", &topics(&[("gone", 2), ("kept", 2)]), now)
            .unwrap();
        g.register("b", "grp", &topics(&[("gone", 2)]), now)
            .unwrap();
        g.poll("a", now).unwrap();
        g.returned(
            "a",
            vec![(("gone".into(), 0), 3), (("kept".into(), 0), 2)],
            now,
        )
        .unwrap();
        g.poll("a", now).unwrap();
        assert_eq!(g.committed("grp").unwrap().len(), 2);

        let changed = g.forget_topic("gone");
        assert_eq!(changed, ["grp", "idle"]);
        for group in ["grp", "idle"] {
            let c = g.committed(group).unwrap();
            assert!(c.keys().all(|(t, _)| t == "kept"), "{group}: {c:?}");
        }
        // Nobody owns its partitions; `a` keeps its other topic.
        let owned: Vec<_> = g.assignment("a").unwrap().cloned().collect();
        assert_eq!(owned, [("kept".to_string(), 0), ("kept".to_string(), 1)]);
        assert_eq!(g.assignment("b").unwrap().count(), 0);

        // Each member's next poll says so, once, committing nothing; then polls go on.
        for id in ["a", "b"] {
            let e = g.poll(id, now).unwrap_err();
            assert!(matches!(&e, ConsumerError::Topic(_)), "{e:?}");
            assert_eq!(e.class(), ErrorClass::NotFound);
            assert!(e.to_string().contains("'gone' was deleted"), "{e}");
        }
        let (_, _, targets) = g.poll("a", now).unwrap();
        assert!(targets.iter().all(|t| t.topic == "kept"), "{targets:?}");
        assert!(g.poll("b", now).unwrap().2.is_empty());
        assert!(g.forget_topic("gone").is_empty(), "nothing left to forget");
    }

    #[test]
    fn dropping_the_members_of_a_group_leaves_the_others_and_commits_nothing() {
        let now = Instant::now();
        let mut g = Groups::new(Duration::from_secs(60), HashMap::new());
        let t = topics(&[("t", 4)]);
        for (id, group) in [("a", "moved"), ("b", "moved"), ("c", "kept")] {
            g.register(id, group, &t, now).unwrap();
        }
        let (_, _, targets) = g.poll("a", now).unwrap();
        let positions = targets
            .iter()
            .map(|t| ((t.topic.clone(), t.partition), 9))
            .collect();
        g.returned("a", positions, now).unwrap();
        let mut dropped = g.drop_members_of(&|group| group == "moved");
        dropped.sort();
        assert_eq!(dropped, ["a", "b"]);
        assert!(g.group_of("a").is_none() && g.group_of("c").as_deref() == Some("kept"));
        assert!(
            g.committed("moved").is_none_or(|c| c.is_empty()),
            "nothing committed"
        );
        assert!(g.forget_if_idle("moved") && !g.forget_if_idle("kept"));
    }
}
