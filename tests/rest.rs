//! PolarStreams' REST API over plain HTTP/1.1 (and one poll over HTTP/2) against a real broker:
//! produce (JSON and NDJSON, keyed and not), register + poll with the binary and the JSON
//! responses, every message exactly once and each key in order in its Murmur3 partition,
//! long polls, groups splitting partitions, commit/goodbye. Bad input: `rest_errors.rs`.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::consumer::{produce_keyed, Item};
use common::http::{plain, HttpClient};
use common::Broker;
use shardlog::ring::TopicLayout;

type Partition = (i64, u8);

/// Checks that `items` hold each of `expected` (`tag|key|seq` bodies) exactly once, offsets
/// dense from 0 in every partition, each key in one partition — its Murmur3 one, with
/// `layout` — and in order.
fn check_exactly_once(items: &[Item], expected: &[String], layout: &TopicLayout) {
    let mut next: HashMap<Partition, i64> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut keys: HashMap<String, (Partition, i64)> = HashMap::new();
    for it in items {
        let p = (it.token, it.range_index);
        assert_eq!(it.gen, 1);
        for (offset, _, body) in &it.records {
            let want = next.entry(p).or_insert(0);
            assert_eq!(*offset, *want, "offsets dense in partition {p:?}");
            *want += 1;
            let body = plain(body);
            assert!(seen.insert(body.clone()), "{body} delivered twice");
            let mut parts = body.split('|');
            let (_tag, key, seq) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            if key == "-" {
                continue;
            }
            let seq: i64 = seq.parse().unwrap();
            let id = layout.partition_id(layout.partition_of_key(key.as_bytes()));
            assert_eq!(p, (id.token, id.range_index), "key {key} in its partition");
            let k = format!("{}|{key}", _tag.unwrap());
            if let Some((kp, last)) = keys.insert(k.clone(), (p, seq)) {
                assert_eq!(kp, p, "{k} in one partition");
                assert_eq!(seq, last + 1, "{k} in order");
            } else {
                assert_eq!(seq, 0, "{k} starts at its first message");
            }
        }
    }
    let expected: HashSet<String> = expected.iter().cloned().collect();
    assert_eq!(seen.len(), expected.len());
    assert_eq!(seen, expected);
}

/// REST-produces `count` messages per key as NDJSON lines of JSON strings `tag|key|seq`,
/// `per_request` lines per request; keyless when `key` is `-`. Returns the bodies.
fn produce_ndjson(
    c: &mut HttpClient,
    topic: &str,
    tag: &str,
    keys: &[String],
    count: usize,
    per_request: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for key in keys {
        let mut seq = 0;
        while seq < count {
            let mut body = String::new();
            for _ in 0..per_request.min(count - seq) {
                let m = format!("{tag}|{key}|{seq}");
                body.push_str(&format!("\"{m}\"\n"));
                out.push(m);
                seq += 1;
            }
            let k = (key != "-").then_some(key.as_str());
            let r = c.produce(topic, k, "application/x-ndjson", body.as_bytes());
            assert_eq!((r.status, r.text()), (200, "OK".to_string()));
        }
    }
    out
}

