//! `kill -9` under load: after a restart, every acknowledged message is on disk exactly once,
//! in order within its partition, and the broker accepts new writes.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::consumer::{bodies, drain, ConsumerClient};
use common::framed::FramedProducer;
use common::{read_topic, Broker, Client, Response};
use shardlog::wire::consumer::StartPolicy;

/// Produces until the connection dies; returns the bodies that were acknowledged.
fn produce_until_killed(
    addr: std::net::SocketAddr,
    conn: usize,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut c = Client::startup(addr, "crash");
    let mut pending: HashMap<u16, Vec<String>> = HashMap::new();
    let mut acked = Vec::new();
    let mut frame = 0usize;
    loop {
        while pending.len() < 8 && !stop.load(Ordering::Relaxed) {
            let key = if conn.is_multiple_of(2) {
                Vec::new()
            } else {
                format!("k{}", frame % 13).into_bytes()
            };
            let msgs: Vec<String> = (0..16).map(|m| format!("c{conn}-f{frame}-m{m}")).collect();
            let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_bytes()).collect();
            let sid = (frame % 65000) as u16;
            let mut b = Vec::new();
            shardlog::wire::frame::encode_frame_with(
                &mut b,
                shardlog::wire::OpCode::Produce,
                0,
                sid,
                |d| {
                    shardlog::wire::produce::encode_produce_body(
                        None,
                        &key,
                        refs.iter().copied(),
                        d,
                    )
                },
            );
            if std::io::Write::write_all(&mut c.stream, &b).is_err() {
                return acked;
            }
            pending.insert(sid, msgs);
            frame += 1;
        }
        if pending.is_empty() {
            return acked;
        }
        match c.recv() {
            Some(Response::Produced(sid)) => acked.extend(pending.remove(&sid).unwrap()),
            Some(other) => panic!("unexpected {other:?}"),
            None => return acked,
        }
    }
}

#[test]
fn kill9_under_load_loses_nothing_acknowledged() {
    let mut broker = Broker::start(2);
    let all_acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..4)
            .map(|conn| {
                let (addr, stop) = (broker.framed, stop.clone());
                thread::spawn(move || produce_until_killed(addr, conn + 10 * round, stop))
            })
            .collect();
        thread::sleep(Duration::from_millis(400 + 200 * round as u64));
        broker.kill9();
        for h in handles {
            all_acked.lock().unwrap().extend(h.join().unwrap());
        }
        broker.spawn();
    }
    // A final clean round proves the restarted broker still accepts writes.
    let mut c = FramedProducer::startup(broker.framed, "crash");
    assert_eq!(c.produce(b"", &[b"after"]), Ok(()));

    // A consumer group reading from the earliest offset gets every acknowledged message,
    // exactly once, through the poll path (chunks as stored, decoded by the client).
    let mut consumer = ConsumerClient::connect(broker.framed);
    consumer
        .register("reader", "crash-check", &["crash"], StartPolicy::Earliest)
        .expect("register");
    let polled = bodies(&drain(&mut consumer, "reader"));
    {
        let acked = all_acked.lock().unwrap();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for b in &polled {
            *seen.entry(b.as_str()).or_default() += 1;
        }
        assert!(seen.values().all(|&n| n == 1), "a message was polled twice");
        for a in acked.iter() {
            assert_eq!(
                seen.get(a.as_str()),
                Some(&1),
                "acknowledged {a} not polled"
            );
        }
        assert_eq!(seen.get("after"), Some(&1));
    }
    broker.kill9();

    let acked = all_acked.lock().unwrap();
    assert!(
        acked.len() > 100,
        "the load actually ran ({} acked)",
        acked.len()
    );
    let stored = read_topic(&broker.data_dir, "crash");
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for r in &stored {
        *counts.entry(r.body.as_slice()).or_default() += 1;
    }
    for (body, n) in &counts {
        assert_eq!(*n, 1, "{} stored {n} times", String::from_utf8_lossy(body));
    }
    let stored_set: HashSet<&[u8]> = counts.keys().copied().collect();
    for a in acked.iter() {
        assert!(
            stored_set.contains(a.as_bytes()),
            "acknowledged {a} is missing"
        );
    }
    // Offsets are dense from 0 in every partition.
    let mut by_part: HashMap<&str, Vec<i64>> = HashMap::new();
    for r in &stored {
        by_part.entry(&r.partition_dir).or_default().push(r.offset);
    }
    for (p, offs) in by_part {
        assert_eq!(offs, (0..offs.len() as i64).collect::<Vec<_>>(), "{p}");
    }
}
