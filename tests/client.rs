//! The Rust client (`shardlog-client`) against a real broker: a producer's deliveries resolve
//! only once messages are stored, keys stay in order, a consumer group reads everything back,
//! backpressure holds `send` while acknowledgements lag, and a broker restart is retried
//! through (at-least-once) without reordering a key's messages.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{runtime, Broker};
use shardlog_client::{
    ClientError, Consumer, ConsumerConfig, Delivery, Producer, ProducerConfig, Record,
};

/// Polls until `n` distinct (key, seq) values arrived or nothing came for a while.
async fn consume(consumer: &mut Consumer, n: usize) -> Vec<Record> {
    let mut all = Vec::new();
    let mut empty = 0;
    while all.len() < n && empty < 10 {
        let got = consumer.poll().await.expect("poll");
        empty = if got.is_empty() { empty + 1 } else { 0 };
        all.extend(got);
    }
    all
}

/// Checks each key's values arrive in the order they were sent (`key|seq`), and returns how
/// many distinct values arrived.
fn check_key_order(records: &[Record]) -> usize {
    let mut by_partition: HashMap<_, Vec<&Record>> = HashMap::new();
    for r in records {
        by_partition.entry(r.partition).or_default().push(r);
    }
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut distinct = std::collections::HashSet::new();
    for recs in by_partition.values_mut() {
        recs.sort_by_key(|r| r.offset);
        for r in recs.iter() {
            let text = std::str::from_utf8(&r.value).unwrap();
            let (key, seq) = text.rsplit_once('|').unwrap();
            let seq: i64 = seq.parse().unwrap();
            if let Some(prev) = last.get(key) {
                assert!(
                    seq > *prev || distinct.contains(text),
                    "{key}: {seq} after {prev}"
                );
            }
            last.insert(key.to_string(), seq);
            distinct.insert(text.to_string());
        }
    }
    distinct.len()
}

#[test]
fn produced_messages_come_back_through_a_group_in_key_order() {
    let broker = Broker::start(2);
    let addr = broker.framed.to_string();
    runtime().block_on(async move {
        let producer = Producer::new(ProducerConfig::new(&addr)).unwrap();
        let mut deliveries: Vec<Delivery> = Vec::new();
        let mut seq = vec![0i64; 40];
        for i in 0..8_000 {
            let k = i % 40;
            let key = format!("key-{k}");
            let value = format!("{key}|{}", seq[k]);
            seq[k] += 1;
            deliveries.push(
                producer
                    .send("orders", Some(key.as_bytes()), value)
                    .await
                    .unwrap(),
            );
        }
        for i in 0..2_000 {
            // Keyless messages spread over connections, so over partitions: no order to check.
            let value = format!("keyless-{i}|0");
            deliveries.push(producer.send("orders", None, value).await.unwrap());
        }
        for d in deliveries {
            d.await.expect("acknowledged");
        }

        let mut consumer = Consumer::join(ConsumerConfig::new(&addr, "g", "member-1", &["orders"]))
            .await
            .unwrap();
        let records = consume(&mut consumer, 10_000).await;
        assert_eq!(check_key_order(&records), 10_000);
        consumer.close().await.unwrap();

        // Everything was committed: a new member of the group gets nothing.
        let mut again = Consumer::join(ConsumerConfig::new(&addr, "g", "member-2", &["orders"]))
            .await
            .unwrap();
        assert!(again.poll().await.unwrap().is_empty());
        again.close().await.unwrap();
    });
}

#[test]
fn send_waits_while_acknowledgements_lag() {
    let broker = Broker::start(1);
    let addr = broker.framed.to_string();
    let rt = runtime();
    let producer = Producer::new(ProducerConfig {
        max_unacked_bytes: 64 << 10,
        ..ProducerConfig::new(&addr)
    })
    .unwrap();
    // A first message opens the connection while the broker runs.
    rt.block_on(async {
        producer
            .send("bp", None, "warm-up")
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let pid = broker.pid() as i32;
    // SAFETY: signals to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let (sent, blocked) = rt.block_on(async {
        let mut sent = Vec::new();
        let value = vec![b'x'; 1000];
        loop {
            match tokio::time::timeout(
                Duration::from_millis(500),
                producer.send("bp", None, value.clone()),
            )
            .await
            {
                Ok(d) => sent.push(d.unwrap()),
                Err(_) => break (sent, true),
            }
            assert!(sent.len() < 1000, "send never waited");
        }
    });
    assert!(blocked);
    // About 64 KiB of 1 KiB messages went out before `send` waited.
    assert!((50..=70).contains(&sent.len()), "{} sent", sent.len());
    unsafe { libc::kill(pid, libc::SIGCONT) };
    rt.block_on(async {
        for d in sent {
            d.await.expect("acknowledged after the broker resumed");
        }
        producer.flush().await;
    });
}

