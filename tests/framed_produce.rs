//! Producing over framed TCP to a real broker, then reading back what is on disk.

mod common;

use std::collections::HashMap;
use std::thread;

use common::{read_topic, Broker, Client, Response};
use shardlog::ring::TopicLayout;

/// Produces `frames` frames of `per_frame` messages from one connection, each frame keyed by
/// `key_of(i)`, with up to `window` frames in flight. Returns the acked message bodies.
fn produce_load(
    addr: std::net::SocketAddr,
    topic: &str,
    conn: usize,
    frames: usize,
    per_frame: usize,
    window: usize,
    key_of: impl Fn(usize) -> Vec<u8>,
) -> Vec<Vec<u8>> {
    let mut c = Client::startup(addr, topic);
    let mut bodies: HashMap<u16, Vec<Vec<u8>>> = HashMap::new();
    let mut acked = Vec::new();
    let mut sent = 0;
    while acked.len() < frames * per_frame {
        while sent < frames && bodies.len() < window {
            let key = key_of(sent);
            let msgs: Vec<Vec<u8>> = (0..per_frame)
                .map(|m| {
                    format!("c{conn}|k{}|f{sent}|m{m}", String::from_utf8_lossy(&key)).into_bytes()
                })
                .collect();
            let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
            let sid = (sent % 60000) as u16 + 1;
            c.send_produce(sid, &key, &refs);
            bodies.insert(sid, msgs);
            sent += 1;
        }
        match c.recv().expect("response") {
            Response::Produced(sid) => acked.extend(bodies.remove(&sid).expect("known stream id")),
            other => panic!("unexpected {other:?}"),
        }
    }
    acked
}

#[test]
fn many_connections_and_keys_are_stored_once_in_order() {
    let mut broker = Broker::start(2);
    let addr = broker.framed;
    let handles: Vec<_> = (0..6)
        .map(|conn| {
            thread::spawn(move || {
                produce_load(addr, "events", conn, 60, 8, 16, |i| {
                    if conn % 3 == 0 {
                        Vec::new()
                    } else {
                        format!("key-{}", (i * 7 + conn) % 25).into_bytes()
                    }
                })
            })
        })
        .collect();
    let mut acked: Vec<Vec<u8>> = Vec::new();
    for h in handles {
        acked.extend(h.join().unwrap());
    }
    assert_eq!(acked.len(), 6 * 60 * 8);
    broker.kill9();

    let stored = read_topic(&broker.data_dir, "events");
    let layout = TopicLayout::new(2, 4);
    assert_eq!(stored.len(), acked.len(), "every acked message once");
    let mut seen = std::collections::HashSet::new();
    let mut last_per_key: HashMap<String, (String, i64)> = HashMap::new();
    let mut by_partition: HashMap<String, Vec<i64>> = HashMap::new();
    for r in &stored {
        let body = String::from_utf8(r.body.clone()).unwrap();
        assert!(seen.insert(body.clone()), "duplicate {body}");
        by_partition
            .entry(r.partition_dir.clone())
            .or_default()
            .push(r.offset);
        let parts: Vec<&str> = body.split('|').collect();
        let key = parts[1].strip_prefix('k').unwrap_or(parts[1]).to_string();
        if !key.is_empty() {
            // Keyed messages sit in the partition their token maps to.
            let j = layout.partition_of_key(key.as_bytes());
            assert_eq!(r.partition_dir, layout.partition_id(j).dir_name(), "{body}");
            // Per key and connection, frames appear in the order they were sent.
            let conn_key = format!("{}|{key}", parts[0]);
            let f: i64 = parts[2][1..].parse().unwrap();
            let m: i64 = parts[3][1..].parse().unwrap();
            if let Some((_, prev)) = last_per_key.get(&conn_key) {
                assert!(f * 1000 + m > *prev, "order broken for {conn_key}");
            }
            last_per_key.insert(conn_key, (r.partition_dir.clone(), f * 1000 + m));
        }
    }
    for a in &acked {
        assert!(seen.contains(&String::from_utf8(a.clone()).unwrap()));
    }
    for (p, offsets) in by_partition {
        let want: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, want, "dense offsets in {p}");
    }
}

