//! Reading a cluster in tests: each broker's `GET /v1/cluster`, and waiting until the views
//! say something.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;

use super::etcd::Etcd;
use super::http::HttpClient;
use super::Broker;

/// `GET /v1/cluster` on `b`, parsed.
pub fn cluster_view(b: &Broker) -> Value {
    let r = HttpClient::connect(b.http).request("GET", "/v1/cluster", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("JSON")
}

/// Waits (generously) until `check` holds of every listed broker's view.
pub fn wait_views(brokers: &[&Broker], what: &str, check: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let views: Vec<Value> = brokers.iter().map(|b| cluster_view(b)).collect();
        if views.iter().all(&check) {
            return views;
        }
        assert!(Instant::now() < deadline, "never {what}: {views:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The broker states of a view: `[(id, "up"|"down")]`.
pub fn states(v: &Value) -> Vec<(u64, String)> {
    v["brokers"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .map(|b| {
                    (
                        b["id"].as_u64().unwrap(),
                        b["state"].as_str().unwrap().into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn controller(v: &Value) -> Option<u64> {
    v["controller"]["broker"].as_u64()
}

pub fn all_up(ids: &[u64]) -> impl Fn(&Value) -> bool + '_ {
    move |v| {
        states(v)
            == ids
                .iter()
                .map(|i| (*i, "up".to_string()))
                .collect::<Vec<_>>()
            && controller(v).is_some()
    }
}

/// Three started brokers, ids 1, 2, 3, of `etcd`'s cluster.
pub fn three_brokers(etcd: &Etcd) -> Vec<Broker> {
    (1..=3)
        .map(|id| {
            let mut b = etcd.broker(id);
            b.spawn();
            b
        })
        .collect()
}

/// The layout of a topic as a view lists it (`v["topics"][i]`).
pub fn topic_layout(topic: &Value) -> shardlog::wire::ring::TopicLayout {
    let n = |k: &str| {
        topic[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {topic}")) as u32
    };
    shardlog::wire::ring::TopicLayout {
        gen: n("generation"),
        token_ranges: n("token_ranges"),
        ranges_per_token_range: n("ranges_per_token_range"),
    }
}

/// Each partition's leader, by partition index, as a view lists the topic.
pub fn leaders(topic: &Value) -> Vec<u64> {
    topic["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["leader"].as_u64().expect("a leader"))
        .collect()
}

/// Whether the view lists topic 0 with `n` partitions, every one with a leader.
pub fn all_led(n: usize) -> impl Fn(&Value) -> bool {
    move |v| {
        v["topics"][0]["partitions"]
            .as_array()
            .is_some_and(|ps| ps.len() == n && ps.iter().all(|p| p["leader"].is_u64()))
    }
}

/// Creates `topic` with `partitions` partitions through `b` (`201`) and returns its layout as
/// `b`'s view has it.
pub fn create_topic(b: &Broker, topic: &str, partitions: u32) -> shardlog::wire::ring::TopicLayout {
    let body = format!("{{\"partitions\": {partitions}}}");
    let r = HttpClient::connect(b.http).request(
        "POST",
        &format!("/v1/topics/{topic}"),
        &[],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let view = cluster_view(b);
    let t = view["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic))
        .unwrap_or_else(|| panic!("{topic} in {view}"));
    topic_layout(t)
}