#[test]
fn rest_produce_then_poll_binary_and_json_exactly_once() {
    let broker = Broker::start(2);
    let layout = TopicLayout::new(2, 4);
    let mut c = HttpClient::connect(broker.http);
    let mut expected = Vec::new();
    // One JSON message per request, keyed.
    let mut seq = HashMap::new();
    for i in 0..48 {
        let key = format!("j{}", i % 6);
        let s = seq.entry(key.clone()).or_insert(0);
        let m = format!("json|{key}|{s}");
        *s += 1;
        let body = format!("\"{m}\"");
        let r = c.produce("orders", Some(&key), "application/json", body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "OK");
        expected.push(m);
    }
    // NDJSON, keyed and keyless; a keyless request lands whole in one partition.
    let keys: Vec<String> = (0..5).map(|k| format!("n{k}")).collect();
    expected.extend(produce_ndjson(&mut c, "orders", "nd", &keys, 12, 4));
    expected.extend(produce_ndjson(&mut c, "orders", "kl", &["-".into()], 30, 6));
    // And framed producers beside them.
    for (_, body) in produce_keyed(broker.framed, "orders", 100, 10, "framed") {
        expected.push(body);
    }

    // Binary polls over HTTP/1.1.
    let r = c.register("c1", "g1", &["orders"], "startFromEarliest");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    let items = c.drain("c1");
    check_exactly_once(&items, &expected, &layout);
    assert_eq!(c.poll_raw("c1", None, None).status, 204);

    // JSON polls, another group.
    let r = c.register("c2", "g2", &["orders"], "startFromEarliest");
    assert_eq!(r.status, 200);
    let mut values = Vec::new();
    loop {
        let r = c.poll_raw("c2", None, Some("application/json"));
        if r.status == 204 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        for item in v.as_array().expect("an array") {
            assert_eq!(item["topic"], "orders");
            assert_eq!(item["version"], 1);
            let token: i64 = item["token"].as_str().unwrap().parse().unwrap();
            let range = item["rangeIndex"].as_u64().unwrap() as u8;
            let id = (0..8)
                .map(|j| layout.partition_id(j))
                .find(|p| p.token == token && p.range_index == range);
            assert!(id.is_some(), "a partition of the topic");
            let _: i64 = item["startOffset"].as_str().unwrap().parse().unwrap();
            for value in item["values"].as_array().unwrap() {
                values.push(value.as_str().unwrap().to_string());
            }
        }
    }
    values.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(values, want);
}

#[test]
fn long_poll_is_woken_by_a_produce() {
    let broker = Broker::start(2);
    let mut c = HttpClient::connect(broker.http);
    assert_eq!(
        c.register("lp", "g", &["wake"], "startFromLatest").status,
        200
    );
    // Nothing yet: a short long poll waits its time, then 204.
    let start = Instant::now();
    assert_eq!(c.poll_raw("lp", Some(300), None).status, 204);
    assert!(start.elapsed() >= Duration::from_millis(250));

    let addr = broker.http;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let mut p = HttpClient::connect(addr);
        let r = p.produce("wake", Some("k"), "application/json", b"\"wake|k|0\"");
        assert_eq!(r.status, 200);
    });
    let start = Instant::now();
    let items = c.poll("lp", Some(20_000));
    let waited = start.elapsed();
    producer.join().unwrap();
    assert!(waited < Duration::from_secs(10), "woken early: {waited:?}");
    assert_eq!(items.len(), 1);
    assert_eq!(plain(&items[0].records[0].2), "wake|k|0");
}

