//! Hostile clients of one broker of a cluster cost the *other* broker bounded connections and
//! memory, and a well-behaved client keeps being served meanwhile. Against a real etcd and two
//! one-shard brokers, each path on which one broker works for another because of a client:
//! long polls of partitions another broker leads, forwarded PRODUCE for many topics, group
//! operations passed to a coordinator, and admin requests passed on. Every bound is set low
//! so that the hostile client passes it many times over; the other broker's descriptors
//! (`/proc/PID/fd`) and RSS are sampled throughout and checked against the bound.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::{all_up, cluster_view, create_topic, leaders, wait_views};
use common::consumer::{bodies, produce_keyed, ConsumerClient};
use common::etcd::Etcd;
use common::framed::FramedProducer;
use common::http::HttpClient;
use common::proc::{open_fds, rss_kib, Peak, Sampler};
use common::{Broker, Client, Response};
use shardlog::cluster::group_link::coordinator_of;
use shardlog::cluster::read_pool::QUICK_READS;
use shardlog::wire::consumer::{encode_register, RegisterBody, StartPolicy};
use shardlog::wire::fetch::{FetchBody, FetchFrom};
use shardlog::wire::frame::{encode_frame, encode_frame_with, OpCode};
use shardlog::wire::produce::encode_produce_body;
use shardlog::wire::startup::encode_startup;
use shardlog::wire::ErrorCode;

/// The bounds the brokers run with.
const MAX_REMOTE_READS: usize = 8;
const MAX_FORWARD_LINKS: usize = 4;
const MAX_PEER_REQUESTS: usize = 4;
/// Descriptors a broker may open besides those a test bounds (a log file rolled, a segment
/// opened, a connection from the test's own probes).
const FD_SLACK: usize = 12;
/// How much the other broker's RSS may grow while a hostile client is at work (debug build).
const RSS_BOUND_KIB: u64 = 48 << 10;

/// Brokers 1 and 2 of `etcd`'s cluster with the bounds above and `extra` flags, both up;
/// `slow_leader`: every chunk write on broker 2 takes 200 ms more (a fail point).
fn two_brokers(etcd: &Etcd, extra: &[&str], slow_leader: bool) -> (Broker, Broker) {
    let bounds = [
        "--max-remote-reads",
        &MAX_REMOTE_READS.to_string(),
        "--max-forward-links",
        &MAX_FORWARD_LINKS.to_string(),
        "--max-peer-requests",
        &MAX_PEER_REQUESTS.to_string(),
    ]
    .map(String::from);
    let mut brokers = [1, 2].map(|id| {
        let mut b = etcd.broker(id);
        b.extra.extend(bounds.iter().cloned());
        b.extra.extend(extra.iter().map(|s| s.to_string()));
        if id == 2 && slow_leader {
            let slow = (
                "SHARDLOG_FAILPOINTS".into(),
                "writer.write=sleep(200)".into(),
            );
            b.env.push(slow);
        }
        b.spawn();
        b
    });
    let [b1, b2] = &mut brokers;
    wait_views(&[b1, b2], "both up", all_up(&[1, 2]));
    let [b1, b2] = brokers;
    (b1, b2)
}

/// The partitions of `topic` that broker `id` leads, in `b`'s view.
fn led_by(b: &Broker, topic: &str, id: u64) -> Vec<u32> {
    let view = cluster_view(b);
    let t = view["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == topic))
        .unwrap_or_else(|| panic!("{topic} in {view}"));
    (0..)
        .zip(leaders(t))
        .filter(|(_, l)| *l == id)
        .map(|(j, _)| j)
        .collect()
}

/// Group names that broker `id` coordinates while brokers 1 and 2 are up.
fn groups_at(id: u32, prefix: &str) -> impl Iterator<Item = String> + '_ {
    (0..)
        .map(move |i| format!("{prefix}-{i}"))
        .filter(move |g| coordinator_of(g, [1, 2]) == Some(id))
}

/// `b`'s descriptors and RSS now, once the cluster has settled.
fn baseline(b: &Broker) -> Peak {
    std::thread::sleep(Duration::from_millis(500));
    Peak {
        rss_kib: rss_kib(b.pid()),
        fds: open_fds(b.pid()),
    }
}

