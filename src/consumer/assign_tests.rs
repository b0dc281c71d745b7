use super::*;

fn topics(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn owned(a: &Assignment, id: &str) -> Vec<PartitionKey> {
    a.owned(id).into_iter().flatten().cloned().collect()
}

fn sizes(a: &Assignment, ids: &[&str]) -> Vec<usize> {
    ids.iter().map(|id| owned(a, id).len()).collect()
}

#[test]
fn partitions_spread_evenly_over_joiners() {
    let mut a = Assignment::default();
    for id in ["c", "a", "b"] {
        a.set(id, &topics(&[("t", 8)]));
    }
    let mut s = sizes(&a, &["a", "b", "c"]);
    s.sort();
    assert_eq!(s, vec![2, 3, 3]);
}

#[test]
fn every_partition_exactly_once_and_balanced() {
    for n in 1..8 {
        let mut a = Assignment::default();
        let ids: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        for id in &ids {
            a.set(id, &topics(&[("x", 8), ("y", 3)]));
        }
        let mut all: Vec<PartitionKey> = ids.iter().flat_map(|id| owned(&a, id)).collect();
        all.sort();
        assert_eq!(all.len(), 11);
        all.dedup();
        assert_eq!(all.len(), 11);
        let s: Vec<usize> = ids.iter().map(|id| owned(&a, id).len()).collect();
        assert!(
            s.iter().max().unwrap() - s.iter().min().unwrap() <= 1,
            "{s:?}"
        );
    }
}

#[test]
fn spare_partitions_of_several_topics_do_not_pile_up_on_one_member() {
    // Each topic alone is balanced whoever holds its one partition; the totals are evened
    // out within the class of members reading the same topics.
    let mut a = Assignment::default();
    let both = topics(&[("x", 1), ("y", 1)]);
    a.set("a", &both);
    a.set("b", &both);
    assert_eq!(sizes(&a, &["a", "b"]), vec![1, 1]);
}

#[test]
fn topics_go_only_to_their_subscribers() {
    let mut a = Assignment::default();
    a.set("a", &topics(&[("x", 2)]));
    a.set("b", &topics(&[("x", 2), ("y", 2)]));
    assert!(owned(&a, "a").iter().all(|(t, _)| t == "x"));
    assert_eq!(owned(&a, "b").iter().filter(|(t, _)| t == "y").count(), 2);
    assert_eq!(a.subscribers("x"), 2);
    assert_eq!(a.subscribers("z"), 0);
}

#[test]
fn a_joiner_takes_only_its_share_and_a_leaver_only_gives_its_own() {
    let mut a = Assignment::default();
    let t = topics(&[("t", 12)]);
    for id in ["a", "b", "c"] {
        a.set(id, &t);
    }
    let before: Vec<Vec<PartitionKey>> = ["a", "b", "c"].iter().map(|id| owned(&a, id)).collect();
    let moves = a.work().moves;
    a.set("d", &t);
    assert_eq!(a.work().moves - moves, 3);
    assert_eq!(owned(&a, "d").len(), 3);
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        // Each kept what it had, but for what it gave the newcomer.
        assert!(owned(&a, id).iter().all(|k| before[i].contains(k)));
        assert_eq!(owned(&a, id).len(), 3);
    }
    let kept: Vec<Vec<PartitionKey>> = ["a", "b", "c"].iter().map(|id| owned(&a, id)).collect();
    let moves = a.work().moves;
    a.remove("b");
    assert_eq!(a.work().moves - moves, 3);
    for (i, id) in ["a", "c"].iter().enumerate() {
        let now = owned(&a, id);
        assert!(kept[i * 2].iter().all(|k| now.contains(k)));
    }
    assert_eq!(sizes(&a, &["a", "c", "d"]).iter().sum::<usize>(), 12);
    assert!(a.owned("b").is_none());
}

#[test]
fn changing_topics_frees_the_dropped_and_takes_a_share_of_the_new() {
    let mut a = Assignment::default();
    a.set("a", &topics(&[("x", 4), ("y", 4)]));
    a.set("b", &topics(&[("x", 4)]));
    a.set("a", &topics(&[("y", 4)]));
    assert_eq!(owned(&a, "b").len(), 4);
    assert!(owned(&a, "a").iter().all(|(t, _)| t == "y"));
    assert!(!a.subscribes("a", "x"));
    // The last reader of a topic leaving forgets it; a later reader gets all of it.
    a.remove("a");
    assert_eq!(a.subscribers("y"), 0);
    a.set("c", &topics(&[("y", 4)]));
    assert_eq!(owned(&a, "c").len(), 4);
}

#[test]
fn a_new_partition_count_is_followed() {
    let mut a = Assignment::default();
    a.set("a", &topics(&[("t", 2)]));
    a.set("b", &topics(&[("t", 6)]));
    assert_eq!(sizes(&a, &["a", "b"]), vec![3, 3]);
    a.set("a", &topics(&[("t", 3)]));
    let all: Vec<PartitionKey> = ["a", "b"].iter().flat_map(|id| owned(&a, id)).collect();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|(_, j)| *j < 3));
    assert!(a.owns("a", &all.iter().find(|k| a.owns("a", k)).unwrap().clone()));
}

#[test]
fn the_same_history_gives_the_same_assignment() {
    let run = || {
        let mut a = Assignment::default();
        for (i, id) in ["q", "w", "e", "r"].iter().enumerate() {
            a.set(id, &topics(&[("x", 7), ("y", 2 + i as u32)]));
        }
        a.remove("w");
        ["q", "e", "r"].map(|id| owned(&a, id))
    };
    assert_eq!(run(), run());
}
