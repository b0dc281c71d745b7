//! Issue 13 item 11: JSON polls. A JSON poll decompresses, so its output is bounded by
//! `--max-poll-bytes` (the items past the bound come in later polls, each exactly once), it
//! lets the shard's other connections be served while it renders, and bodies that are not
//! UTF-8 come back byte-identical (base64, in items marked `"encoding":"base64"`).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::framed::FramedProducer;
use common::http::{HttpClient, Response as HttpResponse};
use common::{peak_rss, reset_peak, rss, Broker};
use shardlog::wire::base64;

const JSON: Option<&str> = Some("application/json");

/// A 4 MiB body that compresses to almost nothing: `tag|` then `a`s (not JSON, so it comes
/// back as a JSON string).
fn compressible(tag: &str, len: usize) -> Vec<u8> {
    let mut b = format!("{tag}|").into_bytes();
    b.resize(len, b'a');
    b
}

/// A JSON poll's items: (start offset, the bodies' bytes as stored).
fn json_items(r: &HttpResponse) -> Vec<(i64, Vec<Vec<u8>>)> {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    let mut items = Vec::new();
    for item in v.as_array().expect("an array") {
        let start: i64 = item["startOffset"].as_str().unwrap().parse().unwrap();
        let base64 = match item.get("encoding") {
            None => false,
            Some(e) if e == "base64" => true,
            Some(e) => panic!("unknown encoding {e}"),
        };
        let bodies = item["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| match (base64, v) {
                (true, serde_json::Value::String(s)) => base64::decode(s.as_bytes()).unwrap(),
                (true, other) => panic!("a base64 item with a value {other}"),
                (false, serde_json::Value::String(s)) => s.clone().into_bytes(),
                (false, other) => other.to_string().into_bytes(),
            })
            .collect();
        items.push((start, bodies));
    }
    items
}

const BIG: usize = 4 << 20;
const COUNT: usize = 40;
const MAX_POLL: usize = 16 << 20;
/// Peak growth allowed for one JSON poll bounded at 16 MiB: the response, one more item being
/// tried and its decoded chunk. Rendering the whole 1 MiB binary poll (all 40 items) took
/// more than 160 MiB.
const BOUND: u64 = 48 << 20;

#[test]
fn json_polls_are_bounded_and_deliver_everything_once_in_order() {
    let mut broker = Broker::start_with(
        1,
        &[
            "--max-frame-size",
            "8MiB",
            "--max-poll-bytes",
            &MAX_POLL.to_string(),
        ],
    );
    let mut p = FramedProducer::startup(broker.framed, "big");
    for i in 0..COUNT {
        let b = compressible(&format!("m{i:02}"), BIG);
        assert_eq!(p.produce(b"k", &[&b]), Ok(()));
    }
    drop(p);
    let pid = broker.pid();
    let mut c = HttpClient::connect(broker.http);
    assert_eq!(
        c.register("c", "g", &["big"], "startFromEarliest").status,
        200
    );

    let mut got: Vec<String> = Vec::new();
    let mut next = 0i64;
    let (mut polls, mut empty, mut worst) = (0, 0, 0u64);
    let reset = reset_peak(pid);
    while empty < 2 {
        reset_peak(pid);
        let before = rss(pid);
        let r = c.poll_raw("c", None, JSON);
        worst = worst.max(peak_rss(pid).saturating_sub(before));
        polls += 1;
        assert!(polls < 100, "draining does not end");
        if r.status == 204 {
            empty += 1;
            continue;
        }
        empty = 0;
        let items = json_items(&r);
        // Within the bound, unless one item alone passes it.
        assert!(
            r.body.len() <= MAX_POLL || items.len() == 1,
            "a JSON poll of {} items took {} bytes",
            items.len(),
            r.body.len()
        );
        for (start, bodies) in items {
            assert_eq!(start, next, "items in order, none skipped or repeated");
            for b in bodies {
                assert_eq!(b.len(), BIG);
                let tag = b.split(|&c| c == b'|').next().unwrap();
                got.push(String::from_utf8(tag.to_vec()).unwrap());
                next += 1;
            }
        }
        assert_eq!(c.commit("c").status, 204);
    }
    eprintln!(
        "{polls} JSON polls, worst broker growth {} MiB (peak reset: {reset})",
        worst >> 20
    );
    let expected: Vec<String> = (0..COUNT).map(|i| format!("m{i:02}")).collect();
    assert_eq!(got, expected, "every message once, in order");
    // 3 items of ~4 MiB fit in 16 MiB: the drain took several polls.
    assert!(polls >= COUNT / 3, "{polls} polls");
    if reset {
        assert!(
            worst <= BOUND,
            "a JSON poll grew the broker by {} MiB (bound {} MiB)",
            worst >> 20,
            BOUND >> 20
        );
    }
    // Committed: a new consumer of the group starts after everything.
    assert_eq!(c.goodbye("c").status, 200);
    assert_eq!(
        c.register("d", "g", &["big"], "startFromEarliest").status,
        200
    );
    assert_eq!(c.poll_raw("d", None, JSON).status, 204);
    broker.terminate(std::time::Duration::from_secs(30));
}

/// Peak growth allowed for a test of a few small messages.
const SMALL_BOUND: u64 = 16 << 20;

