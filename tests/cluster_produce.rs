//! Cluster mode's produce path against a real etcd: a framed PRODUCE (or a REST produce, or a
//! gRPC Produce) reaching a broker that does not lead the key's partition is forwarded to the
//! leader, so every acknowledged message is stored once, by the broker etcd names the
//! partition's leader, in order per key; a forwarded frame is never forwarded again.

mod common;
mod grpc_client;

use std::collections::{BTreeMap, HashMap};

use common::cluster::{all_up, leaders, three_brokers, topic_layout, wait_views};
use common::consumer::{produce_keyed, ConsumerClient};
use common::etcd::Etcd;
use common::framed::FramedProducer;
use common::http::HttpClient;
use common::Broker;
use shardlog::wire::ring::TopicLayout;
use shardlog::wire::{ErrorCode, OpCode};

/// What broker `b` stores of `topic`: (partition index, key, body) per record, in partition
/// order, read by FETCH from each of its partitions with `AT_THIS_BROKER` (its own log; a
/// plain FETCH or a group's poll reads each partition at its leader).
fn stored(b: &Broker, topic: &str, layout: &TopicLayout) -> Vec<(u32, String, String)> {
    let mut c = ConsumerClient::connect(b.framed);
    (0..layout.partitions())
        .flat_map(|j| {
            // Only the partition's leader serves its copy; the others refuse.
            c.try_fetch_all_local(topic, j)
                .unwrap_or_default()
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
    let layout = topic_layout(topic);
    assert_eq!(layout.partitions(), 12);
    let leader = leaders(topic);
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

/// A key of partition `j` of a 3 x 4 layout, found by trying keys.
fn key_for(j: u32) -> String {
    let layout = TopicLayout::new(3, 4);
    (0..)
        .map(|i| format!("k{i}"))
        .find(|k| layout.partition_of_key(k.as_bytes()) == j)
        .unwrap()
}

#[test]
fn a_forwarded_frame_reaching_a_broker_that_does_not_lead_is_refused_not_forwarded_again() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    // The topic, from a first STARTUP; partitions 4..8 are broker 2's, at epoch 1.
    let mut p = FramedProducer::startup(brokers[0].framed, "orders");
    p.produce(key_for(0).as_bytes(), &[b"first|k|0"])
        .expect("stored");
    wait_views(&all, "the topic everywhere", |v| {
        v["topics"][0]["partitions"][4]["leader"] == 2
    });
    let key = key_for(4);
    let body = |tag: &str| format!("{tag}|{key}|0");
    // Broker 1 does not lead partition 4: refused, retryably, and not sent on to broker 2.
    let mut via1 = FramedProducer::startup_forwarded(brokers[0].framed, "orders", 3);
    let (code, message) = via1
        .produce_routed(4, 1, key.as_bytes(), &[body("bounced").as_bytes()])
        .expect_err("broker 1 does not lead partition 4");
    assert_eq!(code, ErrorCode::Unavailable as u8, "{message}");
    assert!(
        message.contains("broker 1 does not lead partition 4 of 'orders' at epoch 1"),
        "{message}"
    );
    // At its leader: stored at the epoch it leads at, refused at any other.
    let mut via2 = FramedProducer::startup_forwarded(brokers[1].framed, "orders", 3);
    via2.produce_routed(4, 1, key.as_bytes(), &[body("direct").as_bytes()])
        .expect("broker 2 leads partition 4 at epoch 1");
    let (code, message) = via2
        .produce_routed(4, 2, key.as_bytes(), &[body("stale").as_bytes()])
        .expect_err("not at epoch 2");
    assert_eq!(code, ErrorCode::Unavailable as u8, "{message}");
    assert!(message.contains("at epoch 2"), "{message}");
    // A head that names another partition than its key's, or none of the topic's: invalid.
    for j in [5, 99] {
        let (code, message) = via2
            .produce_routed(j, 1, key.as_bytes(), &[body("wrong").as_bytes()])
            .expect_err("not the key's partition");
        assert_eq!(code, ErrorCode::BadRequest as u8, "{message}");
    }
    // Only the frame its leader admitted is stored, once, on broker 2.
    let layout = TopicLayout::new(3, 4);
    let on2: Vec<String> = stored(&brokers[1], "orders", &layout)
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(on2, [body("direct")]);
    let on1: Vec<String> = stored(&brokers[0], "orders", &layout)
        .into_iter()
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(on1, ["first|k|0"]);
}

#[test]
fn grpc_produce_through_a_broker_that_does_not_lead_lands_on_the_leader() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    let rt = grpc_client::runtime();
    let mut acked: Vec<String> = Vec::new();
    rt.block_on(async {
        for (i, b) in brokers.iter().enumerate() {
            let mut c = grpc_client::Client::new(grpc_client::connect(b.http).await);
            // Keyed: every partition's key through every broker, two calls each.
            for j in 0..12 {
                let key = key_for(j);
                for call in 0..2 {
                    let values: Vec<Vec<u8>> = (0..5)
                        .map(|n| format!("grpc{}|{key}|{}", i + 1, call * 5 + n).into_bytes())
                        .collect();
                    let md = [("topic", "logs"), ("partition-key", key.as_str())];
                    c.produce(&md, values.clone())
                        .await
                        .unwrap_or_else(|s| panic!("via broker {}: {s:?}", i + 1));
                    acked.extend(values.into_iter().map(|v| String::from_utf8(v).unwrap()));
                }
            }
            // By partition index: partition 0 is broker 1's.
            let value = format!("index{}|{}|0", i + 1, key_for(0));
            c.produce(
                &[("topic", "logs"), ("partition", "0")],
                vec![value.clone().into()],
            )
            .await
            .expect("by index");
            acked.push(value);
        }
        // Keyless: a partition the broker it reaches leads (no hop).
        let mut c = grpc_client::Client::new(grpc_client::connect(brokers[2].http).await);
        c.produce(&[("topic", "logs")], vec![b"keyless3||0".to_vec()])
            .await
            .expect("keyless");
    });
    let layout = TopicLayout::new(3, 4);
    let leader = |j: u32| j / 4 + 1;
    let mut found: HashMap<String, usize> = HashMap::new();
    let mut order: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, b) in brokers.iter().enumerate() {
        for (j, key, body) in stored(b, "logs", &layout) {
            assert_eq!(leader(j), i as u32 + 1, "{body} on broker {}", i + 1);
            if body.starts_with("keyless") {
                assert_eq!(i, 2, "a keyless value stays on the broker it reached");
                continue;
            }
            assert_eq!(layout.partition_of_key(key.as_bytes()), j, "{body}");
            *found.entry(body.clone()).or_default() += 1;
            let mut parts = body.split('|');
            let tag = parts.next().unwrap().to_string();
            let seq: usize = parts.nth(1).unwrap().parse().unwrap();
            order.entry((tag, key)).or_default().push(seq);
        }
    }
    assert_eq!(found.len(), acked.len());
    assert!(acked.iter().all(|b| found.get(b) == Some(&1)), "{found:?}");
    for (what, seqs) in order {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{what:?}: {seqs:?}");
    }
}

