//! Polling over framed TCP from a real broker: everything produced comes back exactly once,
//! in order per key, from the partition its Murmur3 token names, with the stored chunk bytes
//! untouched; long polls wake on a produce; start policies; errors.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::consumer::{bodies, drain, produce_keyed, ConsumerClient, Item};
use common::Broker;
use shardlog::ring::TopicLayout;
use shardlog::wire::consumer::StartPolicy;
use shardlog::wire::{ErrorCode, OpCode};

#[test]
fn produce_then_poll_across_two_shards_exactly_once_in_key_order() {
    let broker = Broker::start(2);
    let produced = produce_keyed(broker.framed, "orders", 600, 37, "a");
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("c1", "g", &["orders"], StartPolicy::Earliest)
        .unwrap();
    let items = drain(&mut c, "c1");

    let got = bodies(&items);
    assert_eq!(got.len(), produced.len(), "every message exactly once");
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len());
    let expected: HashSet<&String> = produced.iter().map(|(_, b)| b).collect();
    assert_eq!(unique, expected);

    let layout = TopicLayout::new(2, 4);
    let mut next_offset: HashMap<(i64, u8), i64> = HashMap::new();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    let mut partitions_seen = HashSet::new();
    for it in &items {
        assert_eq!((it.topic.as_str(), it.gen), ("orders", 1));
        let p = (it.token, it.range_index);
        partitions_seen.insert(p);
        // Offsets are dense per partition and items come in order.
        let expect = next_offset.entry(p).or_insert(0);
        assert_eq!(it.offset, *expect, "partition {p:?}");
        *expect += it.records.len() as i64;
        for (_, _, body) in &it.records {
            let body = String::from_utf8(body.clone()).unwrap();
            let mut parts = body.split('|');
            let (_, key, seq) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            let id = layout.partition_id(layout.partition_of_key(key.as_bytes()));
            assert_eq!(
                (id.token, id.range_index),
                p,
                "key {key} routed by its token"
            );
            let seq: i64 = seq.parse().unwrap();
            let last = last_seq.entry(key.to_string()).or_insert(-1);
            assert_eq!(seq, *last + 1, "key {key} in order");
            *last = seq;
        }
    }
    assert!(
        partitions_seen.len() > 4,
        "data spread over both shards' partitions"
    );
}

/// Finds the chunk starting at `offset` in a partition directory by walking its segment files
/// at 4096-byte positions and parsing chunk headers; returns its payload bytes.
fn chunk_on_disk(dir: &Path, offset: i64) -> Option<Vec<u8>> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    for seg in segments {
        let bytes = std::fs::read(&seg).unwrap();
        let mut pos = 0;
        while pos + 21 <= bytes.len() {
            let h = &bytes[pos..pos + 21];
            let crc = u32::from_be_bytes(h[17..21].try_into().unwrap());
            if h[0] == 0 && crc32fast::hash(&h[..17]) == crc {
                let len = u32::from_be_bytes(h[1..5].try_into().unwrap()) as usize;
                let start = i64::from_be_bytes(h[5..13].try_into().unwrap());
                if start == offset {
                    return bytes.get(pos + 21..pos + 21 + len).map(|p| p.to_vec());
                }
            }
            pos += 4096;
        }
    }
    None
}

#[test]
fn poll_payloads_are_the_chunk_bytes_on_disk() {
    let broker = Broker::start(2);
    produce_keyed(broker.framed, "raw", 200, 11, "x");
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("c", "g", &["raw"], StartPolicy::Earliest)
        .unwrap();
    let items: Vec<Item> = drain(&mut c, "c");
    assert!(!items.is_empty());
    for it in &items {
        let dir = broker
            .data_dir
            .join("raw")
            .join(format!("{}_{}_{}", it.gen, it.token, it.range_index));
        let on_disk = chunk_on_disk(&dir, it.offset)
            .unwrap_or_else(|| panic!("chunk at {} in {}", it.offset, dir.display()));
        assert!(
            on_disk == it.payload,
            "item payload differs from the stored chunk"
        );
    }
}

#[test]
fn long_poll_is_woken_by_a_produce() {
    let broker = Broker::start(2);
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("c", "g", &["wake"], StartPolicy::Earliest)
        .unwrap();
    assert!(c.poll("c", None).unwrap().is_empty());
    let addr = broker.framed;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        produce_keyed(addr, "wake", 1, 1, "late")
    });
    let t = Instant::now();
    let items = c.poll("c", Some(20_000)).unwrap();
    let waited = t.elapsed();
    producer.join().unwrap();
    assert_eq!(bodies(&items), vec!["late|key-0|0"]);
    assert!(
        waited >= Duration::from_millis(300),
        "it waited: {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "woken early: {waited:?}");
    // With nothing to read, a long poll answers empty when its wait is over.
    let t = Instant::now();
    assert!(c.poll("c", Some(300)).unwrap().is_empty());
    assert!(t.elapsed() >= Duration::from_millis(250));
}