#[test]
fn bodies_that_are_not_utf8_survive_the_json_round_trip() {
    let broker = Broker::start(1);
    let (pid, reset) = (broker.pid(), reset_peak(broker.pid()));
    let before = rss(pid);
    let binary: Vec<u8> = vec![0xff, 0xfe, 0x00, b'"', 0x80, b'\n', 0xc3];
    let json = b"{\"n\": 1}".to_vec();
    // Framed: one frame, one chunk, a binary body beside a JSON one.
    let mut p = FramedProducer::startup(broker.framed, "bin");
    assert_eq!(p.produce(b"k", &[&binary, &json]), Ok(()));
    let mut c = HttpClient::connect(broker.http);
    assert_eq!(
        c.register("c", "g", &["bin"], "startFromEarliest").status,
        200
    );
    let items = json_items(&c.poll_raw("c", None, JSON));
    assert_eq!(items, vec![(0, vec![binary.clone(), json.clone()])]);

    // REST: raw bytes as application/octet-stream, then a JSON message alone in its chunk.
    let rest_binary: Vec<u8> = (0..=255u8).rev().collect();
    let r = c.produce("bin", Some("k"), "application/octet-stream", &rest_binary);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.produce("bin", Some("k"), "application/json", b"[1,2]");
    assert_eq!(r.status, 200, "{}", r.text());
    let items = json_items(&c.poll_raw("c", None, JSON));
    assert_eq!(
        items,
        vec![(2, vec![rest_binary.clone()]), (3, vec![b"[1,2]".to_vec()])]
    );

    // `encoding=base64`: every item in base64, every body byte-exact (whitespace included).
    assert_eq!(
        c.register("e", "g2", &["bin"], "startFromEarliest").status,
        200
    );
    let r = c.request(
        "POST",
        "/v1/consumer/poll?consumerId=e&encoding=base64",
        &[("accept", "application/json")],
        b"",
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["encoding"] == "base64"));
    let bodies: Vec<Vec<u8>> = json_items(&r).into_iter().flat_map(|i| i.1).collect();
    assert_eq!(bodies, vec![binary, json, rest_binary, b"[1,2]".to_vec()]);
    let r = c.request(
        "POST",
        "/v1/consumer/poll?consumerId=e&encoding=hex",
        &[("accept", "application/json")],
        b"",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let growth = peak_rss(pid).saturating_sub(before);
    eprintln!("broker growth {} KiB (peak reset: {reset})", growth >> 10);
    if reset {
        assert!(
            growth <= SMALL_BOUND,
            "the broker grew by {} MiB",
            growth >> 20
        );
    }
}

/// Peak growth allowed for one JSON poll bounded at 64 MiB: the response, one more item being
/// tried and its decoded chunk.
const WIDE_BOUND: u64 = 96 << 20;

#[test]
fn other_clients_of_the_shard_are_answered_while_a_big_json_poll_renders() {
    // One shard: the JSON poll and the other client share it.
    let broker = Broker::start_with(
        1,
        &["--max-frame-size", "8MiB", "--max-poll-bytes", "64MiB"],
    );
    let mut p = FramedProducer::startup(broker.framed, "wide");
    for i in 0..16 {
        let b = compressible(&format!("w{i:02}"), BIG);
        assert_eq!(p.produce(b"k", &[&b]), Ok(()));
    }
    // The well-behaved client: `GET /status`, one after another, counted.
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (a, s, addr) = (answered.clone(), stop.clone(), broker.http);
    let status = std::thread::spawn(move || {
        let mut c = HttpClient::connect(addr);
        while !s.load(Ordering::Relaxed) {
            assert_eq!(c.request("GET", "/status", &[], b"").status, 200);
            a.fetch_add(1, Ordering::Relaxed);
        }
    });
    while answered.load(Ordering::Relaxed) < 10 {
        std::thread::yield_now();
    }

    let mut c = HttpClient::connect(broker.http);
    assert_eq!(
        c.register("c", "g", &["wide"], "startFromEarliest").status,
        200
    );
    // Counted from the request to the first byte of the answer: the response is rendered
    // whole before any of it is sent, so this covers the rendering and not the transfer.
    let target = "/v1/consumer/poll?consumerId=c";
    let head = format!(
        "POST {target} HTTP/1.1\r\nhost: {}\r\naccept: application/json\r\ncontent-length: 0\r\n\r\n",
        broker.http
    );
    let (pid, reset) = (broker.pid(), reset_peak(broker.pid()));
    let rss_before = rss(pid);
    let before = answered.load(Ordering::Relaxed);
    std::io::Write::write_all(&mut c.stream, head.as_bytes()).unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut c.stream, &mut first).unwrap();
    let during = answered.load(Ordering::Relaxed) - before;
    let r = read_response_after(&mut c.stream, first[0]);
    let growth = peak_rss(pid).saturating_sub(rss_before);
    stop.store(true, Ordering::Relaxed);
    status.join().unwrap();
    let items = json_items(&r);
    eprintln!(
        "{} items, {} MiB of JSON; /status answered {during} times while it rendered; \
         broker growth {} MiB (peak reset: {reset})",
        items.len(),
        r.body.len() >> 20,
        growth >> 20
    );
    assert!(!items.is_empty());
    assert!(r.body.len() <= 64 << 20);
    if reset {
        assert!(
            growth <= WIDE_BOUND,
            "the broker grew by {} MiB",
            growth >> 20
        );
    }
    // Without yielding, the shard answered nothing while rendering (a few answers at most
    // before the rendering started).
    assert!(
        during >= 20,
        "the other client was answered {during} times while a {} MiB JSON poll rendered",
        r.body.len() >> 20
    );
}

/// Reads the rest of a response whose first byte was already read.
fn read_response_after(s: &mut std::net::TcpStream, first: u8) -> HttpResponse {
    use std::io::Read;
    let mut head = vec![first];
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "the response ended early");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    HttpResponse {
        status,
        headers,
        body,
    }
}