/// Checks the other broker's peak against its baseline; prints both for the record.
fn check(what: &str, base: Peak, peak: Peak, fd_bound: usize) {
    let (fds, rss) = (
        peak.fds.saturating_sub(base.fds),
        peak.rss_kib.saturating_sub(base.rss_kib),
    );
    eprintln!(
        "{what}: descriptors {} -> peak {} (+{fds}, bound +{fd_bound}); RSS +{rss} KiB (bound {RSS_BOUND_KIB} KiB)",
        base.fds, peak.fds
    );
    assert!(
        fds <= fd_bound,
        "{what}: +{fds} descriptors, bound +{fd_bound}"
    );
    assert!(rss < RSS_BOUND_KIB, "{what}: RSS +{rss} KiB");
}

/// Registers `id` in `group` through `c`, retrying refusals that say to retry.
fn register_retrying(c: &mut ConsumerClient, id: &str, group: &str, topics: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err((code, why)) = c.register(id, group, topics, StartPolicy::Earliest) {
        let retry = ErrorCode::from_u8(code).is_some_and(ErrorCode::is_retryable);
        assert!(retry && Instant::now() < deadline, "register {id}: {why}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `id` through `c` until it has read `n` messages; returns their bodies.
fn read_all(c: &mut ConsumerClient, id: &str, n: usize) -> Vec<String> {
    let mut items = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while bodies(&items).len() < n {
        assert!(
            Instant::now() < deadline,
            "read {} of {n}",
            bodies(&items).len()
        );
        match c.poll(id, Some(500)) {
            Ok(got) => items.extend(got),
            Err((code, why)) => assert!(
                ErrorCode::from_u8(code).is_some_and(ErrorCode::is_retryable),
                "poll: {why}"
            ),
        }
    }
    bodies(&items)
}

#[test]
fn long_polls_of_partitions_led_elsewhere_hold_bounded_connections_at_the_leader() {
    let Some(etcd) = Etcd::start() else { return };
    let (b1, b2) = two_brokers(&etcd, &[], false);
    create_topic(&b1, "idle", 2);
    create_topic(&b1, "t", 2);
    let far = led_by(&b1, "idle", 2)[0];
    let mut good = ConsumerClient::connect(b1.framed);
    register_retrying(&mut good, "good-1", "good", &["t"]);
    produce_keyed(b2.framed, "t", 10, 4, "warm");
    assert_eq!(read_all(&mut good, "good-1", 10).len(), 10);
    let (base1, base2) = (baseline(&b1), baseline(&b2));
    let sampler = Sampler::start(&[b1.pid(), b2.pid()]);

    // 200 connections to broker 1, each with 30 long polls (10 s each) of an empty partition
    // broker 2 leads, pipelined; none of their answers is ever read.
    const POLLERS: usize = 200;
    let mut polls = Vec::new();
    for sid in 0..30u16 {
        let mut body = Vec::new();
        let fetch = FetchBody {
            topic: "idle".into(),
            partition: far,
            from: FetchFrom::Offset(0),
            max_bytes: 1 << 20,
            max_wait_ms: Some(10_000),
        };
        fetch.encode(&mut body);
        encode_frame(&mut polls, OpCode::Fetch, fetch.flags(), sid, &body);
    }
    let hostile: Vec<Client> = (0..POLLERS)
        .map(|_| {
            let mut c = Client::connect(b1.framed);
            c.send_raw(&polls);
            c
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    // Meanwhile a consumer of broker 1 reads what is produced at broker 2, its long polls
    // answered within the pause a full bound costs.
    produce_keyed(b2.framed, "t", 100, 4, "during");
    assert_eq!(read_all(&mut good, "good-1", 100).len(), 100);
    std::thread::sleep(Duration::from_secs(2));
    let [peak1, peak2] = sampler.stop()[..] else {
        unreachable!()
    };
    assert!(
        peak1.fds >= base1.fds + POLLERS,
        "the hostile client connected"
    );
    eprintln!(
        "broker 1 (serving {POLLERS} pollers): descriptors {} -> {}",
        base1.fds, peak1.fds
    );
    check(
        "leader under long polls",
        base2,
        peak2,
        MAX_REMOTE_READS + QUICK_READS + FD_SLACK,
    );
    drop(hostile);
}

#[test]
fn forwarded_produce_for_topics_without_end_holds_bounded_links_at_the_leader() {
    let Some(etcd) = Etcd::start() else { return };
    const MAX_OPEN_FILES: usize = 16;
    let (b1, b2) = two_brokers(&etcd, &["--max-open-files", "16"], true);
    const TOPICS: usize = 40;
    const FRAMES: u16 = 150;
    let names: Vec<String> = (0..TOPICS).map(|i| format!("h{i}")).collect();
    let layout = create_topic(&b1, "good", 2);
    // A key of each partition.
    let key_of = |j: u32| {
        (0..)
            .map(|i| format!("k{i}"))
            .find(|k| layout.partition_of_key(k.as_bytes()) == j)
            .unwrap()
    };
    let (near, far) = (led_by(&b1, "good", 1)[0], led_by(&b1, "good", 2)[0]);
    for n in &names {
        create_topic(&b1, n, 2);
        // Opened on both brokers now, so that the hostile frames below arrive at once.
        Client::startup(b1.framed, n);
        Client::startup(b2.framed, n);
    }
    let (key_near, key_far) = (key_of(near), key_of(far));
    let (key_near, key_far) = (key_near.as_bytes(), key_far.as_bytes());
    let mut at_leader = FramedProducer::startup(b2.framed, "good");
    let mut local = FramedProducer::startup(b1.framed, "good");
    assert_eq!(at_leader.produce(key_far, &[b"warm"]), Ok(()));
    let (base1, base2) = (baseline(&b1), baseline(&b2));
    let sampler = Sampler::start(&[b1.pid(), b2.pid()]);

    // One connection per topic to broker 1, each STARTUP and 150 PRODUCE frames of 1 KiB to
    // a partition broker 2 (slow to write) leads, pipelined; answers are not read until the
    // end.
    let value = vec![b'x'; 1024];
    let hostile: Vec<Client> = names
        .iter()
        .map(|topic| {
            let mut frames = Vec::new();
            encode_frame_with(&mut frames, OpCode::Startup, 0, 0, |d| {
                encode_startup(topic, d)
            });
            for sid in 1..=FRAMES {
                encode_frame_with(&mut frames, OpCode::Produce, 0, sid, |d| {
                    encode_produce_body(None, key_far, [&value[..]], d)
                });
            }
            let mut c = Client::connect(b1.framed);
            c.send_raw(&frames);
            c
        })
        .collect();

    // Meanwhile producers at the leader and at broker 1 for its own partition are answered.
    for i in 0..20 {
        let m = format!("during-{i}");
        assert_eq!(at_leader.produce(key_far, &[m.as_bytes()]), Ok(()));
        assert_eq!(local.produce(key_near, &[m.as_bytes()]), Ok(()));
    }
    std::thread::sleep(Duration::from_secs(2));
    let [peak1, peak2] = sampler.stop()[..] else {
        unreachable!()
    };
    eprintln!(
        "broker 1 (serving {TOPICS} producers): descriptors {} -> {}",
        base1.fds, peak1.fds
    );
    check(
        "leader under forwarded produce",
        base2,
        peak2,
        MAX_FORWARD_LINKS + MAX_OPEN_FILES + FD_SLACK,
    );
    // Every frame was answered: stored, or refused for want of a link (retryably).
    let (mut stored, mut refused) = (0, 0);
    for mut c in hostile {
        assert_eq!(c.recv(), Some(Response::Ready(0)));
        for _ in 0..FRAMES {
            match c.recv().expect("an answer") {
                Response::Produced(_) => stored += 1,
                Response::Error { code, message, .. } => {
                    assert_eq!(code, ErrorCode::ResourceExhausted as u8, "{message}");
                    refused += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    eprintln!("hostile frames: {stored} stored, {refused} refused");
    assert!(
        stored > 0 && refused > 0,
        "{stored} stored, {refused} refused"
    );
}

#[test]
fn group_operations_through_a_follower_cost_the_other_broker_bounded_connections() {
    let Some(etcd) = Etcd::start() else { return };
    const MAX_GROUPS: usize = 40;
    // At most 4 GROUP requests of broker 1 wait for their coordinator at once.
    let (b1, b2) = two_brokers(
        &etcd,
        &["--max-groups", "40", "--max-group-requests", "4"],
        false,
    );
    create_topic(&b1, "wide", 32);
    let good_group = groups_at(2, "good").next().unwrap();
    let mut good = ConsumerClient::connect(b1.framed);
    register_retrying(&mut good, "good-1", &good_group, &["wide"]);
    produce_keyed(b2.framed, "wide", 10, 8, "warm");
    assert_eq!(read_all(&mut good, "good-1", 10).len(), 10);
    let (base1, base2) = (baseline(&b1), baseline(&b2));
    let sampler = Sampler::start(&[b1.pid(), b2.pid()]);

    // 60 connections to broker 1, each registering 4 consumers in new groups that broker 2
    // coordinates, starting at `latest` (so broker 2 asks broker 1 where each partition it
    // leads ends); pipelined, answers unread until the end.
    const CONNS: usize = 60;
    const EACH: u16 = 4;
    let mut names = groups_at(2, "h");
    let hostile: Vec<Client> = (0..CONNS)
        .map(|c| {
            let mut frames = Vec::new();
            for k in 0..EACH {
                let mut body = Vec::new();
                let register = RegisterBody {
                    policy: StartPolicy::Latest,
                    consumer_id: format!("h-{c}-{k}"),
                    group: names.next().unwrap(),
                    topics: vec!["wide".into()],
                };
                encode_register(&register, &mut body);
                encode_frame(&mut frames, OpCode::Register, 0, k, &body);
            }
            let mut client = Client::connect(b1.framed);
            client.send_raw(&frames);
            client
        })
        .collect();

    // Meanwhile the good consumer (its group coordinated by broker 2) keeps reading.
    produce_keyed(b2.framed, "wide", 100, 8, "during");
    assert_eq!(read_all(&mut good, "good-1", 100).len(), 100);
    let (mut ready, mut busy) = (0, 0);
    for mut c in hostile {
        for _ in 0..EACH {
            match c.recv().expect("an answer") {
                Response::Ready(_) => ready += 1,
                Response::Error { code, message, .. } => {
                    assert!(
                        ErrorCode::from_u8(code).is_some_and(ErrorCode::is_retryable),
                        "{message}"
                    );
                    busy += usize::from(message.contains("--max-group-requests"));
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let [peak1, peak2] = sampler.stop()[..] else {
        unreachable!()
    };
    eprintln!(
        "hostile registrations: {ready} of {} admitted, {busy} refused at --max-group-requests",
        CONNS * EACH as usize
    );
    assert!(ready < MAX_GROUPS, "--max-groups held");
    assert!(
        busy > 0,
        "--max-group-requests was reached (refused: {busy})"
    );
    // Broker 1 holds the hostile client's connections; of broker 2's, at most the bound.
    check(
        "leader asked for offsets",
        Peak {
            fds: base1.fds + CONNS,
            ..base1
        },
        peak1,
        MAX_PEER_REQUESTS + FD_SLACK,
    );
    check("coordinator", base2, peak2, MAX_PEER_REQUESTS + FD_SLACK);
}

#[test]
fn admin_requests_passed_on_cost_the_other_broker_bounded_connections() {
    let Some(etcd) = Etcd::start() else { return };
    let (b1, b2) = two_brokers(&etcd, &[], false);
    create_topic(&b1, "wide", 32);
    let group = groups_at(2, "g").next().unwrap();
    let mut member = ConsumerClient::connect(b1.framed);
    register_retrying(&mut member, "m-1", &group, &["wide"]);
    let describe = format!("/v1/groups/{group}");
    let mut admin1 = HttpClient::connect(b1.http);
    assert_eq!(admin1.request("GET", &describe, &[], b"").status, 200);
    let (base1, base2) = (baseline(&b1), baseline(&b2));
    let sampler = Sampler::start(&[b1.pid(), b2.pid()]);

    // 25 connections to broker 1, each with 10 requests pipelined and never read: describe
    // the group (passed on to broker 2, which asks broker 1 where each of the 16 partitions
    // it leads ends), or list every broker's groups.
    const CONNS: usize = 25;
    let hostile: Vec<TcpStream> = (0..CONNS)
        .map(|i| {
            let target = if i % 5 == 0 { "/v1/groups" } else { &describe };
            let one = format!("GET {target} HTTP/1.1\r\nhost: {}\r\n\r\n", b1.http);
            let mut c = HttpClient::connect(b1.http);
            use std::io::Write;
            c.stream.write_all(one.repeat(10).as_bytes()).unwrap();
            c.stream
        })
        .collect();

    // Meanwhile admin requests at either broker are answered, in their turn.
    for _ in 0..5 {
        let mut admin2 = HttpClient::connect(b2.http);
        let ok = |c: &mut HttpClient| {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let r = c.request("GET", &describe, &[], b"");
                if r.status == 200 {
                    break;
                }
                assert!(r.status == 429 && Instant::now() < deadline, "{}", r.text());
            }
        };
        ok(&mut admin1);
        ok(&mut admin2);
    }
    std::thread::sleep(Duration::from_secs(1));
    let [peak1, peak2] = sampler.stop()[..] else {
        unreachable!()
    };
    // Broker 1 holds the hostile client's connections; beyond them, each broker's requests
    // at the other (at most the bound) and the other's at it.
    check(
        "serving broker",
        Peak {
            fds: base1.fds + CONNS,
            ..base1
        },
        peak1,
        2 * MAX_PEER_REQUESTS + FD_SLACK,
    );
    check(
        "coordinator",
        base2,
        peak2,
        2 * MAX_PEER_REQUESTS + FD_SLACK,
    );
    drop(hostile);
}
