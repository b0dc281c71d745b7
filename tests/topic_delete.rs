//! Deleting a topic against a real broker (`DELETE /v1/topics/{name}`): on two shards, a topic
//! written keyed and keyless and read by a group is gone from the list, from the data
//! directory (every shard's partitions) and from the group's offsets; the group's member is
//! told once on its next poll and keeps its other topics; a topic created again under the name
//! starts empty at offset 0 with its new layout, and a restart keeps the deleted one deleted.
//! Requests in flight on the topic — a FETCH and framed and REST polls waiting at the end of
//! a partition, a produce waiting for its chunk to be durable, a connection whose STARTUP
//! named the topic — get an error, never a hang or an acknowledgement. A crash after the
//! directory's rename is finished at the next start (tombstone removed, offsets dropped).
//! Unknown topics are 404, bad names 400; the Rust client's `Admin::delete_topic` says the
//! same.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::consumer::{drain, ConsumerClient};
use common::http::HttpClient;
use common::{runtime, Broker, Client, Response};
use serde_json::Value;
use shardlog::wire::consumer::StartPolicy;
use shardlog::wire::fetch::{FetchBody, FetchFrom};
use shardlog::wire::frame::OpCode;
use shardlog::wire::ErrorCode;
use shardlog_client::Admin;

const JSON: &str = "application/json";

fn get_json(http: &mut HttpClient, path: &str) -> Value {
    let r = http.request("GET", path, &[], b"");
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn delete(http: &mut HttpClient, topic: &str) -> common::http::Response {
    http.request("DELETE", &format!("/v1/topics/{topic}"), &[], b"")
}

/// The topics the broker lists.
fn listed(http: &mut HttpClient) -> Vec<String> {
    get_json(http, "/v1/topics")["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// The topics a group has committed offsets or owners for.
fn group_topics(http: &mut HttpClient, group: &str) -> Vec<String> {
    let d = get_json(http, &format!("/v1/groups/{group}"));
    let mut topics: Vec<String> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["topic"].as_str().unwrap().to_string())
        .collect();
    topics.dedup();
    topics
}

/// Entries of the data directory (names).
fn entries(data: &Path) -> Vec<String> {
    let mut all: Vec<String> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    all.sort();
    all
}

/// Waits, up to a generous deadline, until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_deleted_topic_is_gone_from_every_shard_and_every_group_and_comes_back_empty() {
    let mut broker = Broker::start_with(2, &["--ranges-per-shard", "2"]);
    let mut http = HttpClient::connect(broker.http);

    // Keyed over REST, keyless over the framed protocol (a partition of the connection's
    // shard), and another topic the group also reads.
    for i in 0..40 {
        let r = http.produce("orders", Some(&format!("k{i}")), JSON, b"{\"n\":1}");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let mut framed = Client::startup(broker.framed, "orders");
    for sid in 1..=5 {
        assert!(matches!(
            framed.produce(sid, b"", &[b"keyless"]),
            Response::Produced(_)
        ));
    }
    for i in 0..10 {
        let r = http.produce("other", Some(&format!("k{i}")), JSON, b"{}");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let d = get_json(&mut http, "/v1/topics/orders");
    let shards: std::collections::BTreeSet<u64> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["shard"].as_u64().unwrap())
        .collect();
    assert_eq!(shards.len(), 2, "both shards own partitions: {d}");

    // A group reads both topics and commits.
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("c1", "g", &["orders", "other"], StartPolicy::Earliest)
        .unwrap();
    let items = drain(&mut c, "c1");
    let records: usize = items.iter().map(|i| i.records.len()).sum();
    assert_eq!(records, 55);
    c.commit("c1").unwrap();
    assert_eq!(group_topics(&mut http, "g"), ["orders", "other"]);
    // A second group that only ever read the deleted topic, on disk only once it left.
    let mut c2 = ConsumerClient::connect(broker.framed);
    c2.register("solo", "only-orders", &["orders"], StartPolicy::Earliest)
        .unwrap();
    drain(&mut c2, "solo");
    c2.goodbye("solo").unwrap();
    assert!(broker
        .data_dir
        .join("@consumer_offsets/only-orders.offsets")
        .exists());
    // Another topic deleted before the restart below.
    let r = http.produce("gone", Some("k"), JSON, b"{}");
    assert_eq!(r.status, 200);

    let r = delete(&mut http, "orders");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(JSON));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"topic": "orders", "deleted": true, "partitions": 4,
            "groups": ["g", "only-orders"]})
    );

    // Gone from the list, the description, the data directory (both shards' partitions, the
    // layout, and the tombstone once its files are removed) and the groups.
    assert_eq!(listed(&mut http), ["gone", "other"]);
    let r = http.request("GET", "/v1/topics/orders", &[], b"");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(!broker.data_dir.join("orders").exists());
    wait_until("the tombstone is removed", || {
        !entries(&broker.data_dir)
            .iter()
            .any(|e| e.starts_with("@deleted"))
    });
    assert_eq!(group_topics(&mut http, "g"), ["other"]);
    assert!(!broker
        .data_dir
        .join("@consumer_offsets/only-orders.offsets")
        .exists());
    let r = http.request("GET", "/v1/groups/only-orders", &[], b"");
    assert_eq!(r.status, 404, "{}", r.text());

    // The member is told once, then keeps reading its other topic.
    let (code, message) = c.poll("c1", None).unwrap_err();
    assert_eq!(code, ErrorCode::NotFound as u8, "{message}");
    assert!(message.contains("'orders' was deleted"), "{message}");
    assert!(c.poll("c1", None).unwrap().is_empty());
    let r = http.produce("other", Some("k0"), JSON, b"{}");
    assert_eq!(r.status, 200);
    let items = c.poll("c1", Some(30_000)).unwrap();
    assert!(items.iter().all(|i| i.topic == "other"), "{items:?}");
    assert_eq!(items.iter().map(|i| i.records.len()).sum::<usize>(), 1);
    // The connection whose STARTUP named it is refused, not acknowledged.
    match framed.produce(6, b"", &[b"late"]) {
        Response::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::NotFound as u8, "{message}");
            assert!(message.contains("was deleted"), "{message}");
        }
        other => panic!("a produce to a deleted topic answered {other:?}"),
    }

    // Again: 404. Bad names: 400.
    let r = delete(&mut http, "orders");
    assert_eq!(r.status, 404, "{}", r.text());
    for bad in ["..", "a%2Fb", "%ff"] {
        let r = delete(&mut http, bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }

    // Created again with another layout: empty, from offset 0.
    let r = http.request("POST", "/v1/topics/orders", &[], b"{\"partitions\": 3}");
    assert_eq!(r.status, 201, "{}", r.text());
    let d = get_json(&mut http, "/v1/topics/orders");
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p["nextOffset"] == 0), "{d}");
    let r = http.produce("orders", Some("k1"), JSON, b"{\"fresh\":true}");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut c3 = ConsumerClient::connect(broker.framed);
    c3.register("c3", "g", &["orders"], StartPolicy::Earliest)
        .unwrap();
    let items = drain(&mut c3, "c3");
    let got: Vec<(i64, Vec<u8>)> = items
        .iter()
        .flat_map(|i| i.records.iter().map(|r| (r.0, r.2.clone())))
        .collect();
    assert_eq!(got, [(0, b"{\"fresh\":true}".to_vec())]);
    c3.goodbye("c3").unwrap();
    drop((c, c2, c3, framed));

    // A restart keeps deleted topics deleted.
    let r = delete(&mut http, "gone");
    assert_eq!(r.status, 200, "{}", r.text());
    drop(http);
    broker.restart();
    let mut http = HttpClient::connect(broker.http);
    assert_eq!(listed(&mut http), ["orders", "other"]);
    let d = get_json(&mut http, "/v1/topics/orders");
    let next: i64 = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nextOffset"].as_i64().unwrap())
        .sum();
    assert_eq!(next, 1, "{d}");
    assert!(!broker.data_dir.join("gone").exists());
}

