//! `atomix.log.LogService` end to end with an independent client (tonic): produce then consume
//! in order, tailing, partition routing by key and index, bad metadata, odd DATA frame splits,
//! deadlines, and many concurrent streams over one and several connections.

mod common;
mod grpc_client;

use std::collections::HashMap;
use std::time::Duration;

use common::Broker;
use grpc_client::{connect, raw_call, runtime, ChannelStream, Client};
use shardlog::proto::log::ProduceRequest;
use shardlog::ring::TopicLayout;
use tonic::Code;

/// A deadline ended the call: the server's DEADLINE_EXCEEDED, or tonic's own timer.
fn is_deadline(s: &tonic::Status) -> bool {
    s.code() == Code::DeadlineExceeded
        || (s.code() == Code::Cancelled && s.message().contains("Timeout"))
}

fn key_of(conn: usize, stream: usize) -> String {
    format!("c{conn}s{stream}")
}

fn values(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect()
}

#[test]
fn produce_then_consume_in_order() {
    let broker = Broker::start(2);
    runtime().block_on(async {
        let mut c = Client::new(connect(broker.http).await);
        let md = [("topic", "orders")];
        let before = shardlog::rt::now_us() as u64;
        for call in 0..3 {
            c.produce(&md, values(&format!("call{call}"), 100))
                .await
                .unwrap();
        }
        let records = c.consume_n(&md, 0, 300).await.unwrap();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as u64);
            let want = format!("call{}-{}", i / 100, i % 100);
            assert_eq!(r.value, want.as_bytes(), "offset {i}");
            assert!(r.timestamp >= before, "timestamp is µs since the epoch");
        }
        // From the middle.
        let records = c.consume_n(&md, 150, 150).await.unwrap();
        assert_eq!(records[0].offset, 150);
        assert_eq!(records[0].value, &b"call1-50"[..]);
        // An empty Produce stream is fine and adds nothing.
        c.produce(&md, Vec::new()).await.unwrap();
    });
}

