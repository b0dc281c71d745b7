use super::*;
use crate::error::{Classify, ErrorClass};

fn t0() -> Instant {
    Instant::now()
}

fn topics(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn key(t: &str, j: u32) -> PartitionKey {
    (t.to_string(), j)
}

fn assigned(g: &Groups, id: &str) -> Vec<u32> {
    g.assignment(id)
        .into_iter()
        .flatten()
        .map(|(_, j)| *j)
        .collect()
}

#[test]
fn register_rebalances_and_goodbye_gives_partitions_back() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    assert_eq!(
        g.register("a", "grp", &topics(&[("t", 6)]), now).unwrap(),
        vec!["t"]
    );
    assert_eq!(assigned(&g, "a"), vec![0, 1, 2, 3, 4, 5]);
    // Second consumer: the topic is not new to the group any more.
    assert!(g
        .register("b", "grp", &topics(&[("t", 6)]), now)
        .unwrap()
        .is_empty());
    // b took half of a's partitions, from a's highest.
    assert_eq!(assigned(&g, "a"), vec![0, 1, 2]);
    assert_eq!(assigned(&g, "b"), vec![3, 4, 5]);
    // c takes one from each; nothing else moves.
    g.register("c", "grp", &topics(&[("t", 6)]), now).unwrap();
    assert_eq!(assigned(&g, "a"), vec![0, 1]);
    assert_eq!(assigned(&g, "b"), vec![3, 4]);
    assert_eq!(assigned(&g, "c"), vec![2, 5]);
    // b's partitions go one each to the least loaded; a and c keep theirs.
    g.goodbye("b", now).unwrap();
    assert_eq!(assigned(&g, "a"), vec![0, 1, 3]);
    assert_eq!(assigned(&g, "c"), vec![2, 4, 5]);
    assert!(matches!(
        g.poll("b", now),
        Err(ConsumerError::UnknownConsumer(_))
    ));
}

#[test]
fn each_poll_commits_the_previous_one() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 2)]), now).unwrap();
    let (_, changed, targets) = g.poll("a", now).unwrap();
    assert!(!changed);
    assert_eq!(targets.len(), 2);
    assert!(targets.iter().all(|t| t.offset.is_none()));
    g.returned("a", vec![(key("t", 0), 10), (key("t", 1), 4)], now)
        .unwrap();
    // Not committed until the next poll (or COMMIT).
    assert!(g.committed("grp").unwrap().is_empty());
    let (_, changed, targets) = g.poll("a", now).unwrap();
    assert!(changed);
    assert_eq!(targets[0].offset, Some(10));
    assert_eq!(targets[1].offset, Some(4));
    // Nothing returned since: nothing more to commit.
    assert!(!g.commit("a", now).unwrap());
    g.returned("a", vec![(key("t", 0), 12)], now).unwrap();
    assert!(g.commit("a", now).unwrap());
    assert_eq!(g.committed("grp").unwrap()[&key("t", 0)], 12);
}

#[test]
fn positions_of_partitions_lost_in_a_rebalance_are_not_committed() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 2)]), now).unwrap();
    g.poll("a", now).unwrap();
    g.returned("a", vec![(key("t", 0), 5), (key("t", 1), 7)], now)
        .unwrap();
    g.register("b", "grp", &topics(&[("t", 2)]), now).unwrap();
    g.commit("a", now).unwrap();
    let c = g.committed("grp").unwrap();
    assert_eq!(c.get(&key("t", 0)), Some(&5));
    assert_eq!(c.get(&key("t", 1)), None);
}

#[test]
fn silent_consumers_expire_and_lose_their_uncommitted_positions() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(2), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 4)]), now).unwrap();
    g.register("b", "grp", &topics(&[("t", 4)]), now).unwrap();
    g.returned("b", vec![(key("t", 1), 3)], now).unwrap();
    let later = now + Duration::from_secs(1);
    g.poll("a", later).unwrap();
    assert!(g.expire(later).is_empty());
    let much_later = now + Duration::from_millis(2500);
    assert_eq!(
        g.expire(much_later),
        vec![("b".to_string(), "grp".to_string())]
    );
    assert_eq!(assigned(&g, "a"), vec![0, 1, 2, 3]);
    assert!(g.committed("grp").unwrap().is_empty());
    assert!(g.poll("b", much_later).is_err());
}