#[test]
fn requests_waiting_on_a_deleted_topic_get_an_error() {
    let broker = Broker::start(2);
    let mut http = HttpClient::connect(broker.http);
    let r = http.request("POST", "/v1/topics/live", &[], b"{\"partitions\": 2}");
    assert_eq!(r.status, 201, "{}", r.text());
    let framed = broker.framed;

    // A FETCH waiting at the end of each partition (one per shard).
    let fetches: Vec<_> = (0..2u32)
        .map(|partition| {
            std::thread::spawn(move || {
                let mut c = ConsumerClient::connect(framed);
                let mut body = Vec::new();
                FetchBody {
                    topic: "live".into(),
                    partition,
                    from: FetchFrom::Offset(0),
                    max_bytes: 65536,
                    max_wait_ms: Some(60_000),
                }
                .encode(&mut body);
                c.request(OpCode::Fetch, &body)
            })
        })
        .collect();
    // A framed poll and a REST poll waiting for data.
    let mut c = ConsumerClient::connect(framed);
    c.register("f1", "fg", &["live"], StartPolicy::Earliest)
        .unwrap();
    let framed_poll = std::thread::spawn(move || c.poll("f1", Some(60_000)));
    let rest_addr = broker.http;
    let rest_poll = std::thread::spawn(move || {
        let mut h = HttpClient::connect(rest_addr);
        let r = h.register("r1", "rg", &["live"], "startFromEarliest");
        assert!(r.status < 300, "{}", r.text());
        h.poll_raw("r1", Some(60_000), None)
    });

    // Deleted once every wait is under way (the waits hold the partitions' logs open).
    let mut has_member = |group: &str| {
        let r = http.request("GET", &format!("/v1/groups/{group}"), &[], b"");
        r.status == 200
            && serde_json::from_slice::<Value>(&r.body).unwrap()["members"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
    };
    wait_until("the polls are waiting", || {
        has_member("rg") && has_member("fg")
    });
    std::thread::sleep(Duration::from_millis(300));
    let deleted = Instant::now();
    let r = delete(&mut http, "live");
    assert_eq!(r.status, 200, "{}", r.text());

    // Each wait ends with an error, woken by the deletion: not when its 60 s expire (then the
    // answer would come after the generous bound below, or the client's 60 s read timeout).
    for f in fetches {
        let (op, body) = f.join().unwrap();
        assert_eq!(op, OpCode::Error, "a FETCH answered {op:?}");
        let (code, message) = shardlog::wire::error::parse_error_body(&body).unwrap();
        assert_eq!(code, ErrorCode::NotFound as u8, "{message}");
        assert!(message.contains("'live' was deleted"), "{message}");
    }
    let (code, message) = framed_poll.join().unwrap().unwrap_err();
    assert_eq!(code, ErrorCode::NotFound as u8, "{message}");
    assert!(message.contains("was deleted"), "{message}");
    let r = rest_poll.join().unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("was deleted"), "{}", r.text());
    assert!(
        deleted.elapsed() < Duration::from_secs(45),
        "the waits were not cut short by the deletion"
    );
    assert!(!broker.data_dir.join("live").exists());
}