#[test]
fn consume_tails_new_records() {
    let broker = Broker::start(2);
    runtime().block_on(async {
        let ch = connect(broker.http).await;
        let md = [("topic", "tail")];
        let mut consumer = Client::new(ch.clone());
        let reader = tokio::spawn(async move { consumer.consume_n(&md, 0, 30).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut producer = Client::new(ch);
        for batch in 0..3 {
            producer
                .produce(&md, values(&format!("b{batch}"), 10))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let records = reader.await.unwrap().unwrap();
        let got: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
            .collect();
        let want: Vec<String> = (0..30).map(|i| format!("b{}-{}", i / 10, i % 10)).collect();
        assert_eq!(got, want);
    });
}

#[test]
fn partition_key_and_index_address_the_same_partition() {
    let broker = Broker::start(2);
    runtime().block_on(async {
        let mut c = Client::new(connect(broker.http).await);
        // The layout a 2-shard broker gives new topics (4 ranges per shard).
        let layout = TopicLayout::new(2, 4);
        let key = "customer-42";
        let j = layout.partition_of_key(key.as_bytes()).to_string();
        c.produce(
            &[("topic", "keyed"), ("partition-key", key)],
            values("k", 5),
        )
        .await
        .unwrap();
        let records = c
            .consume_n(&[("topic", "keyed"), ("partition", &j)], 0, 5)
            .await
            .unwrap();
        assert_eq!(records[4].value, &b"k-4"[..]);
        // Nothing went to partition 0 unless that is the key's partition.
        if j != "0" {
            let mut s = c
                .consume(&[("topic", "keyed")], 0, Some(Duration::from_millis(300)))
                .await;
            let err = match s.as_mut() {
                Ok(s) => s.message().await.unwrap_err(),
                Err(e) => e.clone(),
            };
            assert!(is_deadline(&err), "{err:?}");
        }
    });
}

#[test]
fn bad_metadata_is_invalid_argument() {
    let broker = Broker::start(1);
    runtime().block_on(async {
        let mut c = Client::new(connect(broker.http).await);
        for md in [
            vec![("topic", "a/b")],
            vec![("topic", "")],
            vec![("partition", "99")],
            vec![("partition", "one")],
            vec![("partition", "0"), ("partition-key", "k")],
        ] {
            let err = c.produce(&md, values("x", 1)).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{md:?}: {err:?}");
            let err = c.consume(&md, 0, None).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{md:?}: {err:?}");
        }
    });
}

#[test]
fn consume_deadline_is_deadline_exceeded() {
    let broker = Broker::start(1);
    runtime().block_on(async {
        // Past the end: the call waits for data until its deadline. Raw HTTP/2, so that it is
        // the server's deadline that ends the call (tonic also enforces grpc-timeout itself).
        let mut request = Vec::new();
        shardlog::wire::grpc::encode(&[0x08, 10], &mut request); // ConsumeRequest{offset: 10}
        let started = std::time::Instant::now();
        let r = raw_call(
            broker.http,
            "/atomix.log.LogService/Consume",
            &[
                ("content-type", "application/grpc"),
                ("topic", "empty"),
                ("grpc-timeout", "200m"),
            ],
            vec![request],
        )
        .await;
        assert_eq!(r.grpc_status().as_deref(), Some("4"), "{r:?}");
        assert!(r.body.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(190));
        // Through tonic: the call ends at its deadline, whichever side notices first.
        let mut c = Client::new(connect(broker.http).await);
        let result = c
            .consume(&[("topic", "empty")], 10, Some(Duration::from_millis(200)))
            .await;
        let err = match result {
            Ok(mut s) => s.message().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(is_deadline(&err), "{err:?}");
    });
}

#[test]
fn messages_split_across_data_frames_any_way() {
    let broker = Broker::start(1);
    runtime().block_on(async {
        let mut stream = Vec::new();
        for v in ["one", "", "three", "four"] {
            let body = prost::Message::encode_to_vec(&ProduceRequest {
                value: v.as_bytes().to_vec().into(),
            });
            shardlog::wire::grpc::encode(&body, &mut stream);
        }
        // One byte per DATA frame, then everything in a single frame.
        let splits: [Vec<Vec<u8>>; 2] = [
            stream.chunks(1).map(|c| c.to_vec()).collect(),
            vec![stream.clone()],
        ];
        for frames in splits {
            let r = raw_call(
                broker.http,
                "/atomix.log.LogService/Produce",
                &[("content-type", "application/grpc"), ("topic", "split")],
                frames,
            )
            .await;
            assert_eq!(r.status, 200);
            assert_eq!(
                r.grpc_status().as_deref(),
                Some("0"),
                "{}",
                r.grpc_message()
            );
            assert_eq!(r.body, [0, 0, 0, 0, 0], "one empty ProduceResponse");
        }
        let mut c = Client::new(connect(broker.http).await);
        let got: Vec<Vec<u8>> = c
            .consume_n(&[("topic", "split")], 0, 8)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.value.to_vec())
            .collect();
        let once: Vec<Vec<u8>> = ["one", "", "three", "four"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        assert_eq!(got, [once.clone(), once].concat());
    });
}

#[test]
fn many_streams_on_one_connection_and_many_connections() {
    let broker = Broker::start(2);
    runtime().block_on(async {
        let mut tasks = Vec::new();
        for conn in 0..4 {
            let ch = connect(broker.http).await;
            for s in 0..25 {
                let mut c = Client::new(ch.clone());
                tasks.push(tokio::spawn(async move {
                    let key = key_of(conn, s);
                    // Values trickle in, so each call submits several frames.
                    let (tx, rx) = tokio::sync::mpsc::channel(4);
                    let feeder = tokio::spawn(async move {
                        for v in values(&key_of(conn, s), 20) {
                            let _ = tx.send(ProduceRequest { value: v.into() }).await;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    });
                    let md = [("topic", "busy"), ("partition-key", key.as_str())];
                    let r = c.produce_stream(&md, ChannelStream(rx), None).await;
                    feeder.await.unwrap();
                    r.map(|_| key)
                }));
            }
        }
        let mut keys = Vec::new();
        for t in tasks {
            keys.push(t.await.unwrap().expect("produce"));
        }
        // Read every partition back: each key's values are all there, in order.
        let layout = TopicLayout::new(2, 4);
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for k in &keys {
            *counts
                .entry(layout.partition_of_key(k.as_bytes()))
                .or_default() += 20;
        }
        let mut c = Client::new(connect(broker.http).await);
        let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
        for (j, n) in counts {
            let records = c
                .consume_n(&[("topic", "busy"), ("partition", &j.to_string())], 0, n)
                .await
                .unwrap();
            for r in records {
                let v = String::from_utf8(r.value.to_vec()).unwrap();
                let (key, i) = v.rsplit_once('-').unwrap();
                seen.entry(key.to_string())
                    .or_default()
                    .push(i.parse().unwrap());
            }
        }
        assert_eq!(seen.len(), 100);
        for (k, v) in seen {
            assert_eq!(v, (0..20).collect::<Vec<_>>(), "key {k}");
        }
    });
}

#[test]
fn cancelled_calls_stop_and_the_connection_goes_on() {
    let broker = Broker::start(2);
    runtime().block_on(async {
        let ch = connect(broker.http).await;
        let md = [("topic", "cancel")];
        // A tailing Consume, cancelled by dropping it (RST_STREAM).
        let mut c = Client::new(ch.clone());
        let mut tail = c.consume(&md, 0, None).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(100), tail.message()).await;
        drop(tail);
        // A Produce whose client goes away mid-stream: nothing is acknowledged to it.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut p = Client::new(ch.clone());
        let call =
            tokio::spawn(async move { p.produce_stream(&md, ChannelStream(rx), None).await });
        for v in values("gone", 3) {
            tx.send(ProduceRequest { value: v.into() }).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        // Many calls cancelled at once do not hurt the connection either.
        let mut calls = Vec::new();
        for _ in 0..50 {
            let mut c = Client::new(ch.clone());
            calls.push(tokio::spawn(async move {
                c.consume(&md, 1 << 40, None).await.map(|_| ())
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for call in calls {
            call.abort();
        }
        let mut c = Client::new(ch);
        c.produce(&md, values("after", 2)).await.unwrap();
        assert_eq!(c.health_check("").await.unwrap(), 1);
    });
}

/// Issue 13 item 18: a stored chunk crafted to decompress to 1 GiB (a 32 KiB zstd frame of RLE
/// blocks that declares no content size) is refused as corrupt without decompressing it: the
/// client gets DATA_LOSS, the broker stays up and small, and the chunks after it are served.
#[test]
fn a_chunk_that_expands_beyond_any_frame_is_data_loss() {
    let mut broker = Broker::start(1);
    let md = [("topic", "bomb"), ("partition", "0")];
    runtime().block_on(async {
        let mut c = Client::new(connect(broker.http).await);
        c.produce(&md, values("x", 1)).await.unwrap();
    });
    broker.kill9();
    common::plant_decompression_bomb(&broker.data_dir, "bomb");

    broker.spawn();
    runtime().block_on(async {
        let mut c = Client::new(connect(broker.http).await);
        let err = c.consume_n(&md, 0, 1).await.unwrap_err();
        assert_eq!(err.code(), Code::DataLoss, "{err:?}");
        let records = c.consume_n(&md, 1, 1).await.unwrap();
        assert_eq!(records[0].value, &b"after"[..]);
        // Refused by the bound, before decompressing 1 GiB (not by the checksum after).
        assert!(broker.is_running());
        let peak = common::peak_rss(broker.pid());
        assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
        assert!(err.message().contains("more than"), "{err:?}");
    });
}
