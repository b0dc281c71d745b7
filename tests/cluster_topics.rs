//! Topic admin in cluster mode against a real etcd and three brokers: an explicit create
//! opens the topic on the broker asked with exactly etcd's layout; a consumer REGISTER
//! (REST or framed) on another broker takes the layout from etcd; a DELETE on any broker
//! removes the topic's keys from etcd and every broker drops its local data, so the name can
//! be created again with another layout.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{all_led, all_up, leaders, three_brokers, topic_layout, wait_views};
use common::consumer::ConsumerClient;
use common::etcd::Etcd;
use common::http::HttpClient;
use common::Broker;
use serde_json::Value;
use shardlog::wire::consumer::StartPolicy;

/// The partition count broker `b` holds `topic` with locally (`GET /v1/topics/{name}`
/// describes the broker's own topics), or `None` when it holds none.
fn local_partitions(b: &Broker, topic: &str) -> Option<usize> {
    let r = HttpClient::connect(b.http).request("GET", &format!("/v1/topics/{topic}"), &[], b"");
    match r.status {
        404 => None,
        200 => {
            let v: Value = serde_json::from_slice(&r.body).expect("JSON");
            Some(v["partitions"].as_array().expect("partitions").len())
        }
        s => panic!("GET /v1/topics/{topic}: {s} {}", r.text()),
    }
}

fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "never {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn topics_are_opened_with_etcds_layout_and_deleted_on_every_broker() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));

    // Created through broker 1: open there at once, with the count asked for (a broker's
    // own default would be 1 shard x 4 ranges = 4).
    let mut http1 = HttpClient::connect(brokers[0].http);
    let r = http1.request("POST", "/v1/topics/orders", &[], b"{\"partitions\": 5}");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(local_partitions(&brokers[0], "orders"), Some(5));
    assert_eq!(local_partitions(&brokers[1], "orders"), None);

    // A REST register on broker 2 and a framed one on broker 3 open it with etcd's layout.
    let mut http2 = HttpClient::connect(brokers[1].http);
    let r = http2.register("c2", "g", &["orders"], "startFromEarliest");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(local_partitions(&brokers[1], "orders"), Some(5));
    let mut framed3 = ConsumerClient::connect(brokers[2].framed);
    framed3
        .register("c3", "g3", &["orders"], StartPolicy::Earliest)
        .expect("register on broker 3");
    assert_eq!(local_partitions(&brokers[2], "orders"), Some(5));

    // Deleted through broker 2: gone from etcd, and every broker drops its files.
    let r = http2.request("DELETE", "/v1/topics/orders", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(v["deleted"], true);
    assert_eq!(v["partitions"], 5);
    wait_views(&all, "the topic gone from every view", |v| {
        v["topics"].as_array().is_some_and(|t| t.is_empty())
    });
    for b in &brokers {
        wait_until(
            &format!("{} dropping its files", b.data_dir.display()),
            || local_partitions(b, "orders").is_none() && !b.data_dir.join("orders").exists(),
        );
    }
    let r = http1.request("DELETE", "/v1/topics/orders", &[], b"");
    assert_eq!(r.status, 404, "{}", r.text());

    // The name can be created again with another layout, and every broker takes the new one.
    let mut http3 = HttpClient::connect(brokers[2].http);
    let r = http3.request("POST", "/v1/topics/orders", &[], b"{\"partitions\": 2}");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = http1.register("c1", "g", &["orders"], "startFromEarliest");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(local_partitions(&brokers[0], "orders"), Some(2));
    assert_eq!(local_partitions(&brokers[2], "orders"), Some(2));
}

#[test]
fn without_auto_create_a_register_finds_the_topic_in_etcd_or_is_refused() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers: Vec<Broker> = (1..=2)
        .map(|id| {
            let mut b = etcd.broker(id);
            b.extra
                .extend(["--auto-create-topics".into(), "false".into()]);
            b.spawn();
            b
        })
        .collect();
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "both up", all_up(&[1, 2]));
    let mut c = ConsumerClient::connect(brokers[1].framed);
    // Nowhere yet: not created by a REGISTER.
    assert!(c
        .register("c", "g", &["audit"], StartPolicy::Earliest)
        .is_err());
    let mut http1 = HttpClient::connect(brokers[0].http);
    let r = http1.request("POST", "/v1/topics/audit", &[], b"{\"partitions\": 3}");
    assert_eq!(r.status, 201, "{}", r.text());
    let mut c = ConsumerClient::connect(brokers[1].framed);
    c.register("c", "g", &["audit"], StartPolicy::Earliest)
        .expect("register once etcd has it");
    assert_eq!(local_partitions(&brokers[1], "audit"), Some(3));
}

