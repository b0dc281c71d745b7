//! Rebalancing as the group sees it: invariants after random joins and leaves, how few
//! partitions move, and what one registration costs in a large group (counted, not timed).

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn keys(g: &Groups, id: &str) -> Vec<PartitionKey> {
    g.assignment(id).into_iter().flatten().cloned().collect()
}

/// Checks the invariants of `super::assign` for one group: every partition of a subscribed
/// topic owned exactly once, by a subscriber; per topic, counts within one; members with the
/// same subscriptions within one in total.
fn check(g: &Groups, members: &BTreeMap<String, Vec<(String, u32)>>) {
    let mut owner: BTreeMap<PartitionKey, &str> = BTreeMap::new();
    let mut per_topic: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut by_class: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for (id, topics) in members {
        let mine = keys(g, id);
        for (t, n) in topics {
            counts.insert(t, *n);
            let c = mine.iter().filter(|k| &k.0 == t).count();
            per_topic.entry(t).or_default().push(c);
        }
        let class: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
        by_class.entry(class).or_default().push(mine.len());
        for k in mine {
            assert!(topics.iter().any(|(t, _)| *t == k.0), "{id} owns {k:?}");
            assert!(owner.insert(k.clone(), id).is_none(), "{k:?} owned twice");
        }
    }
    for (t, n) in counts {
        for j in 0..n {
            assert!(owner.contains_key(&(t.to_string(), j)), "{t}/{j} unowned");
        }
    }
    let spread = |v: &Vec<usize>| v.iter().max().unwrap() - v.iter().min().unwrap();
    for (t, v) in &per_topic {
        assert!(spread(v) <= 1, "topic {t}: {v:?}");
    }
    for (c, v) in &by_class {
        assert!(spread(v) <= 1, "class {c:?}: {v:?}");
    }
}

#[test]
fn random_joins_and_leaves_keep_the_invariants_and_move_little() {
    let now = Instant::now();
    let catalog = [("a", 8u32), ("b", 3), ("c", 16), ("d", 1)];
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
        let mut members: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
        for step in 0..150 {
            let before = g.work().moves;
            let leave = !members.is_empty() && rng.gen_bool(0.35);
            // The fewest moves the change needs: what a leaver owned; for a joiner (or a
            // change of topics), its share of each topic it now reads.
            let (lower, topics) = if leave {
                let i = rng.gen_range(0..members.len());
                let id = members.keys().nth(i).unwrap().clone();
                let owned = keys(&g, &id).len() as u64;
                let topics = members.remove(&id).unwrap().len() as u64;
                if rng.gen_bool(0.5) {
                    g.goodbye(&id, now).unwrap();
                } else {
                    g.remove(&id);
                }
                (owned, topics)
            } else {
                let id = format!("m{}", rng.gen_range(0..24));
                let mut topics: Vec<(String, u32)> = catalog
                    .iter()
                    .filter(|_| rng.gen_bool(0.5))
                    .map(|(t, n)| (t.to_string(), *n))
                    .collect();
                if topics.is_empty() || seed % 4 == 0 {
                    // Every fourth run: everyone reads the same topics (the usual case).
                    topics = vec![("a".into(), 8), ("b".into(), 3), ("c".into(), 16)];
                }
                let dropped = keys(&g, &id).len() as u64;
                members.insert(id.clone(), topics.clone());
                g.register(&id, "grp", &topics, now).unwrap();
                let share: u64 = topics
                    .iter()
                    .map(|(t, n)| {
                        let readers = members
                            .values()
                            .filter(|ts| ts.iter().any(|(x, _)| x == t))
                            .count() as u64;
                        u64::from(*n).div_ceil(readers)
                    })
                    .sum();
                (dropped + share, topics.len() as u64)
            };
            check(&g, &members);
            let moves = g.work().moves - before;
            assert!(
                moves <= 2 * lower + topics,
                "seed {seed} step {step}: {moves} moves, {lower} needed"
            );
        }
    }
}

/// A group of `n` members reading one topic of `partitions`, and the work of one more
/// registration and of its goodbye.
fn one_more(n: usize, partitions: u32) -> (Work, Work) {
    let now = Instant::now();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    let topics = vec![("t".to_string(), partitions)];
    for i in 0..n {
        g.register(&format!("m{i:05}"), "grp", &topics, now)
            .unwrap();
    }
    let before = g.work();
    g.register("late", "grp", &topics, now).unwrap();
    let joined = g.work();
    g.goodbye("late", now).unwrap();
    let left = g.work();
    let diff = |a: Work, b: Work| Work {
        moves: b.moves - a.moves,
        steps: b.steps - a.steps,
    };
    (diff(before, joined), diff(joined, left))
}

#[test]
fn one_registration_costs_what_it_moves_not_the_group_size() {
    // 8,000 members on 8 partitions: a newcomer takes nothing, and finding that out must not
    // visit the 8,000 (the full recompute did, on every join and leave).
    let (join, leave) = one_more(8000, 8);
    assert_eq!((join.moves, leave.moves), (0, 0));
    assert!(join.steps <= 32 && leave.steps <= 32, "{join:?} {leave:?}");
    // With partitions to share, a newcomer takes its share from the most loaded, and the
    // work follows the partitions moved, not the members.
    let small = one_more(100, 8000);
    let large = one_more(4000, 8000);
    for (join, leave) in [small, large] {
        assert!(join.moves <= 80 && leave.moves <= 80, "{join:?} {leave:?}");
        assert!(join.steps <= 16 * join.moves + 32, "{join:?}");
        assert!(leave.steps <= 16 * leave.moves + 32, "{leave:?}");
    }
    // Linear in total: 8,000 registrations, one at a time.
    let now = Instant::now();
    let mut g = Groups::new(Duration::from_secs(120), HashMap::new());
    let topics = vec![("t".to_string(), 64)];
    for i in 0..8000 {
        g.register(&format!("m{i:05}"), "grp", &topics, now)
            .unwrap();
    }
    let w = g.work();
    assert!(w.steps <= 16 * 8000, "{w:?}");
    let owned: BTreeSet<PartitionKey> = (0..8000)
        .flat_map(|i| keys(&g, &format!("m{i:05}")))
        .collect();
    assert_eq!(owned.len(), 64);
}