/// Sends `key|i` to `topic` for every `i` in `range`, the keys taken in turn; the deliveries.
fn send_keyed(
    rt: &tokio::runtime::Runtime,
    producer: &Producer,
    topic: &str,
    keys: &[&str],
    range: std::ops::Range<usize>,
) -> Vec<Delivery> {
    rt.block_on(async {
        let mut v = Vec::new();
        for i in range {
            let key = keys[i % keys.len()];
            let value = format!("{key}|{i}");
            v.push(
                producer
                    .send(topic, Some(key.as_bytes()), value)
                    .await
                    .unwrap(),
            );
        }
        v
    })
}

/// Reads `topic` back through a new group: `n` distinct values, every key's in order.
fn read_back_in_key_order(rt: &tokio::runtime::Runtime, broker: &Broker, topic: &str, n: usize) {
    let addr = broker.framed.to_string();
    rt.block_on(async move {
        let mut c = Consumer::join(ConsumerConfig::new(&addr, "g", "m", &[topic]))
            .await
            .unwrap();
        let records = consume(&mut c, n).await;
        assert_eq!(
            check_key_order(&records),
            n,
            "every acknowledged message, once or more, each key in order"
        );
        c.close().await.unwrap();
    });
}

#[test]
fn a_broker_restart_is_retried_through() {
    let mut broker = Broker::start(1);
    let addr = broker.framed.to_string();
    let rt = runtime();
    let producer = Producer::new(ProducerConfig {
        retries: 30,
        retry_backoff: Duration::from_millis(20),
        ..ProducerConfig::new(&addr)
    })
    .unwrap();
    for d in send_keyed(&rt, &producer, "restart", &["k"], 0..500) {
        rt.block_on(d).unwrap();
    }
    broker.kill9();
    // Sent while the broker is down: retried until it is back.
    let second = send_keyed(&rt, &producer, "restart", &["k"], 500..1000);
    broker.spawn();
    for d in second {
        rt.block_on(d).expect("delivered after the restart");
    }
    read_back_in_key_order(&rt, &broker, "restart", 1000);
}

/// Many small batches of several keys in flight on a stopped broker when it is killed, and more
/// sent while it is down: after the restart every one is retried, and each key's messages are
/// stored in the order they were sent (retries go in dispatch order, ahead of later batches).
#[test]
fn batches_pending_across_a_restart_keep_key_order() {
    let mut broker = Broker::start(1);
    let addr = broker.framed.to_string();
    let rt = runtime();
    let producer = Producer::new(ProducerConfig {
        retries: 40,
        retry_backoff: Duration::from_millis(5),
        max_batch_bytes: 120,
        linger: Duration::from_millis(1),
        connections_per_topic: 2,
        max_in_flight: 64,
        ..ProducerConfig::new(&addr)
    })
    .unwrap();
    let keys = ["a", "b", "c", "d", "e"];
    // Connections made and READY before the broker stops.
    for d in send_keyed(&rt, &producer, "pending", &keys, 0..50) {
        rt.block_on(d).unwrap();
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(broker.pid() as i32, libc::SIGSTOP) };
    // Handed over to the stopped broker's sockets, never answered.
    let mut pending = send_keyed(&rt, &producer, "pending", &keys, 50..1050);
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
    broker.kill9();
    // Dispatched while it is down.
    pending.extend(send_keyed(&rt, &producer, "pending", &keys, 1050..1550));
    broker.spawn();
    for d in pending {
        rt.block_on(d).expect("delivered after the restart");
    }
    read_back_in_key_order(&rt, &broker, "pending", 1550);
}

