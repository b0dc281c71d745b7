//! One coordinator per consumer group across the cluster, against a real etcd and three
//! brokers: two consumers of one group on two brokers share the partitions and read
//! everything once; when the group's coordinator (a third broker) is killed, the group moves,
//! both consumers go on, nothing acknowledged is lost and no acknowledged commit is undone.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{all_up, create_topic, three_brokers, wait_views};
use common::consumer::{bodies, produce_keyed, ConsumerClient, Item};
use common::etcd::Etcd;
use common::http::HttpClient;
use common::Broker;
use shardlog::cluster::group_link::coordinator_of;
use shardlog::wire::consumer::StartPolicy;
use shardlog::wire::ring::TopicLayout;
use shardlog::wire::OpCode;

/// The partition index of `item` in `layout`.
fn partition_of(item: &Item, layout: &TopicLayout) -> u32 {
    (0..layout.partitions())
        .find(|&j| {
            let id = layout.partition_id(j);
            id.token == item.token && id.range_index == item.range_index
        })
        .expect("a partition of the layout")
}

/// A group name that `coordinator` coordinates while brokers 1, 2, 3 are up.
fn group_coordinated_by(coordinator: u32) -> String {
    (0..)
        .map(|i| format!("g{i}"))
        .find(|g| coordinator_of(g, [1, 2, 3]) == Some(coordinator))
        .expect("some name")
}