#[test]
fn a_leader_killed_under_load_refuses_its_partitions_and_after_a_restart_nothing_acked_is_lost() {
    let Some(etcd) = Etcd::start() else { return };
    let mut brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    let keys: Vec<String> = (0..12).map(key_for).collect();
    // Keyed load through broker 1: one frame per partition per round, all in flight at once.
    let mut p = FramedProducer::startup(brokers[0].framed, "load");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let unavailable = ErrorCode::Unavailable as u8;
    let (acked, refused_while_down) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut acked: Vec<String> = Vec::new();
            let mut refused = 0;
            let mut seq = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let frames: Vec<(Vec<u8>, Vec<u8>)> = keys
                    .iter()
                    .map(|k| (k.clone().into(), format!("load|{k}|{seq}").into()))
                    .collect();
                for (j, answer) in p.produce_each(&frames).into_iter().enumerate() {
                    let body = String::from_utf8(frames[j].1.clone()).unwrap();
                    match answer {
                        Ok(()) => acked.push(body),
                        // Only broker 3's partitions (8..12) may be refused, and retryably.
                        Err((code, message)) => {
                            assert!(j >= 8, "partition {j} refused: {message}");
                            assert_eq!(code, unavailable, "{message}");
                            refused += 1;
                        }
                    }
                }
                seq += 1;
            }
            (acked, refused)
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        brokers[2].kill9();
        wait_views(&[&brokers[0]], "broker 3 down", |v| {
            v["brokers"][2]["state"] == "down"
        });
        // gRPC too: a partition of broker 3's answers UNAVAILABLE, one of broker 2's is served.
        grpc_client::runtime().block_on(async {
            let mut c = grpc_client::Client::new(grpc_client::connect(brokers[0].http).await);
            let down = c
                .produce(
                    &[("topic", "load"), ("partition-key", &keys[8])],
                    vec![b"grpc|x|0".to_vec()],
                )
                .await
                .expect_err("its leader is down");
            assert_eq!(down.code(), tonic::Code::Unavailable, "{down:?}");
            assert!(down.message().contains("which is down"), "{down:?}");
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        brokers[2].spawn();
        let all: Vec<&Broker> = brokers.iter().collect();
        wait_views(&all, "broker 3 back", all_up(&[1, 2, 3]));
        // Until broker 3's partitions are served again through broker 1.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut check = FramedProducer::startup(brokers[0].framed, "load");
        while check
            .produce(keys[8].as_bytes(), &[b"probe|probe|0"])
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "broker 3 never served again"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().unwrap()
    });
    assert!(
        refused_while_down > 0,
        "broker 3's partitions were refused while it was down"
    );
    // Every acknowledged message is stored exactly once, on its leader, in order per key.
    let layout = TopicLayout::new(3, 4);
    let mut found: HashMap<String, usize> = HashMap::new();
    let mut order: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for b in &brokers {
        for (_, key, body) in stored(b, "load", &layout) {
            if !body.starts_with("load|") {
                continue;
            }
            *found.entry(body.clone()).or_default() += 1;
            let seq: usize = body.rsplit('|').next().unwrap().parse().unwrap();
            order.entry(key).or_default().push(seq);
        }
    }
    assert!(
        acked.iter().all(|b| found.get(b) == Some(&1)),
        "an acked message lost or doubled"
    );
    for (key, seqs) in order {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }
}

