//! Subscription classes: members reading exactly the same topics, whose totals are kept
//! within one of each other (invariant 3 of `super`).

use std::collections::BTreeSet;

use super::{Assignment, PartitionKey};

pub(super) struct Class {
    pub(super) topics: BTreeSet<String>,
    /// Members by (total partitions owned, id).
    pub(super) by_total: BTreeSet<(u32, String)>,
}

impl Assignment {
    /// Invariant 3 in class `c`: while its most and least loaded members are two or more
    /// apart, the first hands the second, in one pass over its partitions, one partition of
    /// each topic where it owns more (per topic they differ by at most one, so that swaps
    /// which member holds the topic's spare partition).
    pub(super) fn even_out(&mut self, c: u64) {
        loop {
            let Some(class) = self.classes.get(&c) else {
                return;
            };
            let (Some((lo_n, lo)), Some((hi_n, hi))) =
                (class.by_total.first(), class.by_total.last())
            else {
                return;
            };
            self.work.steps += 1;
            if hi_n - lo_n <= 1 {
                return;
            }
            let (lo, hi) = (lo.clone(), hi.clone());
            let candidates: Vec<PartitionKey> = self
                .members
                .get(&hi)
                .map(|m| m.owned.iter().cloned().collect())
                .unwrap_or_default();
            let mut moved = false;
            for (t, j) in candidates {
                self.work.steps += 1;
                let (Some(h), Some(l)) = (self.members.get(&hi), self.members.get(&lo)) else {
                    return;
                };
                if h.total <= l.total + 1 {
                    break;
                }
                if h.counts.get(&t) > l.counts.get(&t) {
                    self.take(&t, j, &hi);
                    self.give(&t, j, &lo);
                    moved = true;
                }
            }
            if !moved {
                // Cannot happen between members of one class; never loop on it.
                return;
            }
        }
    }

    pub(super) fn rekey_total(&mut self, class: u64, id: &str, old: u32, new: u32) {
        if let Some(c) = self.classes.get_mut(&class) {
            c.by_total.remove(&(old, id.to_string()));
            c.by_total.insert((new, id.to_string()));
        }
    }

    /// The id of the class subscribing to exactly `topics`, created if needed.
    pub(super) fn class_of(&mut self, topics: BTreeSet<String>) -> u64 {
        if let Some(&c) = self.class_ids.get(&topics) {
            return c;
        }
        self.next_class += 1;
        let c = self.next_class;
        self.class_ids.insert(topics.clone(), c);
        self.classes.insert(
            c,
            Class {
                topics,
                by_total: BTreeSet::new(),
            },
        );
        c
    }

    pub(super) fn enter_class(&mut self, c: u64, total: u32, id: &str) {
        if let Some(class) = self.classes.get_mut(&c) {
            class.by_total.insert((total, id.to_string()));
            self.work.steps += 1;
        }
    }

    /// Takes `id` out of class `c`, forgetting the class once empty.
    pub(super) fn leave_class(&mut self, c: u64, total: u32, id: &str) {
        let Some(class) = self.classes.get_mut(&c) else {
            return;
        };
        class.by_total.remove(&(total, id.to_string()));
        self.work.steps += 1;
        if class.by_total.is_empty() {
            if let Some(class) = self.classes.remove(&c) {
                self.class_ids.remove(&class.topics);
            }
        }
    }
}