#[test]
fn keyless_connection_stays_in_one_partition_and_timestamps_are_kept() {
    let mut broker = Broker::start(1);
    let mut c = Client::startup(broker.framed, "default");
    for i in 0..20u16 {
        c.send_produce_ts(i, 1_600_000_000_000_000 + i as i64, b"", &[b"a", b"bb"]);
    }
    let mut got: Vec<u16> = (0..20).map(|_| c.recv().unwrap().stream_id()).collect();
    got.sort();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    broker.kill9();
    let stored = read_topic(&broker.data_dir, "default");
    assert_eq!(stored.len(), 40);
    let parts: std::collections::HashSet<_> = stored.iter().map(|r| &r.partition_dir).collect();
    assert_eq!(
        parts.len(),
        1,
        "one keyless connection writes one partition"
    );
    let mut ts: Vec<i64> = stored.iter().map(|r| r.timestamp_us).collect();
    ts.dedup();
    assert_eq!(ts.len(), 20);
    assert!(ts
        .iter()
        .all(|t| *t >= 1_600_000_000_000_000 && *t < 1_600_000_000_000_020));
}

#[test]
fn restart_with_another_shard_count_keeps_keys_in_their_partition() {
    let mut broker = Broker::start(2);
    let keys: Vec<Vec<u8>> = (0..40).map(|k| format!("user-{k}").into_bytes()).collect();
    let first = {
        let ks = keys.clone();
        produce_load(broker.framed, "users", 0, 80, 2, 8, move |i| {
            ks[i % 40].clone()
        })
    };
    broker.kill9();
    broker.shards = 1;
    broker.spawn();
    let second = {
        let ks = keys.clone();
        produce_load(broker.framed, "users", 1, 80, 2, 8, move |i| {
            ks[i % 40].clone()
        })
    };
    broker.kill9();
    let stored = read_topic(&broker.data_dir, "users");
    assert_eq!(stored.len(), first.len() + second.len());
    // The layout fixed at creation (2 shards x 4) still decides every key's partition.
    let layout = TopicLayout::new(2, 4);
    let dirs: std::collections::HashSet<_> =
        stored.iter().map(|r| r.partition_dir.clone()).collect();
    assert!(dirs.len() <= 8);
    for r in &stored {
        let body = String::from_utf8(r.body.clone()).unwrap();
        let field = body.split('|').nth(1).unwrap();
        let key = field.strip_prefix('k').unwrap_or(field);
        let j = layout.partition_of_key(key.as_bytes());
        assert_eq!(r.partition_dir, layout.partition_id(j).dir_name());
    }
}

/// The broker's reader keeps frames as slices of its read buffer and plans each read around
/// frame boundaries; frames cut anywhere by the network, and frames larger than that buffer,
/// must still arrive whole and in order.
#[test]
fn frames_split_anywhere_and_larger_than_the_read_buffer_arrive_whole() {
    use shardlog::wire::frame::{encode_frame_with, OpCode};
    use shardlog::wire::produce::encode_produce_body;
    use std::io::Write;

    let mut broker = Broker::start(1);
    let mut c = Client::startup(broker.framed, "split");
    // Small, typical (64 × 1 KiB) and large (one 600 KiB and one 1.5 MiB message) frames.
    let sizes: Vec<(usize, usize)> = (0..40)
        .map(|i| match i % 8 {
            0 => (1, 10),
            3 => (1, 600 << 10),
            6 if i == 14 => (1, 1536 << 10),
            _ => (64, 1024),
        })
        .collect();
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for (i, &(count, size)) in sizes.iter().enumerate() {
        let msgs: Vec<Vec<u8>> = (0..count)
            .map(|m| {
                let mut body = format!("f{i}|m{m}|").into_bytes();
                body.resize(size.max(body.len()), b'a' + (i % 26) as u8);
                body
            })
            .collect();
        encode_frame_with(&mut stream, OpCode::Produce, 0, i as u16 + 1, |d| {
            encode_produce_body(None, b"", msgs.iter().map(|m| m.as_slice()), d)
        });
        expected.extend(msgs);
    }
    // Cut the stream at odd places (inside headers, bodies and at boundaries), pausing now
    // and then so the broker sees the pieces apart.
    let cuts = [
        1usize,
        12,
        13,
        5000,
        65_536,
        131_071,
        3,
        400_000,
        777,
        1 << 20,
    ];
    let mut pos = 0;
    let mut k = 0;
    while pos < stream.len() {
        let end = (pos + cuts[k % cuts.len()]).min(stream.len());
        c.stream.write_all(&stream[pos..end]).unwrap();
        if k % 3 == 0 {
            thread::sleep(std::time::Duration::from_millis(2));
        }
        pos = end;
        k += 1;
    }
    let mut acked: Vec<u16> = (0..sizes.len())
        .map(|_| match c.recv().expect("response") {
            Response::Produced(sid) => sid,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    acked.sort();
    assert_eq!(acked, (1..=sizes.len() as u16).collect::<Vec<_>>());
    broker.kill9();
    let stored: Vec<Vec<u8>> = read_topic(&broker.data_dir, "split")
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(stored.len(), expected.len());
    assert!(stored == expected, "every message whole, once, in order");
}