/// A FETCH (a reader without a group) on any broker reads the partition at its leader, by
/// offset and by time, the leader's chunks passed on byte for byte; `AT_THIS_BROKER` reads
/// the broker's own log; a partition whose leader is down answers a retryable error.
#[test]
fn a_fetch_on_any_broker_reads_the_partition_at_its_leader() {
    let Some(etcd) = Etcd::start() else { return };
    let mut brokers = three_brokers(&etcd);
    {
        let all: Vec<&Broker> = brokers.iter().collect();
        wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    }
    let r = HttpClient::connect(brokers[0].http).request("POST", "/v1/topics/read", &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
        - 1_000_000;
    produce_keyed(brokers[0].framed, "read", 120, 12, "r");
    let view = common::cluster::cluster_view(&brokers[0]);
    let topic = &view["topics"][0];
    let leader = leaders(topic);
    let n = topic_layout(topic).partitions();
    for j in 0..n {
        let at_leader = ConsumerClient::connect(brokers[leader[j as usize] as usize - 1].framed)
            .try_fetch_all_local("read", j)
            .expect("the leader serves its copy");
        for (i, b) in brokers.iter().enumerate() {
            let mut c = ConsumerClient::connect(b.framed);
            let read = c.fetch_all("read", j);
            assert_eq!(
                read.iter()
                    .map(|it| (it.offset, &it.payload))
                    .collect::<Vec<_>>(),
                at_leader
                    .iter()
                    .map(|it| (it.offset, &it.payload))
                    .collect::<Vec<_>>(),
                "partition {j} read on broker {}",
                i + 1
            );
            // Its own copy, never forwarded: only the leader serves one.
            let local = c.try_fetch_all_local("read", j);
            if leader[j as usize] == i as u64 + 1 {
                assert_eq!(local.map(|l| l.len()), Ok(at_leader.len()));
            } else {
                let (code, message) = local.expect_err("a non-leader serves nothing");
                assert_eq!(code, ErrorCode::Unavailable as u8, "{message}");
                assert!(message.contains("does not lead"), "{message}");
            }
            // By time: from before the first record, everything.
            let mut body = Vec::new();
            let fetch = shardlog::wire::fetch::FetchBody {
                topic: "read".into(),
                partition: j,
                from: shardlog::wire::fetch::FetchFrom::Time(before),
                max_bytes: 1 << 20,
                max_wait_ms: None,
            };
            fetch.encode(&mut body);
            let (op, answer) = c.request_with(OpCode::Fetch, fetch.flags(), &body);
            assert_eq!(
                op,
                OpCode::PollResponse,
                "{:?}",
                String::from_utf8_lossy(&answer)
            );
            let by_time = common::consumer::decode_items(&answer);
            assert_eq!(
                by_time.first().map(|it| it.offset),
                at_leader.first().map(|it| it.offset)
            );
        }
    }
    // Broker 3 down: its partitions are unavailable (retryably) from the others, not empty.
    let j3 = (0..n)
        .find(|&j| leader[j as usize] == 3)
        .expect("broker 3 leads one");
    brokers[2].kill9();
    wait_views(&[&brokers[0], &brokers[1]], "broker 3 down", |v| {
        common::cluster::states(v).contains(&(3, "down".to_string()))
    });
    let mut c = ConsumerClient::connect(brokers[0].framed);
    let mut body = Vec::new();
    shardlog::wire::fetch::FetchBody {
        topic: "read".into(),
        partition: j3,
        from: shardlog::wire::fetch::FetchFrom::Offset(0),
        max_bytes: 1 << 20,
        max_wait_ms: None,
    }
    .encode(&mut body);
    let (op, answer) = c.request(OpCode::Fetch, &body);
    assert_eq!(op, OpCode::Error, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(
        answer[0],
        ErrorCode::Unavailable as u8,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // A partition the layout does not have is still not found.
    let mut body = Vec::new();
    shardlog::wire::fetch::FetchBody {
        topic: "read".into(),
        partition: n,
        from: shardlog::wire::fetch::FetchFrom::Offset(0),
        max_bytes: 1 << 20,
        max_wait_ms: None,
    }
    .encode(&mut body);
    let (op, answer) = c.request(OpCode::Fetch, &body);
    assert_eq!(op, OpCode::Error);
    assert_eq!(
        answer[0],
        ErrorCode::NotFound as u8,
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// A gRPC Produce forwarded to a slow leader holds the forwarding broker's shard buffer
/// budget until the leader answers, as a local one does until it is durable: clients that
/// push faster than the leader writes are held back by flow control, and the forwarding
/// broker's memory stays bounded by `--shard-buffer`.
#[test]
fn grpc_produce_forwarded_to_a_slow_leader_is_bounded_by_the_shard_buffer() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers: Vec<Broker> = (1..=3)
        .map(|id| {
            let mut b = etcd.broker(id);
            if id == 1 {
                b.extra.extend(["--shard-buffer".into(), "4MiB".into()]);
            } else {
                // Every chunk write on brokers 2 and 3 takes 2 s more: forwarded frames wait.
                b.env.push((
                    "SHARDLOG_FAILPOINTS".into(),
                    "writer.write=sleep(2000)".into(),
                ));
            }
            b.spawn();
            b
        })
        .collect();
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    let r = HttpClient::connect(brokers[0].http).request("POST", "/v1/topics/slow", &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    // A key of a partition broker 2 leads (partition 4 of the default 3 x 4 layout).
    let key = key_for(4);
    let pid = brokers[0].pid();
    let before = common::rss(pid);
    assert!(common::reset_peak(pid), "cannot reset the peak RSS");
    let rt = grpc_client::runtime();
    let calls: Vec<_> = (0..32u64)
        .map(|call| {
            let (addr, key) = (brokers[0].http, key.clone());
            rt.spawn(async move {
                let mut c = grpc_client::Client::new(grpc_client::connect(addr).await);
                // 32 calls of 128 values of 256 KiB each: 1 GiB offered in all.
                let values = (0..128).map(move |n| shardlog::proto::log::ProduceRequest {
                    value: common::incompressible(
                        format!("slow{call}|{n}|").as_bytes(),
                        256 << 10,
                        n,
                    )
                    .into(),
                });
                let md = [("topic", "slow"), ("partition-key", key.as_str())];
                let _ = c
                    .produce_stream(&md, tonic::codegen::tokio_stream::iter(values), None)
                    .await;
            })
        })
        .collect();
    // Meanwhile broker 1's budget fills with the frames waiting for the leader, and no more.
    let (mut most, capacity) = (0, 4u64 << 20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    while std::time::Instant::now() < deadline {
        let r = HttpClient::connect(brokers[0].http).request("GET", "/metrics", &[], b"");
        let buffered: u64 = r
            .text()
            .lines()
            .filter(|l| l.starts_with("shardlog_buffered_bytes{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum();
        most = most.max(buffered);
        assert!(
            buffered <= capacity,
            "{buffered} bytes buffered, past the 4 MiB budget"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for c in calls {
        c.abort();
    }
    assert!(
        most > 1 << 20,
        "forwarded frames waiting for the leader held only {most} bytes of the shard buffer"
    );
    let grew = common::peak_rss(pid).saturating_sub(before);
    eprintln!("broker 1 grew by {} MiB", grew >> 20);
    assert!(
        grew < 96 << 20,
        "broker 1 grew by {} MiB forwarding to a slow leader with a 4 MiB shard buffer",
        grew >> 20
    );
}