#[test]
fn loaded_offsets_make_topics_not_new_and_clamp() {
    let now = t0();
    let mut loaded = HashMap::new();
    loaded.insert(
        "grp".to_string(),
        [(key("t", 0), 50), (key("t", 1), 5)].into_iter().collect(),
    );
    let mut g = Groups::new(Duration::from_secs(120), loaded);
    assert_eq!(g.all_committed().len(), 2);
    assert!(g.clamp_committed("grp", &key("t", 0), 20));
    assert!(!g.clamp_committed("grp", &key("t", 1), 20));
    assert_eq!(
        g.register("a", "grp", &topics(&[("t", 2), ("u", 1)]), now)
            .unwrap(),
        vec!["u"]
    );
    let (_, _, targets) = g.poll("a", now).unwrap();
    let offs: Vec<Option<i64>> = targets.iter().map(|t| t.offset).collect();
    assert_eq!(offs, vec![Some(20), Some(5), None]);
    assert!(g.set_initial("grp", &[(key("u", 0), 9), (key("t", 0), 0)]));
    assert_eq!(g.committed("grp").unwrap()[&key("u", 0)], 9);
    assert_eq!(g.committed("grp").unwrap()[&key("t", 0)], 20);
}

#[test]
fn moving_to_another_group_rebalances_both() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "g1", &topics(&[("t", 2)]), now).unwrap();
    g.register("b", "g1", &topics(&[("t", 2)]), now).unwrap();
    g.register("a", "g2", &topics(&[("t", 2)]), now).unwrap();
    assert_eq!(assigned(&g, "b"), vec![0, 1]);
    assert_eq!(assigned(&g, "a"), vec![0, 1]);
}

#[test]
fn registering_again_starts_a_new_session_and_drops_uncommitted_positions() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 2)]), now).unwrap();
    g.poll("a", now).unwrap();
    g.returned("a", vec![(key("t", 0), 10), (key("t", 1), 4)], now)
        .unwrap();
    // The consumer crashed after that poll and comes back with the same id: the poll's
    // records were never confirmed, so its next poll must read them again.
    g.register("a", "grp", &topics(&[("t", 2)]), now).unwrap();
    let (_, changed, targets) = g.poll("a", now).unwrap();
    assert!(!changed);
    assert!(targets.iter().all(|t| t.offset.is_none()), "{targets:?}");
    assert!(g.committed("grp").unwrap().is_empty());
    // Positions committed before the new session stay committed.
    g.returned("a", vec![(key("t", 0), 12)], now).unwrap();
    assert!(g.commit("a", now).unwrap());
    g.returned("a", vec![(key("t", 1), 7)], now).unwrap();
    g.register("a", "grp", &topics(&[("t", 2)]), now).unwrap();
    assert!(!g.commit("a", now).unwrap());
    let c = g.committed("grp").unwrap();
    assert_eq!(c.get(&key("t", 0)), Some(&12));
    assert_eq!(c.get(&key("t", 1)), None);
}

#[test]
fn registering_in_another_group_drops_uncommitted_positions_too() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "g1", &topics(&[("t", 1)]), now).unwrap();
    g.returned("a", vec![(key("t", 0), 3)], now).unwrap();
    g.register("a", "g2", &topics(&[("t", 1)]), now).unwrap();
    assert!(g.committed("g1").unwrap().is_empty());
    assert!(!g.commit("a", now).unwrap());
    assert!(g.committed("g2").unwrap().is_empty());
}

#[test]
fn registering_65535_topics_is_linear_in_them() {
    // The most topics a REGISTER may name, in a group where another member subscribes to all
    // of them and every one has a committed offset: a search of the members and committed
    // offsets per topic made this about 4e9 string comparisons.
    let now = t0();
    let n = u16::MAX as usize;
    let many: Vec<(String, u32)> = (0..n).map(|i| (format!("t{i:05}"), 2)).collect();
    let committed = many.iter().map(|(t, _)| (key(t, 0), 1)).collect();
    let mut loaded = HashMap::new();
    loaded.insert("grp".to_string(), committed);
    let mut g = Groups::new(Duration::from_secs(120), loaded);
    assert!(g.register("a", "grp", &many, now).unwrap().is_empty());
    assert!(g.register("b", "grp", &many, now).unwrap().is_empty());
    assert_eq!(assigned(&g, "a").len(), n);
    assert_eq!(assigned(&g, "b").len(), n);
    // One poll returning a position in every assigned partition, then its commit.
    let (_, _, targets) = g.poll("a", now).unwrap();
    assert_eq!(targets.len(), n);
    let returned = targets
        .iter()
        .map(|t| ((t.topic.clone(), t.partition), 5))
        .collect();
    g.returned("a", returned, now).unwrap();
    assert!(g.commit("a", now).unwrap());
    let c = g.committed("grp").unwrap();
    assert_eq!(c.values().filter(|&&o| o == 5).count(), n);
    // A new member subscribed to other topics only: the rest are new to nobody.
    let fresh = topics(&[("new", 1), ("t00000", 2)]);
    assert_eq!(g.register("c", "grp", &fresh, now).unwrap(), vec!["new"]);
}

