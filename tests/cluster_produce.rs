//! Cluster mode's produce path against a real etcd: a framed PRODUCE (or a REST produce)
//! reaching a broker that does not lead the key's partition is forwarded to the leader, so
//! every acknowledged message is stored once, by the broker etcd names the partition's leader,
//! in order per key.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::cluster::{all_up, three_brokers, wait_views};
use common::consumer::{produce_keyed, ConsumerClient};
use common::etcd::Etcd;
use common::framed::FramedProducer;
use common::http::HttpClient;
use common::Broker;
use shardlog::wire::ring::TopicLayout;

/// What broker `b` stores of `topic`: (partition index, key, body) per record, in partition
/// order, read by FETCH from each of its partitions (a FETCH reads the broker's own log; a
/// group's poll would also read the partitions other brokers lead).
fn stored(b: &Broker, topic: &str, layout: &TopicLayout) -> Vec<(u32, String, String)> {
    let mut c = ConsumerClient::connect(b.framed);
    (0..layout.partitions())
        .flat_map(|j| {
            c.fetch_all(topic, j)
                .into_iter()
                .flat_map(|it| it.records)
                .map(move |(_, _, body)| {
                    let body = String::from_utf8(body).expect("UTF-8");
                    let key = body.split('|').nth(1).expect("tag|key|seq").to_string();
                    (j, key, body)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn keyed_produce_on_every_broker_is_stored_once_by_the_partition_leader_in_order() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    // The topic is created by the first STARTUP (auto-create) from etcd's layout.
    let mut acked = Vec::new();
    for (i, b) in brokers.iter().enumerate() {
        acked.extend(produce_keyed(
            b.framed,
            "events",
            300,
            20,
            &format!("via{}", i + 1),
        ));
    }
    // And REST, keyed, through every broker too.
    for (i, b) in brokers.iter().enumerate() {
        let mut http = HttpClient::connect(b.http);
        for seq in 0..40 {
            let key = format!("key-{}", seq % 10);
            let body = format!("rest{}|{key}|{}", i + 1, seq / 10);
            let r = http.produce("events", Some(&key), "application/json", body.as_bytes());
            assert_eq!(r.status, 200, "{}", r.text());
            acked.push((key, body));
        }
    }
    let views = wait_views(&all, "the topic everywhere", |v| {
        v["topics"].as_array().is_some_and(|t| t.len() == 1)
    });
    let topic = &views[0]["topics"][0];
    let layout = TopicLayout {
        gen: 1,
        token_ranges: topic["token_ranges"].as_u64().unwrap() as u32,
        ranges_per_token_range: topic["ranges_per_token_range"].as_u64().unwrap() as u32,
    };
    assert_eq!(layout.partitions(), 12);
    let leader: Vec<u64> = topic["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["leader"].as_u64().unwrap())
        .collect();
    // Every record is on the broker that leads its key's partition, in that partition.
    let mut found: HashMap<String, usize> = HashMap::new();
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, b) in brokers.iter().enumerate() {
        for (j, key, body) in stored(b, "events", &layout) {
            assert_eq!(
                leader[j as usize],
                i as u64 + 1,
                "{body} on broker {}",
                i + 1
            );
            assert_eq!(layout.partition_of_key(key.as_bytes()), j, "{body}");
            *found.entry(body.clone()).or_default() += 1;
            order.entry(key).or_default().push(body);
        }
    }
    // Once each, and nothing that was not acknowledged.
    assert_eq!(found.len(), acked.len());
    assert!(acked.iter().all(|(_, body)| found.get(body) == Some(&1)));
    // In order per key and producer.
    for bodies in order.values() {
        let mut last: HashMap<&str, usize> = HashMap::new();
        for body in bodies {
            let mut parts = body.split('|');
            let (tag, _, seq) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
            let seq: usize = seq.parse().unwrap();
            if let Some(prev) = last.insert(tag, seq) {
                assert!(seq > prev, "{body} after seq {prev}");
            }
        }
    }
}

#[test]
fn a_partition_whose_leader_is_down_answers_a_retryable_error() {
    let Some(etcd) = Etcd::start() else { return };
    let mut brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    let mut p = FramedProducer::startup(brokers[0].framed, "orders");
    // A key for every partition, found by trying keys against the layout.
    let layout = TopicLayout::new(3, 4);
    let key_for = |j: u32| {
        (0..)
            .map(|i| format!("k{i}"))
            .find(|k| layout.partition_of_key(k.as_bytes()) == j)
            .unwrap()
    };
    for j in 0..12 {
        p.produce(key_for(j).as_bytes(), &[b"before"])
            .expect("stored");
    }
    brokers[2].kill9();
    wait_views(&[&brokers[0]], "broker 3 down", |v| {
        v["brokers"][2]["state"] == "down"
    });
    // Partitions 8..12 are broker 3's (token ranges in broker order): refused, retryably.
    for j in 0..12 {
        let answer = p.produce(key_for(j).as_bytes(), &[b"after"]);
        if j < 8 {
            answer.expect("a live leader stores it");
        } else {
            let (code, message) = answer.expect_err("its leader is down");
            assert_eq!(
                code,
                shardlog::wire::ErrorCode::Unavailable as u8,
                "{message}"
            );
            assert!(
                message.contains("led by broker 3, which is down"),
                "{message}"
            );
        }
    }
}
