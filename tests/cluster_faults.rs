//! Cluster mode through faults, against a real etcd: a broker paused past its session goes
//! down and registers again when resumed, refusing writes until it has a lease again; brokers
//! ride out an etcd restart.

mod common;

use std::time::Duration;

use common::cluster::{all_led, all_up, cluster_view, states, three_brokers, wait_views};
use common::etcd::Etcd;
use common::framed::FramedProducer;
use common::http::HttpClient;
use common::Broker;

fn signal(b: &Broker, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(b.pid() as i32, sig) }, 0);
}

#[test]
fn a_broker_paused_past_its_session_goes_down_and_registers_again_when_resumed() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    signal(&brokers[1], libc::SIGSTOP);
    wait_views(&[&brokers[0], &brokers[2]], "broker 2 down", |v| {
        states(v).contains(&(2, "down".to_string()))
    });
    signal(&brokers[1], libc::SIGCONT);
    // Back with a new lease: every view shows it up, and it says it holds its lease.
    let views = wait_views(&all, "broker 2 back", |v| {
        all_up(&[1, 2, 3])(v) && v["holds_lease"] == true
    });
    assert_eq!(views[1]["broker"], 2);
}

#[test]
fn brokers_register_again_and_follow_the_keys_after_etcd_restarts() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    let created =
        HttpClient::connect(brokers[0].http).request("POST", "/v1/topics/before", &[], b"");
    assert_eq!(created.status, 201, "{}", created.text());
    // Down for longer than the brokers' 2 s sessions.
    etcd.restart(Duration::from_secs(3));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let after = loop {
        let r = HttpClient::connect(brokers[2].http).request("POST", "/v1/topics/after", &[], b"");
        if r.status == 201 || r.status == 200 {
            break r;
        }
        // Retryable while the brokers reconnect.
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(std::time::Instant::now() < deadline, "{}", r.text());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        after.text().contains("\"partitions\":12"),
        "{}",
        after.text()
    );
    let views = wait_views(&all, "both topics everywhere, all up", |v| {
        all_up(&[1, 2, 3])(v)
            && v["holds_lease"] == true
            && v["topics"].as_array().is_some_and(|t| t.len() == 2)
    });
    for v in &views {
        assert_eq!(v["topics"][0]["name"], "after");
        assert_eq!(v["topics"][1]["name"], "before");
    }
    assert_eq!(cluster_view(&brokers[1])["cluster"], "shardlog");
}

