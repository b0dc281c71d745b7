use super::*;

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
        .unwrap_or(&[])
        .iter()
        .map(|(_, j)| *j)
        .collect()
}

#[test]
fn register_rebalances_and_goodbye_gives_partitions_back() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    assert_eq!(g.register("a", "grp", &topics(&[("t", 6)]), now), vec!["t"]);
    assert_eq!(assigned(&g, "a"), vec![0, 1, 2, 3, 4, 5]);
    // Second consumer: the topic is not new to the group any more.
    assert!(g.register("b", "grp", &topics(&[("t", 6)]), now).is_empty());
    g.register("c", "grp", &topics(&[("t", 6)]), now);
    assert_eq!(assigned(&g, "a"), vec![0, 3]);
    assert_eq!(assigned(&g, "b"), vec![1, 4]);
    assert_eq!(assigned(&g, "c"), vec![2, 5]);
    g.goodbye("b", now).unwrap();
    assert_eq!(assigned(&g, "a"), vec![0, 2, 4]);
    assert_eq!(assigned(&g, "c"), vec![1, 3, 5]);
    assert!(matches!(
        g.poll("b", now),
        Err(ConsumerError::UnknownConsumer(_))
    ));
}

#[test]
fn each_poll_commits_the_previous_one() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 2)]), now);
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
    g.register("a", "grp", &topics(&[("t", 2)]), now);
    g.poll("a", now).unwrap();
    g.returned("a", vec![(key("t", 0), 5), (key("t", 1), 7)], now)
        .unwrap();
    g.register("b", "grp", &topics(&[("t", 2)]), now);
    g.commit("a", now).unwrap();
    let c = g.committed("grp").unwrap();
    assert_eq!(c.get(&key("t", 0)), Some(&5));
    assert_eq!(c.get(&key("t", 1)), None);
}

#[test]
fn silent_consumers_expire_and_lose_their_uncommitted_positions() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(2), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 4)]), now);
    g.register("b", "grp", &topics(&[("t", 4)]), now);
    g.returned("b", vec![(key("t", 1), 3)], now).unwrap();
    let later = now + Duration::from_secs(1);
    g.poll("a", later).unwrap();
    assert!(g.expire(later).is_empty());
    let much_later = now + Duration::from_millis(2500);
    assert_eq!(g.expire(much_later), vec!["b".to_string()]);
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
        g.register("a", "grp", &topics(&[("t", 2), ("u", 1)]), now),
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
    g.register("a", "g1", &topics(&[("t", 2)]), now);
    g.register("b", "g1", &topics(&[("t", 2)]), now);
    g.register("a", "g2", &topics(&[("t", 2)]), now);
    assert_eq!(assigned(&g, "b"), vec![0, 1]);
    assert_eq!(assigned(&g, "a"), vec![0, 1]);
}

#[test]
fn registering_again_starts_a_new_session_and_drops_uncommitted_positions() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 2)]), now);
    g.poll("a", now).unwrap();
    g.returned("a", vec![(key("t", 0), 10), (key("t", 1), 4)], now)
        .unwrap();
    // The consumer crashed after that poll and comes back with the same id: the poll's
    // records were never confirmed, so its next poll must read them again.
    g.register("a", "grp", &topics(&[("t", 2)]), now);
    let (_, changed, targets) = g.poll("a", now).unwrap();
    assert!(!changed);
    assert!(targets.iter().all(|t| t.offset.is_none()), "{targets:?}");
    assert!(g.committed("grp").unwrap().is_empty());
    // Positions committed before the new session stay committed.
    g.returned("a", vec![(key("t", 0), 12)], now).unwrap();
    assert!(g.commit("a", now).unwrap());
    g.returned("a", vec![(key("t", 1), 7)], now).unwrap();
    g.register("a", "grp", &topics(&[("t", 2)]), now);
    assert!(!g.commit("a", now).unwrap());
    let c = g.committed("grp").unwrap();
    assert_eq!(c.get(&key("t", 0)), Some(&12));
    assert_eq!(c.get(&key("t", 1)), None);
}

#[test]
fn registering_in_another_group_drops_uncommitted_positions_too() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "g1", &topics(&[("t", 1)]), now);
    g.returned("a", vec![(key("t", 0), 3)], now).unwrap();
    g.register("a", "g2", &topics(&[("t", 1)]), now);
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
    assert!(g.register("a", "grp", &many, now).is_empty());
    assert!(g.register("b", "grp", &many, now).is_empty());
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
    assert_eq!(g.register("c", "grp", &fresh, now), vec!["new"]);
}

#[test]
fn a_poll_of_an_old_session_that_answers_late_records_nothing() {
    let now = t0();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    g.register("a", "grp", &topics(&[("t", 1)]), now);
    g.poll("a", now).unwrap();
    let old = g.session("a").unwrap();
    // The consumer crashed during that (long) poll and registered again before it answered.
    g.register("a", "grp", &topics(&[("t", 1)]), now);
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