/// A broker that was down while a topic was deleted and created again (with the same layout)
/// must not serve its files of the deleted topic as the new one's: at start it finds that
/// etcd's topic is another life of the name and drops them.
#[test]
fn a_broker_down_while_its_topic_was_deleted_and_created_again_serves_none_of_the_old_records() {
    let Some(etcd) = Etcd::start() else { return };
    let mut brokers = three_brokers(&etcd);
    {
        let all: Vec<&Broker> = brokers.iter().collect();
        wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    }
    let mut http1 = HttpClient::connect(brokers[0].http);
    let r = http1.request("POST", "/v1/topics/reborn", &[], b"{\"partitions\": 3}");
    assert_eq!(r.status, 201, "{}", r.text());
    // Records in every partition, through broker 3 (forwarded to the leaders).
    common::consumer::produce_keyed(brokers[2].framed, "reborn", 60, 12, "old");
    let mut on3 = ConsumerClient::connect(brokers[2].framed);
    let old_on_3: usize = (0..3)
        .map(|j| {
            on3.try_fetch_all_local("reborn", j)
                .unwrap_or_default()
                .iter()
                .map(|i| i.records.len())
                .sum::<usize>()
        })
        .sum();
    assert!(old_on_3 > 0, "broker 3 leads no partition of 'reborn'");
    drop(on3);

    brokers[2].kill9();
    wait_views(&[&brokers[0], &brokers[1]], "broker 3 down", |v| {
        common::cluster::states(v).contains(&(3, "down".to_string()))
    });
    let r = http1.request("DELETE", "/v1/topics/reborn", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // Retryable (503) while broker 1 still drops its own files of the deleted topic (the
    // layout may be in etcd already: a retry then finds it, 200).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http1.request("POST", "/v1/topics/reborn", &[], b"{\"partitions\": 3}");
        if r.status == 201 || r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(Instant::now() < deadline, "{}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        brokers[2].data_dir.join("reborn").exists(),
        "broker 3 keeps its files while it is down"
    );

    brokers[2].spawn();
    // At start, before anything names the topic there, broker 3 has dropped its old files
    // (buried: the directory is gone at once, its files removed in the background).
    assert!(
        !brokers[2].data_dir.join("reborn").exists(),
        "broker 3 kept its files of the deleted topic"
    );
    {
        let all: Vec<&Broker> = brokers.iter().collect();
        wait_views(&all, "broker 3 back", all_up(&[1, 2, 3]));
    }
    // Every partition read through broker 3 holds nothing of the old topic: the new one is
    // empty.
    let mut on3 = ConsumerClient::connect(brokers[2].framed);
    for j in 0..3 {
        let items = on3.fetch_all("reborn", j);
        assert!(
            items.iter().all(|i| i.records.is_empty()),
            "partition {j} read on broker 3 has records of the deleted topic: {:?}",
            common::consumer::bodies(&items)
        );
    }
    // And new records are read back alone, through a group on broker 3.
    let acked = common::consumer::produce_keyed(brokers[2].framed, "reborn", 30, 6, "new");
    let mut group = ConsumerClient::connect(brokers[2].framed);
    group
        .register("c", "after", &["reborn"], StartPolicy::Earliest)
        .expect("register");
    let read = common::consumer::bodies(&common::consumer::drain(&mut group, "c"));
    let mut read_sorted = read.clone();
    read_sorted.sort();
    let mut want: Vec<String> = acked.into_iter().map(|(_, body)| body).collect();
    want.sort();
    assert_eq!(read_sorted, want, "only the new topic's records: {read:?}");
}

/// etcd takes at most 128 operations per transaction, so a topic of hundreds of partitions is
/// created in several; a creator that dies between them (a fail point aborts broker 1 right
/// after the first) leaves the rest to the next broker that finds the topic, and the topic
/// then works everywhere.
#[test]
fn a_topic_of_hundreds_of_partitions_is_completed_by_another_broker_when_its_creator_dies() {
    let Some(etcd) = Etcd::start() else { return };
    let mut brokers: Vec<Broker> = (1..=3)
        .map(|id| {
            let mut b = etcd.broker(id);
            if id == 1 {
                b.env.push((
                    "SHARDLOG_FAILPOINTS".into(),
                    "cluster.topic_create=panic".into(),
                ));
            }
            b.spawn();
            b
        })
        .collect();
    {
        let all: Vec<&Broker> = brokers.iter().collect();
        wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    }
    // Broker 1 writes the layout and the first partition records, then dies.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(brokers[0].http).expect("connect");
        let body = b"{\"partitions\": 300}";
        let head = format!(
            "POST /v1/topics/wide HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).expect("send");
        s.write_all(body).expect("send");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(
            answer.is_empty(),
            "broker 1 should have died creating 'wide': {}",
            String::from_utf8_lossy(&answer)
        );
    }
    brokers[0].wait_exit(Duration::from_secs(30));
    // Broker 2, asked for the topic, finds it half written and writes the rest.
    let mut http2 = HttpClient::connect(brokers[1].http);
    let r = http2.request("POST", "/v1/topics/wide", &[], b"{\"partitions\": 300}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"created\":false"), "{}", r.text());
    let views = wait_views(
        &[&brokers[1], &brokers[2]],
        "all 300 partitions led",
        all_led(300),
    );
    let indexes: Vec<u64> = views[0]["topics"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (0..300).collect::<Vec<u64>>());
    // Keyed produce through broker 3 lands and reads back in order (partitions broker 1
    // leads are unavailable while it is down: produce to the others' keys only).
    let (layout, leader) = (
        topic_layout(&views[0]["topics"][0]),
        leaders(&views[0]["topics"][0]),
    );
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| leader[layout.partition_of_key(k.as_bytes()) as usize] == 3)
        .unwrap();
    let j = layout.partition_of_key(key.as_bytes());
    let mut p = common::framed::FramedProducer::startup(brokers[2].framed, "wide");
    for i in 0..5 {
        p.produce(key.as_bytes(), &[format!("{key}|{i}").as_bytes()])
            .expect("stored");
    }
    let items = ConsumerClient::connect(brokers[2].framed).fetch_all("wide", j);
    assert_eq!(
        common::consumer::bodies(&items),
        (0..5).map(|i| format!("{key}|{i}")).collect::<Vec<_>>()
    );
    // Deleting it is still one transaction.
    let r = http2.request("DELETE", "/v1/topics/wide", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"partitions\":300"), "{}", r.text());
}