#[test]
fn a_poll_of_an_old_session_that_answers_late_records_nothing() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 1)]), now).unwrap();
    g.poll("a", now).unwrap();
    let old = g.session("a").unwrap();
    // The consumer crashed during that (long) poll and registered again before it answered.
    g.register("a", "grp", &topics(&[("t", 1)]), now).unwrap();
    assert_ne!(g.session("a").unwrap(), old);
    g.returned_in("a", old, vec![(key("t", 0), 9)], now)
        .unwrap();
    assert!(!g.commit("a", now).unwrap());
    assert!(g.committed("grp").unwrap().is_empty());
    // The new session's own polls are recorded as before.
    let new = g.session("a").unwrap();
    g.returned_in("a", new, vec![(key("t", 0), 9)], now)
        .unwrap();
    assert!(g.commit("a", now).unwrap());
}

fn limited(groups: usize, consumers: usize, topics: usize) -> Groups {
    Groups::new(Duration::from_secs(120), HashMap::new()).with_limits(Limits {
        max_groups: groups,
        max_consumers_per_group: consumers,
        max_consumers: usize::MAX,
        max_topics_per_consumer: topics,
    })
}

#[test]
fn consumers_in_all_groups_are_bounded() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new()).with_limits(Limits {
        max_consumers: 2,
        ..Limits::default()
    });
    let t = topics(&[("t", 4)]);
    g.register("a", "g1", &t, now).unwrap();
    g.register("b", "g2", &t, now).unwrap();
    let full = g.register("c", "g3", &t, now).unwrap_err();
    assert!(
        matches!(full, ConsumerError::TooManyConsumersInAll { max: 2 }),
        "{full}"
    );
    assert_eq!(full.class(), ErrorClass::LimitReached);
    // A registered consumer may move, or register again: it holds its slot already.
    g.register("b", "g1", &t, now).unwrap();
    g.register("a", "g1", &t, now).unwrap();
    // One leaves: its slot is free.
    g.goodbye("a", now).unwrap();
    g.register("c", "g3", &t, now).unwrap();
}

#[test]
fn registrations_past_a_limit_are_refused_and_change_nothing() {
    let now = t0();
    let mut g = limited(2, 2, 2);
    let t = topics(&[("t", 4)]);
    g.register("a", "g1", &t, now).unwrap();
    g.register("b", "g1", &t, now).unwrap();
    let full = g.register("c", "g1", &t, now).unwrap_err();
    assert!(
        matches!(full, ConsumerError::TooManyConsumers { max: 2, .. }),
        "{full}"
    );
    assert_eq!(full.class(), ErrorClass::LimitReached);
    assert_eq!(g.group_of("c"), None);
    assert_eq!(assigned(&g, "a").len() + assigned(&g, "b").len(), 4);
    // A member already in the full group may register again (a new session).
    g.register("a", "g1", &t, now).unwrap();
    g.register("c", "g2", &t, now).unwrap();
    let full = g.register("d", "g3", &t, now).unwrap_err();
    assert!(
        matches!(full, ConsumerError::TooManyGroups { max: 2 }),
        "{full}"
    );
    assert!(!g.has_group("g3"));
    let many = topics(&[("t", 4), ("u", 1), ("v", 1)]);
    let full = g.register("e", "g2", &many, now).unwrap_err();
    assert!(
        matches!(full, ConsumerError::TooManyTopics { count: 3, max: 2 }),
        "{full}"
    );
    assert_eq!(g.counts(), (2, 2, 3));
    // A member that leaves frees its slot in the group.
    g.goodbye("b", now).unwrap();
    g.register("d", "g1", &t, now).unwrap();
    // A group whose last member leaves frees its slot among the groups...
    g.goodbye("c", now).unwrap();
    g.register("e", "g3", &t, now).unwrap();
    // ...and so does a member alone in its group moving to a new one.
    g.register("e", "g4", &t, now).unwrap();
    assert_eq!(g.group_of("e").as_deref(), Some("g4"));
}