#[test]
fn a_produce_waiting_for_its_chunk_to_be_durable_is_not_acknowledged() {
    // Every chunk waits 3 s before it is written: the frame below is still in its
    // partition's writer when the topic is deleted.
    let mut broker = Broker::new(1, &[]);
    broker.env.push((
        shardlog::failpoint::ENV.into(),
        "writer.write=sleep(3000)".into(),
    ));
    broker.spawn();
    let mut http = HttpClient::connect(broker.http);
    let r = http.request("POST", "/v1/topics/slow", &[], b"{\"partitions\": 1}");
    assert_eq!(r.status, 201, "{}", r.text());
    let mut framed = Client::startup(broker.framed, "slow");
    framed.send_produce(1, b"", &[b"in flight"]);
    std::thread::sleep(Duration::from_millis(200));
    let r = delete(&mut http, "slow");
    assert_eq!(r.status, 200, "{}", r.text());
    match framed.recv().expect("an answer") {
        Response::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::NotFound as u8, "{message}");
            assert!(message.contains("'slow' was deleted"), "{message}");
        }
        other => panic!("the produce was answered {other:?}"),
    }
    assert!(!broker.data_dir.join("slow").exists());
}

#[test]
fn the_client_deletes_and_says_not_found() {
    let broker = Broker::start(1);
    let admin = Admin::new(broker.http.to_string());
    runtime().block_on(async {
        admin.create_topic("t1", Some(2)).await.unwrap();
        let d = admin.delete_topic("t1").await.unwrap();
        assert_eq!((d.topic.as_str(), d.partitions), ("t1", 2));
        assert!(d.groups.is_empty());
        assert!(admin.list_topics().await.unwrap().is_empty());
        let e = admin.delete_topic("t1").await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(e.http_status(), Some(404));
        let e = admin.delete_topic("a/b").await.unwrap_err();
        assert!(!e.is_not_found(), "{e}");
    });
}

#[test]
fn a_deletion_cut_short_by_a_crash_after_the_rename_is_finished_at_start() {
    let mut broker = Broker::start(1);
    let mut http = HttpClient::connect(broker.http);
    for t in ["cut", "kept"] {
        let r = http.produce(t, Some("k"), JSON, b"{}");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("c1", "g", &["cut", "kept"], StartPolicy::Earliest)
        .unwrap();
    drain(&mut c, "c1");
    c.goodbye("c1").unwrap();
    assert_eq!(group_topics(&mut http, "g"), ["cut", "kept"]);
    drop((c, http));

    // kill -9 after the rename, before the groups' offsets and the files were dealt with:
    // what the disk holds then, half removed.
    broker.kill9();
    let tombstone = broker.data_dir.join("@deleted.1d2c3b4a.0");
    std::fs::rename(broker.data_dir.join("cut"), &tombstone).unwrap();
    std::fs::remove_file(tombstone.join("topic.toml")).unwrap();
    broker.spawn();

    let mut http = HttpClient::connect(broker.http);
    assert_eq!(listed(&mut http), ["kept"]);
    assert_eq!(group_topics(&mut http, "g"), ["kept"]);
    wait_until("the tombstone is removed", || !tombstone.exists());
    assert_eq!(
        entries(&broker.data_dir)
            .into_iter()
            .filter(|e| !e.starts_with('@'))
            .collect::<Vec<_>>(),
        ["kept"]
    );
}