#[test]
fn two_consumers_on_two_brokers_share_the_partitions_and_read_everything_once() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    let layout = create_topic(&brokers[0], "events", 6);
    let acked: Vec<(String, String)> = brokers
        .iter()
        .enumerate()
        .flat_map(|(i, b)| produce_keyed(b.framed, "events", 200, 24, &format!("via{}", i + 1)))
        .collect();

    // Whichever broker coordinates the group, the two consumers are on brokers 1 and 2.
    let group = group_coordinated_by(3);
    let mut c1 = ConsumerClient::connect(brokers[0].framed);
    let mut c2 = ConsumerClient::connect(brokers[1].framed);
    c1.register("c1", &group, &["events"], StartPolicy::Earliest)
        .expect("register c1");
    c2.register("c2", &group, &["events"], StartPolicy::Earliest)
        .expect("register c2");
    let mut read: [Vec<Item>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.iter().map(|r| bodies(r).len()).sum::<usize>() < acked.len() {
        assert!(Instant::now() < deadline, "never read everything");
        read[0].extend(c1.poll("c1", Some(200)).expect("poll c1"));
        read[1].extend(c2.poll("c2", Some(200)).expect("poll c2"));
    }
    assert!(c1.poll("c1", None).expect("poll").is_empty());
    assert!(c2.poll("c2", None).expect("poll").is_empty());

    let parts = |items: &[Item]| -> BTreeSet<u32> {
        items.iter().map(|it| partition_of(it, &layout)).collect()
    };
    let (p1, p2) = (parts(&read[0]), parts(&read[1]));
    assert!(p1.is_disjoint(&p2), "both read {:?}", p1.intersection(&p2));
    let union: BTreeSet<u32> = p1.union(&p2).copied().collect();
    assert_eq!(union, (0..6).collect(), "partitions read");
    assert_eq!((p1.len(), p2.len()), (3, 3), "{p1:?} {p2:?}");

    let mut seen: HashMap<String, usize> = HashMap::new();
    for b in bodies(&read[0]).into_iter().chain(bodies(&read[1])) {
        *seen.entry(b).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read more than once: {twice:?}");
    assert!(acked.iter().all(|(_, b)| seen.contains_key(b)), "lost");
    assert_eq!(seen.len(), acked.len());

    // The group operations between brokers are refused on an ordinary connection.
    let (op, body) = c1.request(OpCode::Group, &[2, 1, b'g', 2, b'c', b'1']);
    assert_eq!(
        (op, body[0]),
        (OpCode::Error, 4),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

/// A consumer of the failover test: its connection, what it read, where it stands.
struct Member {
    id: &'static str,
    conn: ConsumerClient,
    /// Partitions read after the group settled.
    settled_parts: BTreeSet<u32>,
    /// Registrations so far.
    registrations: usize,
    /// Polls answered since the last registration of any member.
    polls_since: usize,
}

#[test]
fn killing_the_coordinator_moves_the_group_and_both_consumers_go_on() {
    let Some(etcd) = Etcd::start() else { return };
    // The topic lives on brokers 1 and 2 only: broker 3 is only the group's coordinator, so
    // killing it loses no partition.
    let mut brokers: Vec<Broker> = (1..=3).map(|id| etcd.broker(id)).collect();
    brokers[0].spawn();
    brokers[1].spawn();
    wait_views(
        &[&brokers[0], &brokers[1]],
        "brokers 1 and 2 up",
        all_up(&[1, 2]),
    );
    let layout = create_topic(&brokers[0], "orders", 4);
    brokers[2].spawn();
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    let group = group_coordinated_by(3);

    // Produce through brokers 1 and 2 until told to stop.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let addrs = [brokers[0].framed, brokers[1].framed];
        std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let addr = addrs[round % 2];
                let got = produce_keyed(addr, "orders", 40, 8, &format!("r{round}"));
                acked.lock().unwrap().extend(got);
                round += 1;
            }
        })
    };

    let mut members = [
        Member {
            id: "c1",
            conn: ConsumerClient::connect(brokers[0].framed),
            settled_parts: BTreeSet::new(),
            registrations: 0,
            polls_since: 0,
        },
        Member {
            id: "c2",
            conn: ConsumerClient::connect(brokers[1].framed),
            settled_parts: BTreeSet::new(),
            registrations: 0,
            polls_since: 0,
        },
    ];
    for m in &mut members {
        m.conn
            .register(m.id, &group, &["orders"], StartPolicy::Earliest)
            .expect("register");
        m.registrations = 1;
    }
    // Per partition: the position of the last acknowledged COMMIT.
    let mut committed: BTreeMap<u32, i64> = BTreeMap::new();
    let mut read: Vec<String> = Vec::new();
    let mut killed = false;
    let mut stopped_at: Option<usize> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "never settled and read everything"
        );
        let mut registered_now = false;
        for i in 0..2 {
            let m = &mut members[i];
            let before = committed.clone();
            let items = match m.conn.poll(m.id, Some(200)) {
                Ok(items) => items,
                Err((7, _)) => {
                    // The coordinator moved (or forgot it): register again.
                    if m.conn
                        .register(m.id, &group, &["orders"], StartPolicy::Earliest)
                        .is_ok()
                    {
                        m.registrations += 1;
                        registered_now = true;
                    }
                    continue;
                }
                Err((6, _)) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                Err(other) => panic!("{} poll: {other:?}", m.id),
            };
            m.polls_since += 1;
            let mut ends: BTreeMap<u32, i64> = BTreeMap::new();
            for it in &items {
                let p = partition_of(it, &layout);
                // Never a record before the last acknowledged commit.
                let floor = before.get(&p).copied().unwrap_or(0);
                assert!(
                    it.offset >= floor,
                    "{} read partition {p} from {} after a commit at {floor}",
                    m.id,
                    it.offset
                );
                let end = ends.entry(p).or_default();
                *end = (*end).max(it.offset + it.records.len() as i64);
            }
            let settled = killed && members_settled(&members);
            let m = &mut members[i];
            if settled {
                m.settled_parts
                    .extend(items.iter().map(|it| partition_of(it, &layout)));
            }
            read.extend(bodies(&items));
            if !items.is_empty() && m.conn.commit(m.id).is_ok() {
                for (p, end) in ends {
                    let c = committed.entry(p).or_default();
                    *c = (*c).max(end);
                }
            }
        }
        if registered_now {
            for m in &mut members {
                m.polls_since = 0;
            }
        }
        if !killed && read.len() >= 200 {
            brokers[2].kill9();
            killed = true;
        }
        let both_moved = members.iter().all(|m| m.registrations >= 2);
        if killed && both_moved && members_settled(&members) && stopped_at.is_none() {
            // Let the producer run on a little after the move, then stop it.
            if members.iter().all(|m| m.polls_since >= 5) {
                stop.store(true, Ordering::Relaxed);
                stopped_at = Some(read.len());
            }
        }
        if stopped_at.is_some() && producer.is_finished() {
            let acked = acked.lock().unwrap();
            let seen: BTreeSet<&str> = read.iter().map(String::as_str).collect();
            if acked.iter().all(|(_, b)| seen.contains(b.as_str())) {
                break;
            }
        }
    }
    producer.join().expect("producer");
    let (p1, p2) = (&members[0].settled_parts, &members[1].settled_parts);
    assert!(
        p1.is_disjoint(p2),
        "after the move settled both read {:?}",
        p1.intersection(p2)
    );
    let union: BTreeSet<u32> = p1.union(p2).copied().collect();
    assert_eq!(union, (0..4).collect(), "partitions read after the move");
}