#[test]
fn empty_groups_are_forgotten_and_come_back_with_their_offsets() {
    let now = t0();
    let mut g = limited(1, 10, 10);
    g.register("a", "grp", &topics(&[("t", 2)]), now).unwrap();
    g.returned("a", vec![(key("t", 0), 7)], now).unwrap();
    g.goodbye("a", now).unwrap();
    let saved = g.committed("grp").unwrap().clone();
    // Emptied: kept until the coordinator has saved it, then forgotten.
    assert_eq!(g.idle_groups(), vec!["grp".to_string()]);
    assert!(g.forget_if_idle("grp"));
    assert!(!g.has_group("grp"));
    assert_eq!(g.counts(), (0, 0, 0));
    // Back from its file: the committed offsets are there, and the topic is not new.
    g.adopt("grp", saved);
    assert!(g
        .register("b", "grp", &topics(&[("t", 2)]), now)
        .unwrap()
        .is_empty());
    let (_, _, targets) = g.poll("b", now).unwrap();
    assert_eq!(targets[0].offset, Some(7));
    // A group with members is never forgotten, and adopting never overwrites memory.
    assert!(!g.forget_if_idle("grp"));
    g.adopt("grp", GroupOffsets::new());
    assert_eq!(g.committed("grp").unwrap()[&key("t", 0)], 7);
}

#[test]
fn groups_that_come_and_go_leave_nothing_in_memory() {
    // More groups over time than the limit allows at once: each is forgotten when it empties
    // (by goodbye or by expiry), so the limit is never reached and memory keeps nothing.
    let now = t0();
    let mut g = limited(10, 10, 10);
    for i in 0..10_000 {
        let (id, grp) = (format!("c{i}"), format!("g{i}"));
        g.register(&id, &grp, &topics(&[("t", 8)]), now).unwrap();
        if i % 2 == 0 {
            g.goodbye(&id, now).unwrap();
        } else {
            let dropped = g.expire(now + Duration::from_secs(121));
            assert_eq!(dropped, vec![(id, grp.clone())]);
        }
        assert!(g.forget_if_idle(&grp));
    }
    assert_eq!(g.counts(), (0, 0, 0));
}

#[test]
fn explicit_positions_commit_exactly_what_was_processed() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 2)]), now).unwrap();
    g.register("b", "grp", &topics(&[("t", 2)]), now).unwrap();
    let mine = assigned(&g, "a")[0];
    let theirs = assigned(&g, "b")[0];
    g.poll("a", now).unwrap();
    g.returned("a", vec![(key("t", mine), 10)], now).unwrap();
    // Processed up to 6 of the 10 returned: 6 is committed, and the next poll reads from 6.
    assert!(g
        .commit_positions("a", vec![(key("t", mine), 6)], now)
        .unwrap());
    assert_eq!(g.committed("grp").unwrap().get(&key("t", mine)), Some(&6));
    let (_, _, targets) = g.poll("a", now).unwrap();
    assert_eq!(
        targets[0].offset,
        Some(6),
        "the poll does not commit past it"
    );
    // Refused whole, changing nothing: a partition of another member, an offset past what
    // was given, a negative one.
    for (k, off) in [
        (key("t", theirs), 1),
        (key("t", mine), 7),
        (key("t", mine), -1),
    ] {
        let e = g
            .commit_positions("a", vec![(key("t", mine), 5), (k, off)], now)
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    }
    assert_eq!(g.committed("grp").unwrap().get(&key("t", mine)), Some(&6));
    assert!(matches!(
        g.commit_positions("nobody", vec![], now),
        Err(ConsumerError::UnknownConsumer(_))
    ));
}

#[test]
fn a_reset_is_refused_while_the_group_has_members() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 2)]), now).unwrap();
    let e = g.reset_offsets("grp", &[(key("t", 0), 5)]).unwrap_err();
    assert!(
        matches!(e, ConsumerError::GroupActive { members: 1, .. }),
        "{e}"
    );
    g.goodbye("a", now).unwrap();
    assert!(g.reset_offsets("grp", &[(key("t", 0), 5)]).unwrap());
    assert!(
        !g.reset_offsets("grp", &[(key("t", 0), 5)]).unwrap(),
        "no change"
    );
    assert_eq!(g.committed("grp").unwrap().get(&key("t", 0)), Some(&5));
}
