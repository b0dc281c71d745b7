//! Groups, consumers per group and topics per consumer are bounded: a client that registers
//! past a limit is refused (framed ERROR 10, HTTP 429) while a well-behaved consumer keeps
//! being served, and emptied groups are forgotten — their slots freed, their offsets read
//! back from disk when they come back.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::consumer::{bodies, drain, produce_keyed, ConsumerClient};
use common::http::HttpClient;
use common::Broker;
use shardlog::wire::consumer::StartPolicy;

/// A metric without labels, from `GET /metrics`.
fn metric(http: SocketAddr, name: &str) -> f64 {
    let text = HttpClient::connect(http)
        .request("GET", "/metrics", &[], b"")
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Waits until the metric has the value (the coordinator forgets groups in the background,
/// and expires consumers on a timer), calling `keep` meanwhile to keep live consumers live.
fn wait_for(http: SocketAddr, name: &str, want: f64, keep: &mut dyn FnMut()) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        keep();
        let v = metric(http, name);
        if v == want {
            return;
        }
        assert!(Instant::now() < deadline, "{name} stays {v}, not {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn registrations_past_the_limits_are_refused_while_a_good_consumer_is_served() {
    let mut broker = Broker::start_with(
        2,
        &[
            "--max-groups",
            "3",
            "--max-consumers-per-group",
            "2",
            "--max-topics-per-consumer",
            "2",
            "--consumer-timeout",
            // Registered consumers must outlive the refusals even on a loaded machine (a
            // 2 s timeout let one expire there, and a refused registration then fitted).
            "5s",
        ],
    );
    let (framed, http) = (broker.framed, broker.http);
    let sent = produce_keyed(framed, "good", 300, 8, "g");
    let mut good = ConsumerClient::connect(framed);
    good.register("good", "g1", &["good"], StartPolicy::Earliest)
        .unwrap();
    let mut got = Vec::new();

    let mut bad = ConsumerClient::connect(framed);
    bad.register("b1", "g2", &["other"], StartPolicy::Earliest)
        .unwrap();
    bad.register("b2", "g2", &["other"], StartPolicy::Earliest)
        .unwrap();
    bad.register("b3", "g3", &["other"], StartPolicy::Earliest)
        .unwrap();
    // A misbehaving client names new groups and new members without end; the good consumer
    // polls between its attempts and is always answered.
    for i in 0..2000 {
        let (id, group) = (format!("x{i}"), format!("new{i}"));
        let e = bad
            .register(&id, &group, &["other"], StartPolicy::Earliest)
            .unwrap_err();
        assert_eq!(e.0, 10, "{e:?}");
        assert!(e.1.contains("--max-groups"), "{e:?}");
        let e = bad
            .register(&id, "g2", &["other"], StartPolicy::Earliest)
            .unwrap_err();
        assert_eq!(e.0, 10, "{e:?}");
        assert!(e.1.contains("--max-consumers-per-group"), "{e:?}");
        if i % 20 == 0 {
            got.extend(bodies(&good.poll("good", None).expect("the good consumer")));
            // The bad client's members stay live (any request counts).
            for id in ["b1", "b2", "b3"] {
                bad.commit(id).unwrap();
            }
        }
    }
    // Too many topics: refused before any of them is created.
    let e = bad
        .register("b4", "g3", &["tx1", "tx2", "tx3"], StartPolicy::Earliest)
        .unwrap_err();
    assert_eq!(e.0, 10, "{e:?}");
    assert!(e.1.contains("--max-topics-per-consumer"), "{e:?}");
    for t in ["tx1", "tx2", "tx3"] {
        assert!(!broker.data_dir.join(t).exists(), "{t} was created");
    }
    // The same answers over HTTP: 429.
    let mut h = HttpClient::connect(http);
    let r = h.register("x", "new", &["other"], "startFromEarliest");
    assert_eq!(r.status, 429, "{}", r.text());
    let r = h.register("x", "g2", &["other"], "startFromEarliest");
    assert_eq!(r.status, 429, "{}", r.text());
    // Refused registrations left nothing behind.
    assert_eq!(metric(http, "shardlog_consumer_groups"), 3.0);
    assert_eq!(metric(http, "shardlog_consumer_groups_in_memory"), 3.0);
    assert_eq!(metric(http, "shardlog_consumers"), 4.0);

    // A goodbye frees a member's slot; an emptied group frees the group's.
    bad.goodbye("b2").unwrap();
    bad.register("b5", "g2", &["other"], StartPolicy::Earliest)
        .unwrap();
    bad.goodbye("b3").unwrap();
    let mut keep = || got.extend(bodies(&good.poll("good", None).expect("the good consumer")));
    wait_for(http, "shardlog_consumer_groups_in_memory", 2.0, &mut keep);
    bad.register("b6", "g4", &["other"], StartPolicy::Earliest)
        .unwrap();
    // Consumers that go silent expire, and their groups are forgotten with them.
    wait_for(http, "shardlog_consumers", 1.0, &mut keep);
    wait_for(http, "shardlog_consumer_groups_in_memory", 1.0, &mut keep);

    // The good consumer (still polling) read everything once, and committed it.
    got.extend(bodies(&drain(&mut good, "good")));
    got.sort();
    let mut want: Vec<String> = sent.iter().map(|p| p.1.clone()).collect();
    want.sort();
    assert_eq!(got, want);
    good.commit("good").unwrap();
    good.goodbye("good").unwrap();
    wait_for(http, "shardlog_consumer_groups_in_memory", 0.0, &mut || {});
    // Its group was forgotten; registering again reads the offsets back from disk.
    let more = produce_keyed(framed, "good", 50, 8, "more");
    let mut back = ConsumerClient::connect(framed);
    back.register("back", "g1", &["good"], StartPolicy::Earliest)
        .unwrap();
    let mut again = bodies(&drain(&mut back, "back"));
    again.sort();
    let mut want: Vec<String> = more.iter().map(|p| p.1.clone()).collect();
    want.sort();
    assert_eq!(again, want, "continues from the commit");

    // 4,000 refused registrations and a few groups cost the broker nothing lasting.
    let peak = common::peak_rss(broker.pid());
    println!("peak RSS {} MiB", peak >> 20);
    assert!(peak < 96 << 20, "peak RSS {} MiB", peak >> 20);
    broker.kill9();
}

/// `--max-consumers` bounds live consumers in all groups together: one more is refused (ERROR
/// 10) whatever its group, a registered consumer may register again or move, and a consumer
/// that leaves frees its slot.
#[test]
fn consumers_in_all_groups_together_are_bounded() {
    let broker = Broker::start_with(1, &["--max-consumers", "3"]);
    let mut c = ConsumerClient::connect(broker.framed);
    for (id, group) in [("a", "g1"), ("b", "g2"), ("c", "g3")] {
        c.register(id, group, &["t"], StartPolicy::Earliest)
            .unwrap();
    }
    let refused = c
        .register("d", "g4", &["t"], StartPolicy::Earliest)
        .unwrap_err();
    assert_eq!(refused.0, 10, "{refused:?}");
    assert!(refused.1.contains("--max-consumers"), "{refused:?}");
    // Registering again, or moving to another group, takes no new slot.
    c.register("c", "g1", &["t"], StartPolicy::Earliest)
        .unwrap();
    c.goodbye("a").unwrap();
    c.register("d", "g4", &["t"], StartPolicy::Earliest)
        .unwrap();
}
