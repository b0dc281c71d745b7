//! The Rust client in cluster mode, against a real etcd and three brokers: a producer told of
//! one broker reads the cluster's map and sends each keyed batch straight to its partition's
//! leader (so it keeps producing to the other brokers' partitions while the broker it was
//! told of is paused), and spreads keyless batches over every broker.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{all_led, all_up, leaders, topic_layout, wait_views};
use common::consumer::ConsumerClient;
use common::etcd::Etcd;
use common::{runtime, Broker};
use shardlog_client::{Admin, Producer, ProducerConfig};

fn signal(b: &Broker, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(b.pid() as i32, sig) }, 0);
}

/// The bodies broker `b` stores in partition `j` of `topic` (a FETCH reads its own log).
fn stored(b: &Broker, topic: &str, j: u32) -> Vec<String> {
    ConsumerClient::connect(b.framed)
        .fetch_all(topic, j)
        .into_iter()
        .flat_map(|it| it.records)
        .map(|(_, _, body)| String::from_utf8(body).expect("UTF-8"))
        .collect()
}

#[test]
fn a_producer_routes_keyed_batches_to_leaders_and_keyless_ones_over_every_broker() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers: Vec<Broker> = (1..=3)
        .map(|id| {
            let mut b = etcd.broker(id);
            b.spawn();
            b
        })
        .collect();
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    let rt = runtime();
    let first = &brokers[0];
    rt.block_on(Admin::new(first.http.to_string()).create_topic("routed", Some(6)))
        .expect("create");
    let views = wait_views(&all, "the topic's leaders everywhere", all_led(6));
    let (layout, leader) = (
        topic_layout(&views[0]["topics"][0]),
        leaders(&views[0]["topics"][0]),
    );
    // Keys whose partitions brokers 2 and 3 lead, several per partition.
    let keys: Vec<String> = (0..2000)
        .map(|i| format!("key-{i}"))
        .filter(|k| leader[layout.partition_of_key(k.as_bytes()) as usize] != 1)
        .take(40)
        .collect();
    assert!(keys.len() == 40, "brokers 2 and 3 lead nothing: {leader:?}");

    // Told only of broker 1, with a request timeout short enough that a frame sent to a paused
    // broker 1 would fail the test rather than wait for it.
    let mut config = ProducerConfig::new(first.framed.to_string());
    config.admin = Some(first.http.to_string());
    config.request_timeout = Duration::from_secs(5);
    config.retries = 0;
    let producer = Producer::new(config).expect("producer");
    // The first keyed send reads the layout and the map (broker 1 still running).
    rt.block_on(async {
        let d = producer
            .send(
                "routed",
                Some(keys[0].as_bytes()),
                format!("{}|warm", keys[0]),
            )
            .await
            .expect("send");
        d.await.expect("the first message is stored");
    });

    signal(first, libc::SIGSTOP);
    let sent: Vec<(String, String)> = (0..400)
        .map(|i| {
            let key = keys[i % keys.len()].clone();
            let body = format!("{key}|{}", i / keys.len());
            (key, body)
        })
        .collect();
    let outcome = rt.block_on(async {
        let mut deliveries = Vec::new();
        for (key, body) in &sent {
            let d = producer.send("routed", Some(key.as_bytes()), body.clone());
            deliveries.push(d.await.expect("send"));
        }
        let mut failed = Vec::new();
        for d in deliveries {
            if let Err(e) = d.await {
                failed.push(e.to_string());
            }
        }
        failed
    });
    signal(first, libc::SIGCONT);
    assert!(
        outcome.is_empty(),
        "{} of {} keyed messages for brokers 2 and 3 failed while broker 1 was paused: {:?}",
        outcome.len(),
        sent.len(),
        &outcome[..outcome.len().min(3)]
    );

    // Every message is stored once by its partition's leader, in order per key.
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (j, &l) in leader.iter().enumerate() {
        for body in stored(&brokers[l as usize - 1], "routed", j as u32) {
            let key = body.split('|').next().unwrap().to_string();
            by_key.entry(key).or_default().push(body);
        }
    }
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    expected
        .entry(keys[0].clone())
        .or_default()
        .push(format!("{}|warm", keys[0]));
    for (key, body) in &sent {
        expected.entry(key.clone()).or_default().push(body.clone());
    }
    assert_eq!(by_key, expected);

    // Keyless batches go to every broker in turn once broker 1 is back up.
    wait_views(&all, "broker 1 up again", |v| {
        all_up(&[1, 2, 3])(v) && v["holds_lease"] == true
    });
    rt.block_on(async {
        for round in 0..60 {
            let mut deliveries = Vec::new();
            for i in 0..10 {
                let d = producer.send("routed", None, format!("keyless|{round}-{i}"));
                deliveries.push(d.await.expect("send"));
            }
            producer.flush().await;
            for d in deliveries {
                d.await.expect("keyless stored");
            }
        }
    });
    for (id, b) in brokers.iter().enumerate() {
        let keyless: usize = (0..6u32)
            .filter(|&j| leader[j as usize] == id as u64 + 1)
            .map(|j| {
                stored(b, "routed", j)
                    .iter()
                    .filter(|body| body.starts_with("keyless|"))
                    .count()
            })
            .sum();
        assert!(
            keyless > 0,
            "broker {} stored no keyless message (leaders {leader:?})",
            id + 1
        );
    }
}
