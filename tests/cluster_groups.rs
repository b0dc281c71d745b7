//! Consumer groups in cluster mode against a real etcd and three brokers: a poll gathers the
//! stored chunks of every partition from its leader and sends them as stored; committed
//! offsets live in etcd, so a group resumes from them on another broker after the one it used
//! is killed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::cluster::{all_up, create_topic, three_brokers, wait_views};
use common::consumer::{bodies, produce_keyed, ConsumerClient, Item};
use common::etcd::Etcd;
use common::http::HttpClient;
use common::Broker;
use shardlog::wire::consumer::StartPolicy;

/// Produces through every broker; returns every acknowledged (key, body).
/// `round` tells rounds apart (each round counts its keys' messages from 0).
fn produce_everywhere(
    brokers: &[Broker],
    topic: &str,
    n: usize,
    round: u32,
) -> Vec<(String, String)> {
    brokers
        .iter()
        .enumerate()
        .flat_map(|(i, b)| produce_keyed(b.framed, topic, n, 12, &format!("r{round}via{}", i + 1)))
        .collect()
}

/// Every acknowledged body read exactly once, and per key and producer in order.
fn check_once_in_order(acked: &[(String, String)], read: &[String]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for b in read {
        *seen.entry(b).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read more than once: {twice:?}");
    let missing: Vec<_> = acked
        .iter()
        .filter(|(_, b)| !seen.contains_key(b.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged never read",
        missing.len()
    );
    assert_eq!(seen.len(), acked.len(), "read what was not acknowledged");
    let mut last: BTreeMap<(String, String), usize> = BTreeMap::new();
    for b in read {
        let mut parts = b.split('|');
        let (tag, key) = (parts.next().unwrap(), parts.next().unwrap());
        let seq: usize = parts.next().unwrap().parse().unwrap();
        if let Some(prev) = last.insert((tag.into(), key.into()), seq) {
            assert!(seq > prev, "{b} after seq {prev}");
        }
    }
}

/// The partition index of `item` in a topic of `partitions` partitions on one token range
/// each (the layout of an explicit count that is not a multiple of the shards).
fn partition_of(item: &Item, layouts: &shardlog::wire::ring::TopicLayout) -> u32 {
    (0..layouts.partitions())
        .find(|&j| {
            let id = layouts.partition_id(j);
            id.token == item.token && id.range_index == item.range_index
        })
        .expect("a partition of the layout")
}

#[test]
fn a_group_on_one_broker_reads_what_every_leader_stored_once_in_order_and_as_stored() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    create_topic(&brokers[0], "events", 6);
    let acked = produce_everywhere(&brokers, "events", 300, 1);

    let mut c = ConsumerClient::connect(brokers[1].framed);
    c.register("c1", "g", &["events"], StartPolicy::Earliest)
        .expect("register");
    let mut items = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while bodies(&items).len() < acked.len() {
        assert!(Instant::now() < deadline, "never read everything");
        items.extend(c.poll("c1", Some(1000)).expect("poll"));
    }
    assert!(c.poll("c1", None).expect("poll").is_empty());
    check_once_in_order(&acked, &bodies(&items));

    // Each item is the leader's stored chunk, byte for byte.
    let layout = shardlog::wire::ring::TopicLayout {
        gen: 1,
        token_ranges: 3,
        ranges_per_token_range: 2,
    };
    let mut stored: HashMap<(u32, i64), Vec<u8>> = HashMap::new();
    for b in &brokers {
        let mut f = ConsumerClient::connect(b.framed);
        for j in 0..layout.partitions() {
            // Each broker's own copy of the partitions it leads (the others refuse).
            for it in f.try_fetch_all_local("events", j).unwrap_or_default() {
                stored.insert((j, it.offset), it.payload);
            }
        }
    }
    for it in &items {
        let j = partition_of(it, &layout);
        assert_eq!(
            stored.get(&(j, it.offset)),
            Some(&it.payload),
            "partition {j} offset {}",
            it.offset
        );
    }
}

#[test]
fn committed_offsets_survive_kill_9_of_the_broker_the_group_used() {
    let Some(etcd) = Etcd::start() else { return };
    let mut brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    create_topic(&brokers[0], "orders", 6);
    let mut acked = produce_everywhere(&brokers, "orders", 100, 1);

    // All of it through broker 3, committed (acknowledged once etcd has it).
    let mut read = Vec::new();
    let mut c = ConsumerClient::connect(brokers[2].framed);
    c.register("c1", "g", &["orders"], StartPolicy::Earliest)
        .expect("register");
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.len() < acked.len() {
        assert!(Instant::now() < deadline, "never read the first round");
        read.extend(bodies(&c.poll("c1", Some(500)).expect("poll")));
    }
    c.commit("c1").expect("commit");
    // More, which the group has not read.
    acked.extend(produce_everywhere(&brokers, "orders", 100, 2));
    drop(c);
    brokers[2].kill9();

    // The group resumes on broker 1 from the committed offsets: nothing read twice, nothing
    // lost. Broker 3's partitions are unavailable until it is back.
    // If broker 3 coordinated the group, REGISTER is refused (retryably) until its lease
    // expires and the group moves.
    let mut c = ConsumerClient::connect(brokers[0].framed);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match c.register("c2", "g", &["orders"], StartPolicy::Earliest) {
            Ok(()) => break,
            Err((6, why)) => {
                assert!(Instant::now() < deadline, "never registered: {why}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(other) => panic!("register on another broker: {other:?}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut restarted = false;
    let mut refused = 0;
    while read.len() < acked.len() {
        assert!(Instant::now() < deadline, "never read everything");
        // Each poll is committed before it counts as read: when broker 3 is back, the group
        // moves back to it (the coordinator the hash prefers) and c2 registers there again,
        // resuming from the last commit.
        let polled = c.poll("c2", Some(500)).and_then(|items| {
            if !items.is_empty() {
                c.commit("c2")?;
            }
            Ok(items)
        });
        match polled {
            Ok(items) => read.extend(bodies(&items)),
            Err((7, _)) => {
                let _ = c.register("c2", "g", &["orders"], StartPolicy::Earliest);
            }
            Err(_) => refused += 1,
        }
        if !restarted && (refused > 0 || read.len() * 3 > acked.len() * 2) {
            brokers[2].restart();
            restarted = true;
        }
    }
    assert!(c.poll("c2", None).expect("poll").is_empty());
    check_once_in_order(&acked, &read);
}

/// A new group that starts at `latest` (or at a time) starts every partition where its leader
/// says, not where the coordinator's own copy of the log ends: it reads only what was
/// produced after it registered (or at and after the time).
#[test]
fn a_new_group_at_latest_or_at_a_time_starts_each_partition_at_its_leader() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    create_topic(&brokers[0], "late", 6);
    produce_everywhere(&brokers, "late", 60, 0);
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    std::thread::sleep(Duration::from_millis(50));
    let middle = now_us();
    std::thread::sleep(Duration::from_millis(50));
    let second = produce_everywhere(&brokers, "late", 60, 1);

    // At latest, registered now on each broker in turn (a group each, whoever coordinates it).
    let mut latest = Vec::new();
    for (i, b) in brokers.iter().enumerate() {
        let mut c = ConsumerClient::connect(b.framed);
        let (id, group) = (format!("l{i}"), format!("latest{i}"));
        c.register(&id, &group, &["late"], StartPolicy::Latest)
            .expect("register");
        latest.push((c, id));
    }
    let third = produce_everywhere(&brokers, "late", 30, 2);
    for (c, id) in &mut latest {
        let read = bodies(&common::consumer::drain(c, id));
        check_once_in_order(&third, &read);
        assert_eq!(read.len(), third.len(), "only what came after: {read:?}");
    }

    // At a time between the first two rounds, by REST: the second and third rounds.
    let mut http = HttpClient::connect(brokers[1].http);
    let target = format!(
        "/v1/consumer/register?consumerId=t&group=timed&topic=late&startTime={}",
        middle / 1000
    );
    let r = http.request("PUT", &target, &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut read = Vec::new();
    loop {
        let items = http.poll("t", None);
        if items.is_empty() {
            break;
        }
        read.extend(bodies(&items));
    }
    let mut want: Vec<(String, String)> = second;
    want.extend(third);
    check_once_in_order(&want, &read);
    assert!(
        read.iter().all(|b| !b.starts_with("r0")),
        "a record older than the start time was read"
    );
}