#[test]
fn a_new_group_starts_at_latest_or_earliest_as_asked() {
    let broker = Broker::start(2);
    produce_keyed(broker.framed, "pol", 50, 5, "old");
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("late", "g-latest", &["pol"], StartPolicy::Latest)
        .unwrap();
    c.register("early", "g-earliest", &["pol"], StartPolicy::Earliest)
        .unwrap();
    assert!(drain(&mut c, "late").is_empty());
    produce_keyed(broker.framed, "pol", 20, 5, "new");
    let late = bodies(&drain(&mut c, "late"));
    assert_eq!(late.len(), 20);
    assert!(late.iter().all(|b| b.starts_with("new|")));
    assert_eq!(bodies(&drain(&mut c, "early")).len(), 70);
}

#[test]
fn small_max_poll_bytes_splits_polls_but_loses_nothing() {
    let broker = Broker::start_with(2, &["--max-poll-bytes", "1KiB"]);
    let produced = produce_keyed(broker.framed, "small", 300, 7, "s");
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("c", "g", &["small"], StartPolicy::Earliest)
        .unwrap();
    let mut polls = 0;
    let mut got = Vec::new();
    loop {
        let raw = c.poll_raw("c", None).unwrap();
        let items = common::consumer::decode_items(&raw);
        if items.is_empty() {
            break;
        }
        assert!(
            items.len() == 1 || raw.len() <= 1024,
            "bounded: {}",
            raw.len()
        );
        polls += 1;
        got.extend(bodies(&items));
    }
    assert!(polls > 1);
    let mut want: Vec<String> = produced.into_iter().map(|(_, b)| b).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn bad_consumer_requests_get_clear_errors() {
    let broker = Broker::start(1);
    let mut c = ConsumerClient::connect(broker.framed);
    let (code, msg) = c.poll("nobody", None).unwrap_err();
    assert_eq!(code, ErrorCode::UnknownConsumer as u8);
    assert!(msg.contains("nobody"), "{msg}");
    assert_eq!(c.commit("nobody").unwrap_err().0, 7);
    assert_eq!(c.goodbye("nobody").unwrap_err().0, 7);
    let (code, msg) = c
        .register("c", "g", &["bad/topic"], StartPolicy::Earliest)
        .unwrap_err();
    assert_eq!(code, ErrorCode::BadRequest as u8);
    assert!(msg.contains("topic"), "{msg}");
    assert_eq!(
        c.register("c", "no group!", &["t"], StartPolicy::Earliest)
            .unwrap_err()
            .0,
        4
    );
    let (op, body) = c.request(OpCode::Poll, b"\x05ab");
    assert_eq!((op, body[0]), (OpCode::Error, 4));
    let (op, body) = c.request(OpCode::PollResponse, b"");
    assert_eq!((op, body[0]), (OpCode::Error, 4));
    // The connection is still usable.
    c.register("c", "g", &["t"], StartPolicy::Earliest).unwrap();
    assert!(c.poll("c", None).unwrap().is_empty());
    c.goodbye("c").unwrap();
    assert_eq!(c.poll("c", None).unwrap_err().0, 7);
}

#[test]
fn a_consumer_that_registers_again_after_a_crash_gets_its_unconfirmed_poll_again() {
    let broker = Broker::start(2);
    let produced = produce_keyed(broker.framed, "redo", 50, 7, "r");
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("crashy", "g", &["redo"], StartPolicy::Earliest)
        .unwrap();
    let first = c.poll("crashy", None).unwrap();
    assert!(!first.is_empty());
    // The consumer crashes: its connection drops before it confirmed that poll.
    drop(c);
    // It comes back with the same id, on a new connection (and so maybe another shard).
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("crashy", "g", &["redo"], StartPolicy::Earliest)
        .unwrap();
    let again = c.poll("crashy", None).unwrap();
    assert_eq!(bodies(&again), bodies(&first), "the unconfirmed poll again");
    // Nothing is lost or repeated after that.
    let mut all = again;
    all.extend(drain(&mut c, "crashy"));
    let mut got = bodies(&all);
    got.sort();
    let mut want: Vec<String> = produced.into_iter().map(|(_, b)| b).collect();
    want.sort();
    assert_eq!(got, want);
}
