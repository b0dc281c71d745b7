//! PRODUCE with flag 0x08: records a producer compressed itself, against a real broker. They
//! share chunks with plain frames in arrival order, survive `kill -9`, come back through FETCH
//! and the client library byte for byte, and anything that is not what it declares is refused
//! with nothing stored.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{read_topic, runtime, Broker, Client, Response};
use shardlog::wire::frame::{encode_frame, Flags, OpCode};
use shardlog::wire::produce::encode_produce_body;
use shardlog::wire::produce_compressed::CompressedEncoder;
use shardlog::wire::ErrorCode;
use shardlog_client::{PartitionReader, Producer, ProducerConfig, ReaderConfig};

const TS: i64 = 1_700_000_000_000_000;

/// A compressed PRODUCE frame of `msgs` stamped `ts`.
fn compressed_frame(sid: u16, key: &[u8], ts: i64, msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    CompressedEncoder::new(1)
        .unwrap()
        .encode(key, ts, msgs.iter().map(|m| &m[..]), &mut body)
        .unwrap();
    let mut f = Vec::new();
    encode_frame(&mut f, OpCode::Produce, Flags::COMPRESSED, sid, &body);
    f
}

/// Every record of one partition from offset 0, through FETCH and the client library.
async fn read_to_end(addr: &str, topic: &str, partition: u32) -> Vec<shardlog_client::Record> {
    let mut config = ReaderConfig::new(addr, topic, partition, 0);
    config.max_wait = Duration::from_millis(100);
    let mut reader = PartitionReader::connect(config).await.unwrap();
    common::framed::read_until_empty(&mut reader).await
}

fn plain_frame(sid: u16, key: &[u8], msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    encode_produce_body(None, key, msgs.iter().map(|m| &m[..]), &mut body);
    let mut f = Vec::new();
    encode_frame(&mut f, OpCode::Produce, 0, sid, &body);
    f
}

/// Frames of one key, plain and compressed in turn, pipelined (up to 32 in flight) so they
/// meet in the writer's queue and share chunks. Returns every message in send order.
fn produce_mixed(client: &mut Client, key: &[u8], frames: usize) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    let mut in_flight = 0;
    for i in 0..frames {
        let msgs: Vec<Vec<u8>> = (0..5)
            .map(|m| {
                format!(
                    "{{\"frame\":{i},\"m\":{m},\"pad\":\"{}\"}}",
                    "x".repeat(i % 50)
                )
                .into_bytes()
            })
            .collect();
        let sid = i as u16 + 1;
        let frame = if i % 2 == 0 {
            plain_frame(sid, key, &msgs)
        } else {
            compressed_frame(sid, key, TS + i as i64, &msgs)
        };
        client.send_raw(&frame);
        sent.extend(msgs);
        in_flight += 1;
        if in_flight == 32 {
            assert!(matches!(client.recv(), Some(Response::Produced(_))));
            in_flight -= 1;
        }
    }
    for _ in 0..in_flight {
        assert!(matches!(client.recv(), Some(Response::Produced(_))));
    }
    sent
}

#[test]
fn compressed_and_plain_frames_share_chunks_in_order_and_survive_kill9() {
    let mut broker = Broker::start(1);
    let mut c = Client::startup(broker.framed, "mixed");
    let sent = produce_mixed(&mut c, b"one-key", 400);
    drop(c);
    // Frames shared chunks, and the raw bytes counted include the compressed frames' records.
    let metrics = common::http::HttpClient::connect(broker.http)
        .request("GET", "/metrics", &[], b"")
        .text();
    let total = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("topic=\"mixed\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let chunks = total("shardlog_chunks_written_total");
    assert!(
        (1.0..400.0).contains(&chunks),
        "{chunks} chunks for 400 frames"
    );
    let raw: usize = sent.iter().map(|m| 12 + m.len()).sum();
    assert_eq!(total("shardlog_raw_bytes_in_total"), raw as f64);
    broker.kill9();

    // What recovery finds: every message once, in order, dense offsets; the compressed
    // frames' records keep the producer's timestamps.
    let stored = read_topic(&broker.data_dir, "mixed");
    let bodies: Vec<&[u8]> = stored.iter().map(|r| &r.body[..]).collect();
    assert_eq!(bodies, sent.iter().map(|m| &m[..]).collect::<Vec<_>>());
    let offsets: Vec<i64> = stored.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..sent.len() as i64).collect::<Vec<_>>());
    for (i, r) in stored.iter().enumerate() {
        let frame = i / 5;
        if frame % 2 == 1 {
            assert_eq!(r.timestamp_us, TS + frame as i64);
        }
    }

    // After a restart, FETCH serves the stored chunks (several zstd frames each) and the
    // client library decodes them.
    broker.spawn();
    let addr = broker.framed.to_string();
    let partition = shardlog::ring::TopicLayout::new(1, 4).partition_of_key(b"one-key");
    let got = runtime().block_on(async move { read_to_end(&addr, "mixed", partition).await });
    assert_eq!(got.len(), sent.len());
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(&r.value[..], &sent[i][..]);
    }
}