#[test]
fn errors_are_typed() {
    let broker = Broker::start(1);
    let addr = broker.framed.to_string();
    runtime().block_on(async move {
        let producer = Producer::new(ProducerConfig::new(&addr)).unwrap();
        let bad_topic = producer.send("no/slash", None, "x").await;
        assert!(
            matches!(bad_topic, Err(ClientError::Invalid(_))),
            "{:?}",
            bad_topic.err()
        );
        let long_key = vec![b'k'; 300];
        assert!(matches!(
            producer.send("t", Some(&long_key), "x").await,
            Err(ClientError::Invalid(_))
        ));
        let refused = Consumer::join(ConsumerConfig::new(&addr, "", "m", &["t"])).await;
        match refused {
            Err(e @ ClientError::Broker { .. }) => assert!(!e.is_retryable(), "{e}"),
            other => panic!("expected a refusal, got {:?}", other.err()),
        }
        let nobody = Producer::new(ProducerConfig {
            retries: 0,
            ..ProducerConfig::new("127.0.0.1:1")
        })
        .unwrap();
        let d = nobody.send("t", None, "x").await.unwrap();
        assert!(matches!(d.await, Err(ClientError::Connect { .. })));
    });
}

/// FETCH through `PartitionReader`: one partition from any offset without a group; a read
/// never creates a topic; a bad partition, an unknown topic and a malformed body are refused
/// with their codes.
#[test]
fn a_partition_reader_reads_from_any_offset() {
    use shardlog::ring::TopicLayout;
    use shardlog::wire::ErrorCode;
    use shardlog_client::{PartitionReader, ReaderConfig};

    let broker = Broker::start(2);
    let addr = broker.framed.to_string();
    let data_dir = broker.data_dir.clone();
    runtime().block_on(async move {
        let producer = Producer::new(ProducerConfig::new(&addr)).unwrap();
        let mut ds = Vec::new();
        for i in 0..300 {
            ds.push(
                producer
                    .send("replay", Some(b"one-key"), format!("v{i}"))
                    .await
                    .unwrap(),
            );
        }
        for d in ds {
            d.await.unwrap();
        }
        // The default layout: 2 shards × 4 ranges.
        let j = TopicLayout::new(2, 4).partition_of_key(b"one-key");
        for from in [0i64, 137, 299] {
            let mut config = ReaderConfig::new(&addr, "replay", j, from);
            config.max_bytes = 1024; // several fetches
            config.max_wait = Duration::from_millis(100);
            let mut reader = PartitionReader::connect(config).await.unwrap();
            let got = common::framed::read_until_empty(&mut reader).await;
            let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, (from..300).collect::<Vec<_>>());
            for r in &got {
                assert_eq!(r.value, format!("v{}", r.offset).as_bytes());
            }
            assert_eq!(reader.position(), Some(300));
        }

        let refused = |e: ClientError| e.code();
        let mut past = PartitionReader::connect(ReaderConfig::new(&addr, "replay", 8, 0))
            .await
            .unwrap();
        assert_eq!(
            refused(past.next_batch().await.unwrap_err()),
            Some(ErrorCode::NotFound)
        );
        let mut typo = PartitionReader::connect(ReaderConfig::new(&addr, "replya", 0, 0))
            .await
            .unwrap();
        assert_eq!(
            refused(typo.next_batch().await.unwrap_err()),
            Some(ErrorCode::NotFound)
        );
        assert!(!data_dir.join("replya").exists(), "a read created a topic");
    });

    // A malformed FETCH body is BAD_REQUEST, and the connection goes on serving.
    let mut c = common::Client::connect(broker.framed);
    let mut frame = Vec::new();
    shardlog::wire::frame::encode_frame(
        &mut frame,
        shardlog::wire::OpCode::Fetch,
        0,
        5,
        b"\x03abc",
    );
    c.send_raw(&frame);
    match c.recv() {
        Some(common::Response::Error {
            stream_id: 5,
            code: 4,
            ..
        }) => {}
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }
    let mut c = common::framed::FramedProducer::startup(broker.framed, "replay");
    assert_eq!(c.produce(b"", &[b"still serving"]), Ok(()));
}