#[test]
fn three_http_consumers_split_partitions_commit_and_goodbye() {
    let broker = Broker::start(2);
    let layout = TopicLayout::new(2, 4);
    let mut p = HttpClient::connect(broker.http);
    let ids = ["c1", "c2", "c3"];
    let mut clients: Vec<HttpClient> = ids
        .iter()
        .map(|_| HttpClient::connect(broker.http))
        .collect();
    for (c, id) in clients.iter_mut().zip(ids) {
        let r = c.register(id, "grp", &["split"], "startFromEarliest");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let keys: Vec<String> = (0..40).map(|k| format!("key{k}")).collect();
    let produced = produce_ndjson(&mut p, "split", "p1", &keys, 5, 5);
    let mut all = Vec::new();
    let mut owned: Vec<HashSet<Partition>> = Vec::new();
    for (c, id) in clients.iter_mut().zip(ids) {
        let items = c.drain(id);
        owned.push(items.iter().map(|i| (i.token, i.range_index)).collect());
        all.extend(items);
        assert_eq!(c.commit(id).status, 204);
    }
    check_exactly_once(&all, &produced, &layout);
    let union: HashSet<Partition> = owned.iter().flatten().copied().collect();
    assert_eq!(union.len(), 8, "every partition read");
    for (i, a) in owned.iter().enumerate() {
        assert!((2..=3).contains(&a.len()), "{} owns {}", ids[i], a.len());
        for b in &owned[i + 1..] {
            assert!(a.is_disjoint(b), "partitions split, not shared");
        }
    }

    // c3 leaves: its id is unknown from then on, the other two take its partitions.
    let r = clients[2].goodbye("c3");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    for r in [
        clients[2].poll_raw("c3", None, None),
        clients[2].commit("c3"),
        clients[2].goodbye("c3"),
    ] {
        assert_eq!(r.status, 409, "{}", r.text());
        assert!(r.text().contains("not registered"));
    }
    let produced2 = produce_ndjson(&mut p, "split", "p2", &keys, 3, 3);
    let mut got = Vec::new();
    let mut union = HashSet::new();
    for (c, id) in clients.iter_mut().zip(ids).take(2) {
        let items = c.drain(id);
        union.extend(items.iter().map(|i| (i.token, i.range_index)));
        got.extend(items.iter().flat_map(|i| &i.records).map(|r| plain(&r.2)));
    }
    assert_eq!(union.len(), 8, "c3's partitions reassigned");
    got.sort();
    let mut want = produced2.clone();
    want.sort();
    assert_eq!(got, want, "the second batch, once");

    // Goodbye commits: a new member of the group starts after everything read.
    assert_eq!(clients[0].goodbye("c1").status, 200);
    assert_eq!(clients[1].goodbye("c2").status, 200);
    assert_eq!(
        clients[0]
            .register("c4", "grp", &["split"], "startFromEarliest")
            .status,
        200
    );
    assert!(clients[0].drain("c4").is_empty(), "offsets were committed");
}

#[test]
fn poll_over_http2() {
    let broker = Broker::start(1);
    let addr = broker.http;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(conn);
        let call = |method: &str, path: &str, ct: Option<&str>, body: &'static [u8]| {
            let client = client.clone();
            let req = http::Request::builder()
                .method(method)
                .uri(format!("http://{addr}{path}"));
            let req = match ct {
                Some(ct) => req.header("content-type", ct),
                None => req,
            };
            let req = req.body(()).unwrap();
            async move {
                let mut client = client.ready().await.unwrap();
                let (resp, mut send) = client.send_request(req, body.is_empty()).unwrap();
                if !body.is_empty() {
                    send.send_data(bytes::Bytes::from_static(body), true)
                        .unwrap();
                }
                let resp = tokio::time::timeout(Duration::from_secs(30), resp)
                    .await
                    .unwrap()
                    .unwrap();
                let (parts, mut body) = resp.into_parts();
                let mut data = Vec::new();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    let _ = body.flow_control().release_capacity(chunk.len());
                    data.extend_from_slice(&chunk);
                }
                (parts, data)
            }
        };
        let (p, _) = call(
            "PUT",
            "/v1/consumer/register?consumerId=h2c&topic=h2t&onNewGroup=startFromEarliest",
            None,
            b"",
        )
        .await;
        assert_eq!(p.status, 200);
        let (p, _) = call(
            "POST",
            "/v1/topic/h2t/messages?partitionKey=a",
            Some("application/x-ndjson"),
            b"\"h2|a|0\"\n\"h2|a|1\"\n",
        )
        .await;
        assert_eq!(p.status, 200);
        let (p, body) = call("POST", "/v1/consumer/poll?consumerId=h2c", None, b"").await;
        assert_eq!(p.status, 200);
        assert_eq!(
            p.headers["content-type"],
            "application/vnd.polar.consumermessage"
        );
        assert_eq!(p.headers["content-length"], body.len().to_string().as_str());
        let items = common::consumer::decode_items(&body);
        let got: Vec<String> = items
            .iter()
            .flat_map(|i| &i.records)
            .map(|r| plain(&r.2))
            .collect();
        assert_eq!(got, ["h2|a|0", "h2|a|1"]);
        let (p, body) = call("POST", "/v1/consumer/poll?consumerId=h2c", None, b"").await;
        assert_eq!(p.status, 204);
        assert!(body.is_empty());
        let (p, _) = call("POST", "/v1/consumer/poll?consumerId=nobody", None, b"").await;
        assert_eq!(p.status, 409);
    });
}