/// Both members have had a poll answered since the last registration of either.
fn members_settled(members: &[Member; 2]) -> bool {
    members.iter().all(|m| m.polls_since >= 1)
}

/// Polls and commits as `id` of `group` until every body of `want` has been read, registering
/// again when told to (code 7) and waiting while refused (code 6). Asserts that no poll
/// returns a record before the last acknowledged COMMIT of its partition (`committed`).
fn read_until(
    c: &mut ConsumerClient,
    (id, group): (&str, &str),
    layout: &TopicLayout,
    committed: &mut BTreeMap<u32, i64>,
    want: &[(String, String)],
) -> usize {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut registrations = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.iter().all(|(_, b)| seen.contains(b)) {
        assert!(Instant::now() < deadline, "never read everything");
        let items = match c.poll(id, Some(200)) {
            Ok(items) => items,
            Err((7, _)) => {
                if c.register(id, group, &["orders"], StartPolicy::Earliest)
                    .is_ok()
                {
                    registrations += 1;
                }
                continue;
            }
            Err((6, _)) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(other) => panic!("poll: {other:?}"),
        };
        let mut ends: BTreeMap<u32, i64> = BTreeMap::new();
        for it in &items {
            let p = partition_of(it, layout);
            let floor = committed.get(&p).copied().unwrap_or(0);
            assert!(
                it.offset >= floor,
                "read partition {p} from {} after a commit at {floor}",
                it.offset
            );
            let end = ends.entry(p).or_default();
            *end = (*end).max(it.offset + it.records.len() as i64);
        }
        seen.extend(bodies(&items));
        if !items.is_empty() && c.commit(id).is_ok() {
            for (p, end) in ends {
                let c = committed.entry(p).or_default();
                *c = (*c).max(end);
            }
        }
    }
    registrations
}

#[test]
fn a_group_that_moves_away_and_back_resumes_from_etcd_not_from_stale_memory() {
    let Some(etcd) = Etcd::start() else { return };
    let mut brokers: Vec<Broker> = (1..=3).map(|id| etcd.broker(id)).collect();
    brokers[0].spawn();
    brokers[1].spawn();
    wait_views(
        &[&brokers[0], &brokers[1]],
        "brokers 1 and 2 up",
        all_up(&[1, 2]),
    );
    let layout = create_topic(&brokers[0], "orders", 4);
    // Broker 1 coordinates the group while 1 and 2 are up; broker 3 while all three are.
    let group = (0..)
        .map(|i| format!("g{i}"))
        .find(|g| coordinator_of(g, [1, 2]) == Some(1) && coordinator_of(g, [1, 2, 3]) == Some(3))
        .expect("some name");
    let mut committed = BTreeMap::new();
    let mut c = ConsumerClient::connect(brokers[1].framed);
    c.register("c1", &group, &["orders"], StartPolicy::Earliest)
        .expect("register");
    let first = produce_keyed(brokers[0].framed, "orders", 100, 8, "first");
    read_until(&mut c, ("c1", &group), &layout, &mut committed, &first);

    // Broker 3 comes up: the group moves to it, the consumer registers there and commits.
    brokers[2].spawn();
    wait_views(
        &[&brokers[0], &brokers[1]],
        "all three up",
        all_up(&[1, 2, 3]),
    );
    let second = produce_keyed(brokers[0].framed, "orders", 100, 8, "second");
    let moved = read_until(&mut c, ("c1", &group), &layout, &mut committed, &second);
    assert!(moved >= 1, "the consumer never registered at broker 3");

    // Broker 3 dies: the group is broker 1's again, which must not serve what it held
    // before (the first round's offsets) but etcd's.
    brokers[2].kill9();
    let third = produce_keyed(brokers[0].framed, "orders", 100, 8, "third");
    let back = read_until(&mut c, ("c1", &group), &layout, &mut committed, &third);
    assert!(back >= 1, "the consumer never registered at broker 1 again");
}

