//! Topics are bounded (issue 13, item 13): `--max-topics` refuses the next topic on every
//! interface (framed ERROR 10, HTTP 429, gRPC RESOURCE_EXHAUSTED) while a well-behaved client
//! keeps being served; racing creates agree on the count; topics on disk at start are always
//! served. `--auto-create-topics false` answers an unknown topic "not found" everywhere and
//! `POST /v1/topics/{name}` creates one.

mod common;
mod grpc_client;

use std::sync::{Arc, Barrier};
use std::thread;

use common::consumer::ConsumerClient;
use common::framed::FramedProducer;
use common::http::HttpClient;
use common::proc::open_fds;
use common::{Broker, Client, Response};
use grpc_client::{connect, runtime};
use shardlog::wire::consumer::StartPolicy;
use shardlog::wire::ErrorCode;
use tonic::Code;

const JSON: &str = "application/json";

/// Topic directories in the data directory (the broker's own `@…` entries left out).
fn topics_on_disk(broker: &Broker) -> usize {
    std::fs::read_dir(&broker.data_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("topic.toml").exists())
        .count()
}

/// The answer to STARTUP for `topic` on a fresh connection.
fn startup(broker: &Broker, topic: &str) -> Response {
    let mut c = Client::connect(broker.framed);
    c.send_startup(0, topic);
    c.recv().expect("an answer to STARTUP")
}

