//! The admin API against a real broker: `GET /v1/topics` lists every topic (made by produce
//! or by `POST /v1/topics/{name}`, opened or not), `GET /v1/topics/{name}` describes one with
//! each partition's offsets and owning shard, unknown and bad names are 404 and 400; the Rust
//! client's `Admin` makes the same calls, and a producer given the admin address routes keyed
//! messages by partition (fewer, fuller batches) and keeps each key's order.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::http::HttpClient;
use common::{runtime, Broker};
use serde_json::Value;
use shardlog_client::wire::ring::TopicLayout;
use shardlog_client::{Admin, ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig};

const JSON: &str = "application/json";

fn get_json(http: &mut HttpClient, path: &str) -> Value {
    let r = http.request("GET", path, &[], b"");
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.header("content-type"), Some(JSON));
    serde_json::from_slice(&r.body).unwrap()
}

/// The owning shard of partition `j` of `p` on `shards` shards, as the ring defines it.
fn owner(j: u64, shards: u64, p: u64) -> u64 {
    j * shards / p
}

#[test]
fn topics_are_listed_and_described_with_their_offsets() {
    let shards = 2;
    let broker = Broker::start_with(shards, &["--ranges-per-shard", "2"]);
    let mut http = HttpClient::connect(broker.http);
    assert_eq!(
        get_json(&mut http, "/v1/topics")["topics"],
        serde_json::json!([])
    );

    // One topic made by produce, two by POST (one not written to, so never opened).
    let keys = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let mut sent: HashMap<u32, i64> = HashMap::new();
    let layout = TopicLayout::new(shards as u32, 2);
    for i in 0..50 {
        let key = keys[i % keys.len()];
        let r = http.produce("orders", Some(key), JSON, b"{}");
        assert_eq!(r.status, 200, "{}", r.text());
        *sent
            .entry(layout.partition_of_key(key.as_bytes()))
            .or_default() += 1;
    }
    let r = http.request("POST", "/v1/topics/audit", &[], b"{\"partitions\": 3}");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = http.request("POST", "/v1/topics/zeta", &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());

    let list = get_json(&mut http, "/v1/topics");
    assert_eq!(
        list,
        serde_json::json!({"topics": [
            {"name": "audit", "partitions": 3},
            {"name": "orders", "partitions": 4},
            {"name": "zeta", "partitions": 4},
        ]})
    );

    let d = get_json(&mut http, "/v1/topics/orders");
    assert_eq!(d["name"], "orders");
    assert_eq!(
        d["layout"],
        serde_json::json!({"gen": 1, "tokenRanges": 2, "rangesPerTokenRange": 2, "partitions": 4})
    );
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    let mut total = 0;
    for (j, p) in parts.iter().enumerate() {
        let j = j as u64;
        assert_eq!(p["partition"], j);
        assert_eq!(p["shard"], owner(j, shards as u64, 4), "{p}");
        let id = layout.partition_id(j as u32);
        assert_eq!(p["token"], id.token.to_string());
        assert_eq!(p["rangeIndex"], id.range_index);
        assert_eq!(p["firstOffset"], 0);
        let next = p["nextOffset"].as_i64().unwrap();
        assert_eq!(next, sent.get(&(j as u32)).copied().unwrap_or(0), "{p}");
        if next > 0 {
            assert!(p["bytes"].as_u64().unwrap() > 0, "{p}");
        }
        total += next;
    }
    assert_eq!(total, 50);

    // A topic with 3 partitions on 2 shards: ownership ⌊j·2/3⌋ = 0, 0, 1.
    let d = get_json(&mut http, "/v1/topics/audit");
    let shards_of: Vec<u64> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["shard"].as_u64().unwrap())
        .collect();
    assert_eq!(shards_of, [0, 0, 1]);
    assert!(d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["nextOffset"] == 0));

    // Unknown: 404, and describing did not create it.
    let r = http.request("GET", "/v1/topics/nope", &[], b"");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("'nope' does not exist"), "{}", r.text());
    for bad in ["/v1/topics/..", "/v1/topics/a%2Fb", "/v1/topics/%ff"] {
        let r = http.request("GET", bad, &[], b"");
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(
        get_json(&mut http, "/v1/topics")["topics"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(!broker.data_dir.join("nope").exists());
    // Another method on the list is 405 with Allow.
    let r = http.request("DELETE", "/v1/topics", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[test]
fn topics_on_disk_are_listed_after_a_restart_before_they_are_opened() {
    let mut broker = Broker::start(2);
    let mut http = HttpClient::connect(broker.http);
    for i in 0..10 {
        let r = http.produce("kept", Some(&format!("k{i}")), JSON, b"{}");
        assert_eq!(r.status, 200);
    }
    drop(http);
    broker.restart();
    let mut http = HttpClient::connect(broker.http);
    let list = get_json(&mut http, "/v1/topics");
    assert_eq!(list["topics"][0]["name"], "kept");
    // Describing opens (recovers) the partitions to report their offsets.
    let d = get_json(&mut http, "/v1/topics/kept");
    let total: i64 = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nextOffset"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 10);
}

#[test]
fn the_client_admin_lists_describes_and_creates() {
    let broker = Broker::start_with(2, &["--auto-create-topics", "false"]);
    let admin = Admin::new(broker.http.to_string()).with_timeout(Duration::from_secs(20));
    runtime().block_on(async move {
        assert!(admin.list_topics().await.unwrap().is_empty());
        let c = admin.create_topic("events", Some(6)).await.unwrap();
        assert_eq!(
            (c.topic.as_str(), c.partitions, c.created),
            ("events", 6, true)
        );
        let again = admin.create_topic("events", None).await.unwrap();
        assert!(!again.created);
        let e = admin.create_topic("events", Some(4)).await.unwrap_err();
        assert_eq!(e.http_status(), Some(409), "{e}");
        admin.create_topic("default", None).await.unwrap();

        let names: Vec<(String, u32)> = admin
            .list_topics()
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.partitions))
            .collect();
        // The default layout: 2 shards × --ranges-per-shard (4).
        assert_eq!(names, [("default".into(), 8), ("events".into(), 6)]);

        let d = admin.describe_topic("events").await.unwrap();
        assert_eq!(d.layout, TopicLayout::new(2, 3));
        assert_eq!(d.partitions.len(), 6);
        for (j, p) in d.partitions.iter().enumerate() {
            assert_eq!(p.partition as usize, j);
            assert_eq!(p.shard as u64, owner(j as u64, 2, 6));
            assert_eq!(p.token, d.layout.partition_id(j as u32).token);
            assert_eq!((p.first_offset, p.next_offset), (0, 0));
        }

        let e = admin.describe_topic("missing").await.unwrap_err();
        assert_eq!(e.http_status(), Some(404), "{e}");
        assert!(!e.is_retryable());
        let e = admin.describe_topic("no/slash").await.unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e}");
        let e = admin.create_topic("big", Some(100_000)).await.unwrap_err();
        assert_eq!(e.http_status(), Some(400), "{e}");
    });
    // Nothing listens: a connect error, retryable.
    let closed = Admin::new(common::free_addr().to_string());
    let e = runtime().block_on(closed.list_topics()).unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
    assert!(e.is_retryable());
}

/// `requests_total{protocol="framed",type="produce"}` summed over the shards.
fn framed_produce_requests(http: &mut HttpClient) -> f64 {
    let text = http.request("GET", "/metrics", &[], b"").text();
    text.lines()
        .filter(|l| l.starts_with("shardlog_requests_total{"))
        .filter(|l| l.contains("protocol=\"framed\"") && l.contains("type=\"produce\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_producer_with_the_admin_address_batches_keys_by_partition_in_key_order() {
    let broker = Broker::start(2);
    let framed = broker.framed.to_string();
    let http_addr = broker.http.to_string();
    let mut http = HttpClient::connect(broker.http);
    runtime().block_on(async move {
        Admin::new(&http_addr)
            .create_topic("routed", Some(2))
            .await
            .unwrap();
        let producer = Producer::new(ProducerConfig {
            admin: Some(http_addr.clone()),
            linger: Duration::from_millis(300),
            ..ProducerConfig::new(&framed)
        })
        .unwrap();
        let before = framed_produce_requests(&mut http);
        let (keys, per_key) = (40, 25);
        let mut deliveries = Vec::new();
        for seq in 0..per_key {
            for k in 0..keys {
                let value = format!("key-{k}|{seq}");
                let key = format!("key-{k}");
                deliveries.push(
                    producer
                        .send("routed", Some(key.as_bytes()), value)
                        .await
                        .unwrap(),
                );
            }
        }
        for d in deliveries {
            d.await.expect("acknowledged");
        }
        // 40 keys in 2 partitions: a handful of frames, not one (or more) per key.
        let frames = framed_produce_requests(&mut http) - before;
        assert!(frames <= 10.0, "{frames} PRODUCE frames for 2 partitions");

        let d = Admin::new(&http_addr)
            .describe_topic("routed")
            .await
            .unwrap();
        let total: i64 = d.partitions.iter().map(|p| p.next_offset).sum();
        assert_eq!(total, (keys * per_key) as i64);

        let mut consumer = Consumer::join(ConsumerConfig::new(&framed, "g", "m", &["routed"]))
            .await
            .unwrap();
        let mut records = Vec::new();
        let mut empty = 0;
        while records.len() < keys * per_key && empty < 10 {
            let got = consumer.poll().await.unwrap();
            empty = if got.is_empty() { empty + 1 } else { 0 };
            records.extend(got);
        }
        assert_eq!(records.len(), keys * per_key);
        // Each key's values, read in offset order per partition, come in the order sent.
        let mut by_partition: HashMap<_, Vec<_>> = HashMap::new();
        for r in &records {
            by_partition.entry(r.partition).or_default().push(r);
        }
        let mut last: HashMap<String, i64> = HashMap::new();
        for recs in by_partition.values_mut() {
            recs.sort_by_key(|r| r.offset);
            for r in recs.iter() {
                let text = std::str::from_utf8(&r.value).unwrap();
                let (key, seq) = text.rsplit_once('|').unwrap();
                let seq: i64 = seq.parse().unwrap();
                let prev = last.insert(key.to_string(), seq).unwrap_or(-1);
                assert_eq!(seq, prev + 1, "{key}: {seq} after {prev}");
            }
        }
        assert_eq!(last.len(), keys);
        consumer.close().await.unwrap();
    });
}

/// `GET /v1/groups` and `GET /v1/groups/{group}` (and the client's `Admin` calls): members
/// and their partitions, each partition's committed offset, end and lag; a group that emptied
/// and was forgotten is still listed and described from its offsets file, also after a
/// restart; an unknown group is 404.
#[test]
fn groups_are_listed_and_described_with_their_lag() {
    let mut broker = Broker::start(2);
    let (framed, http) = (broker.framed.to_string(), broker.http.to_string());
    runtime().block_on(async {
        let producer = Producer::new(ProducerConfig::new(&framed)).unwrap();
        let mut ds = Vec::new();
        for i in 0..200 {
            let key = format!("k{}", i % 16);
            ds.push(
                producer
                    .send("lagged", Some(key.as_bytes()), format!("{i}"))
                    .await
                    .unwrap(),
            );
        }
        for d in ds {
            d.await.unwrap();
        }
        let mut a = Consumer::join(ConsumerConfig::new(&framed, "readers", "a", &["lagged"]))
            .await
            .unwrap();
        let mut b = Consumer::join(ConsumerConfig::new(&framed, "readers", "b", &["lagged"]))
            .await
            .unwrap();
        let got = a.poll().await.unwrap().len() + b.poll().await.unwrap().len();
        a.commit().await.unwrap();
        b.commit().await.unwrap();

        let admin = Admin::new(&http);
        let groups = admin.list_groups().await.unwrap();
        assert!(
            groups.iter().any(|g| g.name == "readers" && g.members == 2),
            "{groups:?}"
        );
        let d = admin.describe_group("readers").await.unwrap();
        assert_eq!(
            d.members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        // 2 shards × 4 ranges: every partition assigned, the two members split them.
        let owned: usize = d.members.iter().map(|m| m.partitions.len()).sum();
        assert_eq!(owned, 8);
        assert_eq!(d.partitions.len(), 8);
        let end: i64 = d.partitions.iter().map(|p| p.end.unwrap()).sum();
        assert_eq!(end, 200);
        let committed: i64 = d.partitions.iter().map(|p| p.committed.unwrap_or(0)).sum();
        assert_eq!(
            committed as usize, got,
            "the two polls' records were committed"
        );
        let lag: i64 = d.partitions.iter().map(|p| p.lag.unwrap()).sum();
        assert_eq!(lag, 200 - committed);
        for p in &d.partitions {
            assert!(p.owner.is_some());
        }
        a.close().await.unwrap();
        b.close().await.unwrap();

        match admin.describe_group("nobody").await {
            Err(e) => assert_eq!(e.http_status(), Some(404), "{e}"),
            Ok(d) => panic!("described {d:?}"),
        }
        assert!(matches!(
            admin.describe_group("a/b").await,
            Err(ClientError::Invalid(_))
        ));
    });
    // After a restart the group has no members, and is still known by its offsets.
    broker.restart();
    let http = broker.http.to_string();
    runtime().block_on(async move {
        let admin = Admin::new(&http);
        let groups = admin.list_groups().await.unwrap();
        assert!(
            groups.iter().any(|g| g.name == "readers" && g.members == 0),
            "{groups:?}"
        );
        let d = admin.describe_group("readers").await.unwrap();
        assert!(d.members.is_empty());
        assert!(d.partitions.iter().all(|p| p.owner.is_none()));
        assert_eq!(
            d.partitions.iter().map(|p| p.end.unwrap()).sum::<i64>(),
            200
        );
    });
}

/// `POST /v1/groups/{group}/reset`: refused (409) while the group has members; afterwards
/// the group's offsets move to the earliest, the latest or a given offset (clamped into each
/// partition), durably, and its next member reads from there.
#[test]
fn a_group_without_members_is_reset() {
    use shardlog_client::ResetTo;
    let broker = Broker::start(1);
    let (framed, http) = (broker.framed.to_string(), broker.http.to_string());
    runtime().block_on(async move {
        let admin = Admin::new(&http);
        admin.create_topic("reset", Some(1)).await.unwrap();
        let producer = Producer::new(ProducerConfig::new(&framed)).unwrap();
        let mut ds = Vec::new();
        for i in 0..50 {
            ds.push(producer.send("reset", None, format!("{i}")).await.unwrap());
        }
        for d in ds {
            d.await.unwrap();
        }
        let member = |id: &str| ConsumerConfig::new(&framed, "g", id, &["reset"]);
        let drain = |mut c: Consumer| async move {
            let mut offsets = Vec::new();
            loop {
                let got = c.poll().await.unwrap();
                if got.is_empty() {
                    break;
                }
                offsets.extend(got.iter().map(|r| r.offset));
            }
            c.close().await.unwrap();
            offsets
        };
        let mut a = Consumer::join(member("a")).await.unwrap();
        assert_eq!(a.poll().await.unwrap().len(), 50);
        match admin.reset_group("g", "reset", ResetTo::Earliest).await {
            Err(e) => assert_eq!(e.http_status(), Some(409), "{e}"),
            Ok(moved) => panic!("reset a live group: {moved:?}"),
        }
        a.close().await.unwrap();
        // Everything was read and committed; back to the start.
        assert_eq!(
            admin
                .reset_group("g", "reset", ResetTo::Earliest)
                .await
                .unwrap(),
            vec![(0, 0)]
        );
        assert_eq!(
            drain(Consumer::join(member("b")).await.unwrap())
                .await
                .len(),
            50
        );
        assert_eq!(
            admin
                .reset_group("g", "reset", ResetTo::Offset(42))
                .await
                .unwrap(),
            vec![(0, 42)]
        );
        assert_eq!(
            drain(Consumer::join(member("c")).await.unwrap()).await,
            (42..50).collect::<Vec<i64>>()
        );
        // Past the end: clamped to it; latest: nothing to read.
        assert_eq!(
            admin
                .reset_group("g", "reset", ResetTo::Offset(1000))
                .await
                .unwrap(),
            vec![(0, 50)]
        );
        assert_eq!(
            admin
                .reset_group("g", "reset", ResetTo::Latest)
                .await
                .unwrap(),
            vec![(0, 50)]
        );
        assert!(drain(Consumer::join(member("d")).await.unwrap())
            .await
            .is_empty());
        let d = admin.describe_group("g").await.unwrap();
        assert_eq!(d.partitions[0].committed, Some(50));
        // An unknown topic is 404, and creates nothing.
        match admin.reset_group("g", "nope", ResetTo::Earliest).await {
            Err(e) => assert_eq!(e.http_status(), Some(404), "{e}"),
            Ok(moved) => panic!("{moved:?}"),
        }
    });
    let mut http = HttpClient::connect(broker.http);
    for bad in [
        "/v1/groups/g/reset?to=earliest",
        "/v1/groups/g/reset?topic=reset",
        "/v1/groups/g/reset?topic=reset&to=yesterday",
        "/v1/groups/g/reset?topic=reset&to=-1",
    ] {
        assert_eq!(http.request("POST", bad, &[], b"").status, 400, "{bad}");
    }
}