/// The admin API's group routes on any broker: a description and a reset are answered by
/// the group's coordinator (with each partition's end from its leader), and the list names
/// the group whichever broker is asked.
#[test]
fn any_broker_describes_lists_and_resets_a_group_its_coordinator_holds() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    create_topic(&brokers[0], "desc", 6);
    let mut produced = 0;
    for b in &brokers {
        produced += produce_keyed(b.framed, "desc", 40, 8, "d").len();
    }
    // Broker 3 coordinates the group; its consumer uses broker 1 and reads everything.
    let group = group_coordinated_by(3);
    let mut c = ConsumerClient::connect(brokers[0].framed);
    c.register("m1", &group, &["desc"], StartPolicy::Earliest)
        .expect("register");
    let read = common::consumer::drain(&mut c, "m1");
    assert_eq!(bodies(&read).len(), produced);
    c.commit("m1").expect("commit");

    for (i, b) in brokers.iter().enumerate() {
        let mut http = HttpClient::connect(b.http);
        let r = http.request("GET", &format!("/v1/groups/{group}"), &[], b"");
        assert_eq!(r.status, 200, "broker {}: {}", i + 1, r.text());
        let d: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(d["members"][0]["id"], "m1", "broker {}: {d}", i + 1);
        let parts = d["partitions"].as_array().expect("partitions");
        assert_eq!(parts.len(), 6, "broker {}: {d}", i + 1);
        let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<i64>().ok());
        let ends: i64 = parts.iter().filter_map(|p| number(&p["end"])).sum();
        let lags: i64 = parts.iter().filter_map(|p| number(&p["lag"])).sum();
        assert_eq!(
            ends,
            produced as i64,
            "each end at its leader, broker {}: {d}",
            i + 1
        );
        assert_eq!(lags, 0, "broker {}: {d}", i + 1);

        let r = http.request("GET", "/v1/groups", &[], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let list: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        let entry = list["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["name"] == group.as_str()))
            .unwrap_or_else(|| panic!("{group} not listed by broker {}: {list}", i + 1));
        assert_eq!(entry["members"], 1, "{list}");
    }

    // Reset through broker 2 once the group has no members: every partition back to 0.
    c.goodbye("m1").expect("goodbye");
    let mut http2 = HttpClient::connect(brokers[1].http);
    let r = http2.request(
        "POST",
        &format!("/v1/groups/{group}/reset?topic=desc&to=earliest"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http2.request("GET", &format!("/v1/groups/{group}"), &[], b"");
    let d: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert!(
        d["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .all(|p| p["committed"] == "0"),
        "{d}"
    );
    // The group reads everything again from broker 2.
    let mut again = ConsumerClient::connect(brokers[1].framed);
    again
        .register("m2", &group, &["desc"], StartPolicy::Latest)
        .expect("register");
    assert_eq!(
        bodies(&common::consumer::drain(&mut again, "m2")).len(),
        produced
    );
}