/// Manual commits: a member commits exactly the records it processed (COMMIT with explicit
/// positions, inside a chunk); the next member of the group starts exactly there — the
/// chunk it resumes in is trimmed to the position — and gets the rest exactly once.
#[test]
fn manual_commits_confirm_exactly_what_was_processed() {
    let broker = Broker::start(1);
    let addr = broker.framed.to_string();
    runtime().block_on(async move {
        let producer = Producer::new(ProducerConfig::new(&addr)).unwrap();
        let mut ds = Vec::new();
        for i in 0..100 {
            ds.push(
                producer
                    .send("manual", Some(b"k"), format!("k|{i}"))
                    .await
                    .unwrap(),
            );
        }
        for d in ds {
            d.await.unwrap();
        }
        let member = |id: &str| {
            let mut c = ConsumerConfig::new(&addr, "g", id, &["manual"]);
            c.auto_commit = false;
            c.max_wait = Duration::from_millis(100);
            c
        };
        let mut a = Consumer::join(member("a")).await.unwrap();
        let first = a.poll().await.unwrap();
        assert!(
            first.len() >= 10,
            "the batched produce made multi-record chunks"
        );
        let processed = &first[..7];
        a.commit_records(processed).await.unwrap();
        // Polling again without committing more: the rest of the first poll comes back.
        let again = a.poll().await.unwrap();
        assert_eq!(again.first().map(|r| r.offset), Some(7));
        a.commit_records(&again[..3]).await.unwrap();
        a.close().await.unwrap(); // GOODBYE confirms only the 10 processed

        let mut b = Consumer::join(member("b")).await.unwrap();
        let mut rest = Vec::new();
        loop {
            let got = b.poll().await.unwrap();
            if got.is_empty() {
                break;
            }
            b.commit_records(&got).await.unwrap();
            rest.extend(got);
        }
        let offsets: Vec<i64> = rest.iter().map(|r| r.offset).collect();
        assert_eq!(
            offsets,
            (10..100).collect::<Vec<_>>(),
            "exactly the unprocessed ones"
        );
        b.close().await.unwrap();
    });
}

/// COMMIT positions the consumer may not commit are refused whole: another member's
/// partition, an offset past what it was given, a partition the topic does not have.
#[test]
fn explicit_commits_are_checked() {
    use common::consumer::ConsumerClient;
    use shardlog::wire::commit::{CommitBody, CommitPosition};
    use shardlog::wire::consumer::StartPolicy;
    use shardlog::wire::OpCode;

    let broker = Broker::start(1);
    common::consumer::produce_keyed(broker.framed, "checked", 40, 8, "x");
    let mut a = ConsumerClient::connect(broker.framed);
    let mut b = ConsumerClient::connect(broker.framed);
    a.register("a", "g", &["checked"], StartPolicy::Earliest)
        .unwrap();
    b.register("b", "g", &["checked"], StartPolicy::Earliest)
        .unwrap();
    let items = a.poll("a", None).unwrap();
    assert!(!items.is_empty());
    let it = &items[0];
    let position = |token, range_index, offset| CommitPosition {
        topic: "checked".into(),
        token,
        range_index,
        gen: it.gen,
        offset,
    };
    let commit = |c: &mut ConsumerClient, id: &str, ps: Vec<CommitPosition>| {
        let mut body = Vec::new();
        CommitBody {
            consumer_id: id.into(),
            positions: Some(ps),
        }
        .encode(&mut body);
        c.request(OpCode::Commit, &body)
    };
    let end = it.offset + it.records.len() as i64;
    // Fine: inside what was given.
    let (op, _) = commit(
        &mut a,
        "a",
        vec![position(it.token, it.range_index, end - 1)],
    );
    assert_eq!(op, OpCode::Ready);
    let code = |(op, body): (OpCode, Vec<u8>)| {
        assert_eq!(op, OpCode::Error);
        shardlog::wire::error::parse_error_body(&body).unwrap().0
    };
    // Past what it was given.
    assert_eq!(
        code(commit(
            &mut a,
            "a",
            vec![position(it.token, it.range_index, end + 1)]
        )),
        4
    );
    // Not its partition: b owns none of a's.
    assert_eq!(
        code(commit(
            &mut b,
            "b",
            vec![position(it.token, it.range_index, 0)]
        )),
        4
    );
    // No such partition.
    assert_eq!(
        code(commit(
            &mut a,
            "a",
            vec![position(it.token + 1, it.range_index, 0)]
        )),
        8
    );
    // Nothing changed by the refused ones: a's next poll starts at end - 1.
    let next = a.poll("a", None).unwrap();
    let same = next
        .iter()
        .find(|i| i.token == it.token && i.range_index == it.range_index)
        .expect("the partition again");
    assert_eq!(same.offset, end - 1);
}