fn error_code(r: &Response) -> Option<u8> {
    match r {
        Response::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn max_topics_refuses_more_on_every_interface_while_a_good_client_is_served() {
    const LIMIT: usize = 20;
    let mut broker = Broker::start_with(2, &["--max-topics", &LIMIT.to_string()]);
    let fds_before = open_fds(broker.pid());
    // The well-behaved producer's topic exists first.
    let mut good = FramedProducer::startup(broker.framed, "good");
    assert_eq!(good.produce(b"k", &[b"m0"]), Ok(()));

    // Racing creates of distinct topics, from connections on both shards: exactly the room
    // left is created, every other one is refused with RESOURCE_EXHAUSTED.
    let racers = 3 * LIMIT;
    let barrier = Arc::new(Barrier::new(racers));
    let answers: Vec<Response> = (0..racers)
        .map(|i| {
            let (addr, b) = (broker.framed, barrier.clone());
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                b.wait();
                c.send_startup(0, &format!("race-{i}"));
                c.recv().expect("an answer")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let ready = answers.iter().filter(|r| **r == Response::Ready(0)).count();
    assert_eq!(ready, LIMIT - 1, "{answers:?}");
    for r in answers.iter().filter(|r| **r != Response::Ready(0)) {
        assert_eq!(
            error_code(r),
            Some(ErrorCode::ResourceExhausted as u8),
            "{r:?}"
        );
        let Response::Error { message, .. } = r else {
            unreachable!()
        };
        assert!(message.contains("--max-topics"), "{message}");
    }
    assert_eq!(topics_on_disk(&broker), LIMIT);

    // A REGISTER naming thousands of new topics: refused, and nothing more is created.
    let mut consumer = ConsumerClient::connect(broker.framed);
    let many: Vec<String> = (0..5000).map(|i| format!("reg-{i}")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = consumer
        .register("c1", "g1", &names, StartPolicy::Earliest)
        .unwrap_err();
    assert_eq!(err.0, ErrorCode::ResourceExhausted as u8, "{err:?}");
    assert_eq!(good.produce(b"k", &[b"m1"]), Ok(()));

    // REST produce and an explicit create: 429; an existing topic's create: 200.
    let mut http = HttpClient::connect(broker.http);
    let r = http.produce("rest-new", None, JSON, b"{}");
    assert_eq!(r.status, 429, "{}", r.text());
    let r = http.request("POST", "/v1/topics/admin-new", &[], b"");
    assert_eq!(r.status, 429, "{}", r.text());
    let r = http.request("POST", "/v1/topics/good", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(http.produce("good", None, JSON, b"{}").status, 200);

    // gRPC metadata naming a new topic: RESOURCE_EXHAUSTED; an existing one is served.
    runtime().block_on(async {
        let mut c = grpc_client::Client::new(connect(broker.http).await);
        let err = c
            .produce(&[("topic", "grpc-new")], vec![b"x".to_vec()])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        c.produce(&[("topic", "good")], vec![b"y".to_vec()])
            .await
            .unwrap();
    });
    assert_eq!(good.produce(b"k", &[b"m2"]), Ok(()));
    assert_eq!(topics_on_disk(&broker), LIMIT);
    // Refused topics hold nothing open: a few descriptors for the connections and the good
    // topic's partition, not one per name asked for.
    let fds = open_fds(broker.pid());
    assert!(fds < fds_before + 40, "{fds_before} → {fds} descriptors");

    // A restart with a lower limit serves every topic on disk, and creates none.
    drop(good);
    drop(consumer);
    drop(http);
    broker.extra = vec!["--max-topics".into(), "5".into()];
    broker.restart();
    for i in 0..racers {
        let topic = format!("race-{i}");
        if broker.data_dir.join(&topic).exists() {
            let mut c = FramedProducer::startup(broker.framed, &topic);
            assert_eq!(c.produce(b"k", &[b"after"]), Ok(()));
        }
    }
    let r = startup(&broker, "one-more");
    assert_eq!(error_code(&r), Some(ErrorCode::ResourceExhausted as u8));
    let mut good = FramedProducer::startup(broker.framed, "good");
    assert_eq!(good.produce(b"k", &[b"m3"]), Ok(()));
}

#[test]
fn without_auto_create_unknown_topics_are_not_found_until_created() {
    let broker = Broker::start_with(2, &["--auto-create-topics", "false"]);
    let not_found = Some(ErrorCode::NotFound as u8);
    assert_eq!(error_code(&startup(&broker, "orders")), not_found);
    let mut consumer = ConsumerClient::connect(broker.framed);
    let err = consumer
        .register("c1", "g1", &["orders"], StartPolicy::Earliest)
        .unwrap_err();
    assert_eq!(Some(err.0), not_found, "{err:?}");
    let mut http = HttpClient::connect(broker.http);
    let r = http.produce("orders", None, JSON, b"{}");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("--auto-create-topics"), "{}", r.text());
    let r = http.register("c2", "g2", &["orders"], "startFromEarliest");
    assert_eq!(r.status, 404, "{}", r.text());
    runtime().block_on(async {
        let mut c = grpc_client::Client::new(connect(broker.http).await);
        let err = c
            .produce(&[("topic", "orders")], vec![b"x".to_vec()])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
    });
    assert_eq!(topics_on_disk(&broker), 0, "nothing was created");

    // Bad names and bodies: 400.
    for (target, body) in [
        ("/v1/topics/bad%20name", &b""[..]),
        ("/v1/topics/orders", b"{\"partitions\": 0}"),
        ("/v1/topics/orders", b"{\"partitions\": \"four\"}"),
        ("/v1/topics/orders", b"[1, 2]"),
    ] {
        let r = http.request("POST", target, &[], body);
        assert_eq!(r.status, 400, "{target} {body:?}: {}", r.text());
    }
    // An explicit create: 201, then 200 (idempotent), 409 for another layout.
    let r = http.request("POST", "/v1/topics/orders", &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v["partitions"], 8, "2 shards × 4: {v}");
    assert_eq!(v["created"], true);
    let r = http.request("POST", "/v1/topics/orders", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http.request("POST", "/v1/topics/orders", &[], b"{\"partitions\": 8}");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http.request("POST", "/v1/topics/orders", &[], b"{\"partitions\": 3}");
    assert_eq!(r.status, 409, "{}", r.text());
    let r = http.request("POST", "/v1/topics/odd", &[], b"{\"partitions\": 3}");
    assert_eq!(r.status, 201, "{}", r.text());

    // Now every interface serves them.
    let mut c = FramedProducer::startup(broker.framed, "orders");
    assert_eq!(c.produce(b"k", &[b"one"]), Ok(()));
    assert_eq!(http.produce("odd", Some("k"), JSON, b"{}").status, 200);
    consumer
        .register("c1", "g1", &["orders", "odd"], StartPolicy::Earliest)
        .unwrap();
    let got = common::consumer::drain(&mut consumer, "c1");
    assert_eq!(got.iter().map(|i| i.records.len()).sum::<usize>(), 2);
    runtime().block_on(async {
        let mut g = grpc_client::Client::new(connect(broker.http).await);
        g.produce(&[("topic", "odd"), ("partition", "2")], vec![b"x".to_vec()])
            .await
            .unwrap();
        let err = g
            .produce(&[("topic", "odd"), ("partition", "3")], vec![b"x".to_vec()])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    });
    assert_eq!(topics_on_disk(&broker), 2);
}