#[test]
fn a_leader_paused_past_its_session_refuses_writes_until_it_has_a_lease_again() {
    let Some(etcd) = Etcd::start() else { return };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    // Partition 4 of a 3 x 4 layout is broker 2's; write it on broker 2 itself.
    let layout = shardlog::wire::ring::TopicLayout::new(3, 4);
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| layout.partition_of_key(k.as_bytes()) == 4)
        .unwrap();
    let mut p = FramedProducer::startup(brokers[1].framed, "orders");
    p.produce(key.as_bytes(), &[b"before"]).expect("stored");
    signal(&brokers[1], libc::SIGSTOP);
    wait_views(&[&brokers[0], &brokers[2]], "broker 2 down", |v| {
        states(v).contains(&(2, "down".to_string()))
    });
    // A frame that waits in the socket while the leader is paused is read, when it resumes,
    // by a broker whose lease has expired: refused, retryably, nothing stored.
    let answer = std::thread::scope(|s| {
        let sent = s.spawn(|| p.produce(key.as_bytes(), &[b"while paused"]));
        std::thread::sleep(Duration::from_millis(300));
        signal(&brokers[1], libc::SIGCONT);
        sent.join().unwrap()
    });
    let (code, message) = answer.expect_err("no lease, no write");
    assert_eq!(
        code,
        shardlog::wire::ErrorCode::Unavailable as u8,
        "{message}"
    );
    assert!(message.contains("lease"), "{message}");
    // Once registered again it leads partition 4 again and serves it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match p.produce(key.as_bytes(), &[b"after"]) {
            Ok(()) => break,
            Err((code, message)) => {
                assert_eq!(
                    code,
                    shardlog::wire::ErrorCode::Unavailable as u8,
                    "{message}"
                );
                assert!(std::time::Instant::now() < deadline, "{message}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    assert_eq!(cluster_view(&brokers[1])["holds_lease"], true);
}

/// Issue 17: etcd restarted under load. Keyed produce runs through every broker, one frame at
/// a time per connection, while etcd is killed for longer than the brokers' sessions and
/// started again. Frames are refused (retryably) while the brokers have no lease, and served
/// again after; every acknowledged message is stored once, by its partition's leader, in
/// order per key, and nothing is stored twice.
#[test]
fn etcd_restarted_under_load_loses_no_acknowledged_message() {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let brokers = three_brokers(&etcd);
    let all: Vec<&Broker> = brokers.iter().collect();
    wait_views(&all, "all three up", all_up(&[1, 2, 3]));
    let created = HttpClient::connect(brokers[0].http).request("POST", "/v1/topics/load", &[], b"");
    assert_eq!(created.status, 201, "{}", created.text());
    wait_views(&all, "the topic's leaders everywhere", all_led(12));

    let stop = AtomicBool::new(false);
    let acked_count: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
    let (acked, refused) = std::thread::scope(|s| {
        let producers: Vec<_> = brokers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (stop, count) = (&stop, &acked_count[i]);
                s.spawn(move || {
                    let mut p = FramedProducer::startup(b.framed, "load");
                    let mut seq = [0usize; 8];
                    let (mut acked, mut refused) = (Vec::new(), Vec::new());
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let k = n % seq.len();
                        n += 1;
                        let key = format!("b{}-k{k}", i + 1);
                        // A refused message is never sent again: its body is not reused, so a
                        // body stored twice would be a duplicate the broker made.
                        let body = format!("{key}|{}", seq[k]);
                        seq[k] += 1;
                        match p.produce(key.as_bytes(), &[body.as_bytes()]) {
                            Ok(()) => {
                                acked.push((key, body));
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                            Err((code, message)) => {
                                assert_eq!(
                                    code,
                                    shardlog::wire::ErrorCode::Unavailable as u8,
                                    "only retryable refusals: {message}"
                                );
                                refused.push(message);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    (acked, refused)
                })
            })
            .collect();
        let wait_acks = |at_least: &[usize]| {
            let deadline = std::time::Instant::now() + Duration::from_secs(90);
            while acked_count
                .iter()
                .zip(at_least)
                .any(|(c, &n)| c.load(Ordering::SeqCst) < n)
            {
                assert!(std::time::Instant::now() < deadline, "produce stalled");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait_acks(&[50, 50, 50]);
        // Down for longer than the brokers' 2 s sessions.
        etcd.restart(Duration::from_secs(3));
        wait_views(&all, "all up again with their leases", |v| {
            all_up(&[1, 2, 3])(v) && v["holds_lease"] == true
        });
        // Served again through every broker.
        let now: Vec<usize> = acked_count
            .iter()
            .map(|c| c.load(Ordering::SeqCst) + 50)
            .collect();
        wait_acks(&now);
        stop.store(true, Ordering::SeqCst);
        let mut acked = Vec::new();
        let mut refused = Vec::new();
        for p in producers {
            let (a, r) = p.join().expect("producer");
            acked.extend(a);
            refused.extend(r);
        }
        (acked, refused)
    });
    eprintln!(
        "{} acknowledged, {} refused while etcd was away",
        acked.len(),
        refused.len()
    );

    // Read every partition at its leader (etcd's view after the restart).
    let view = cluster_view(&brokers[0]);
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let partitions = view["topics"][0]["partitions"]
        .as_array()
        .expect("partitions");
    for p in partitions {
        let j = p["partition"].as_u64().unwrap() as u32;
        let leader = p["leader"].as_u64().expect("a leader") as usize;
        let mut c = common::consumer::ConsumerClient::connect(brokers[leader - 1].framed);
        for item in c.fetch_all("load", j) {
            for (_, _, body) in item.records {
                let body = String::from_utf8(body).expect("UTF-8");
                let key = body.split('|').next().unwrap().to_string();
                stored.entry(key).or_default().push(body);
            }
        }
    }
    let seq = |body: &str| -> usize { body.split('|').nth(1).unwrap().parse().unwrap() };
    for (key, bodies) in &stored {
        assert!(
            bodies.windows(2).all(|w| seq(&w[0]) < seq(&w[1])),
            "{key} out of order or stored twice: {bodies:?}"
        );
    }
    for (key, body) in &acked {
        let n = stored
            .get(key)
            .map_or(0, |b| b.iter().filter(|s| *s == body).count());
        assert_eq!(n, 1, "acknowledged {body} stored {n} times");
    }
}