#[test]
fn registering_again_redelivers_the_unconfirmed_poll() {
    let broker = Broker::start(2);
    let mut p = HttpClient::connect(broker.http);
    let keys: Vec<String> = (0..10).map(|k| format!("key{k}")).collect();
    let produced = produce_ndjson(&mut p, "again", "a", &keys, 3, 3);
    let mut c = HttpClient::connect(broker.http);
    let r = c.register("re", "g", &["again"], "startFromEarliest");
    assert_eq!(r.status, 200, "{}", r.text());
    let first = c.poll("re", None);
    assert!(!first.is_empty());
    // The consumer crashed before confirming that poll, and registers again.
    drop(c);
    let mut c = HttpClient::connect(broker.http);
    let r = c.register("re", "g", &["again"], "startFromEarliest");
    assert_eq!(r.status, 200, "{}", r.text());
    let again = c.poll("re", None);
    let texts = |items: &[Item]| -> Vec<String> {
        items
            .iter()
            .flat_map(|i| &i.records)
            .map(|r| plain(&r.2))
            .collect()
    };
    // The same records; the order of partitions within a poll may differ (the partition read
    // first rotates between polls), each partition's records stay in order.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(texts(&again)),
        sorted(texts(&first)),
        "the unconfirmed poll again"
    );
    let mut got = texts(&again);
    got.extend(texts(&c.drain("re")));
    got.sort();
    let mut want = produced;
    want.sort();
    assert_eq!(got, want, "nothing lost or repeated after that");
}

/// Issue 13 item 18: a JSON poll over a stored chunk crafted to decompress to 1 GiB is a 500,
/// refused without decompressing it; the broker stays up and small.
#[test]
fn json_poll_of_a_chunk_that_expands_beyond_any_frame_is_500() {
    let mut broker = Broker::start(1);
    let mut c = HttpClient::connect(broker.http);
    let r = c.produce("bomb", Some("k"), "application/json", b"\"x\"");
    assert_eq!(r.status, 200, "{}", r.text());
    drop(c);
    broker.kill9();
    common::plant_decompression_bomb(&broker.data_dir, "bomb");

    broker.spawn();
    let mut c = HttpClient::connect(broker.http);
    let r = c.register("c1", "g1", &["bomb"], "startFromEarliest");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.poll_raw("c1", None, Some("application/json"));
    assert!(broker.is_running());
    let peak = common::peak_rss(broker.pid());
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("more than"), "{}", r.text());
}

/// `POST /v1/consumer/commit` with explicit positions commits exactly those: the next JSON
/// poll starts at the committed offset, even inside a chunk; a position the consumer may not
/// commit is 400 and changes nothing.
#[test]
fn commit_with_positions_resumes_exactly_there() {
    let broker = Broker::start(1);
    let mut c = HttpClient::connect(broker.http);
    // One frame of 10 messages: one chunk.
    let body: Vec<String> = (0..10).map(|i| format!("\"m{i}\"")).collect();
    let r = c.produce(
        "pos",
        Some("k"),
        "application/x-ndjson",
        body.join("\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        c.register("c", "g", &["pos"], "startFromEarliest").status,
        200
    );
    let r = c.poll_raw("c", None, Some("application/json"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let item = &v[0];
    assert_eq!(item["startOffset"], "0");
    assert_eq!(item["values"].as_array().unwrap().len(), 10);
    let position = |offset: &str| {
        format!(
            r#"{{"positions":[{{"topic":"pos","token":{},"rangeIndex":{},"version":{},"offset":"{offset}"}}]}}"#,
            item["token"], item["rangeIndex"], item["version"]
        )
    };
    let commit = |c: &mut HttpClient, body: &str| {
        c.request(
            "POST",
            "/v1/consumer/commit?consumerId=c",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
    };
    assert_eq!(
        commit(&mut c, &position("11")).status,
        400,
        "past what was given"
    );
    assert_eq!(
        commit(&mut c, "{\"positions\":[{\"topic\":\"pos\"}]}").status,
        400
    );
    let r = commit(&mut c, &position("4"));
    assert_eq!(r.status, 204, "{}", r.text());
    // The next poll resumes at 4, inside the chunk: m4 … m9.
    let r = c.poll_raw("c", None, Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v[0]["startOffset"], "4");
    let values: Vec<&str> = v[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(values, ["m4", "m5", "m6", "m7", "m8", "m9"]);
}