/// Compressed frames that are not what they declare: each refused with `bad-request` and a
/// reason, nothing of them stored, and the connection keeps serving.
#[test]
fn bad_compressed_frames_are_refused_and_nothing_is_stored() {
    let mut broker = Broker::start(1);
    let mut c = Client::startup(broker.framed, "strict");
    let msgs = vec![b"one".to_vec(), b"two".to_vec()];
    let good = compressed_frame(1, b"k", TS, &msgs);
    let body = &good[13..];
    // The record count sits after `key len | key`: 1 + 1 bytes.
    let with_count = |count: u32| {
        let mut b = body.to_vec();
        b[2..6].copy_from_slice(&count.to_be_bytes());
        b
    };
    let zstd_of = |raw: &[u8], checksum: bool| {
        let mut z = zstd::bulk::Compressor::new(1).unwrap();
        z.include_checksum(checksum).unwrap();
        z.compress(raw).unwrap()
    };
    let with_payload = |count: u32, payload: &[u8]| {
        let mut b = vec![1, b'k'];
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(payload);
        b
    };
    let mut flipped = body.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff; // the content checksum
                           // One record of 64 MiB of zeros: a few KB compressed, past --max-frame-size uncompressed.
    let mut huge = Vec::new();
    shardlog::wire::record::encode_record(TS, &vec![0u8; 64 << 20], &mut huge);
    let cases: Vec<(&str, u8, Vec<u8>, &str)> = vec![
        (
            "count too high",
            Flags::COMPRESSED,
            with_count(3),
            "declares 3 records",
        ),
        (
            "count zero",
            Flags::COMPRESSED,
            with_count(0),
            "no messages",
        ),
        ("checksum", Flags::COMPRESSED, flipped, "zstd"),
        (
            "not zstd",
            Flags::COMPRESSED,
            with_payload(1, b"plain text, not zstd"),
            "zstd frames",
        ),
        (
            "no checksum",
            Flags::COMPRESSED,
            with_payload(2, &zstd_of(b"x", false)),
            "content checksum",
        ),
        (
            "not records",
            Flags::COMPRESSED,
            with_payload(1, &zstd_of(b"abc", true)),
            "malformed",
        ),
        (
            "bomb",
            Flags::COMPRESSED,
            with_payload(1, &zstd_of(&huge, true)),
            "more than",
        ),
        (
            "timestamp flag",
            Flags::COMPRESSED | Flags::WITH_TIMESTAMP,
            body.to_vec(),
            "0x01",
        ),
    ];
    let mut why = HashMap::new();
    for (i, (name, flags, body, _)) in cases.iter().enumerate() {
        let mut f = Vec::new();
        encode_frame(&mut f, OpCode::Produce, *flags, 100 + i as u16, body);
        c.send_raw(&f);
        match c.recv() {
            Some(Response::Error { code, message, .. }) => {
                assert_eq!(code, ErrorCode::BadRequest as u8, "{name}: {message}");
                why.insert(*name, message);
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    for (name, _, _, reason) in &cases {
        assert!(why[name].contains(reason), "{name}: {}", why[name]);
    }
    // The same connection still stores a good frame.
    c.send_raw(&good);
    assert_eq!(c.recv(), Some(Response::Produced(1)));
    drop(c);
    broker.kill9();
    let stored = read_topic(&broker.data_dir, "strict");
    let bodies: Vec<&[u8]> = stored.iter().map(|r| &r.body[..]).collect();
    assert_eq!(bodies, vec![&b"one"[..], b"two"]);
}

/// The client library's `compression` option: batches compressed by the producer, read back
/// through FETCH in order.
#[test]
fn a_producer_with_compression_sends_compressed_batches() {
    let broker = Broker::start(1);
    let addr = broker.framed.to_string();
    let partition = shardlog::ring::TopicLayout::new(1, 4).partition_of_key(b"k");
    runtime().block_on(async move {
        let mut config = ProducerConfig::new(&addr);
        config.compression = Some(3);
        let producer = Producer::new(config).unwrap();
        let mut ds = Vec::new();
        for i in 0..2000 {
            ds.push(
                producer
                    .send("zipped", Some(b"k"), format!("value {i}"))
                    .await
                    .unwrap(),
            );
        }
        for d in ds {
            d.await.unwrap();
        }
        let got = read_to_end(&addr, "zipped", partition).await;
        let values: Vec<String> = got
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect();
        assert_eq!(
            values,
            (0..2000).map(|i| format!("value {i}")).collect::<Vec<_>>()
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        assert!(got
            .iter()
            .all(|r| r.timestamp_us > now - 600_000_000 && r.timestamp_us <= now));
    });
}
