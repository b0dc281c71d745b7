//! HTTP/1.1 clients that misbehave on purpose: one that trickles its request a byte at a time
//! (slowloris) gets 408 once `--request-timeout` passes, and many that each send part of a
//! large body and stall fill the shard's `--partial-input-budget`, after which the shard stops
//! reading bodies instead of allocating. Meanwhile a well-behaved client keeps being answered
//! and the broker's memory stays within a stated bound.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::{read_response, HttpClient};
use common::{peak_rss, Broker};

/// Sends `head` then one byte of `trickle` (if any) every 100 ms on its own thread, until the
/// broker answers or closes; returns the answer's status (`None`: closed without one).
fn slowloris(broker: &Broker, head: &'static [u8], trickle: Option<u8>) -> Option<u16> {
    let mut s = TcpStream::connect(broker.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let Some(byte) = trickle else { return };
        while writer.write_all(&[byte]).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let answer = read_response(&mut s).map(|r| r.status);
    let _ = s.shutdown(std::net::Shutdown::Both);
    sender.join().unwrap();
    answer
}

#[test]
fn a_request_trickled_byte_by_byte_is_answered_408_at_the_deadline() {
    let broker = Broker::start_with(1, &["--request-timeout", "1s"]);
    let mut keeper = HttpClient::connect(broker.http);
    // Bytes keep coming (every 100 ms, far inside any per-read timeout), but the request is
    // never whole: first a head that never ends, then a body that never does; last a whole
    // head whose body never starts.
    let post: &'static [u8] = b"POST /v1/topic/t/messages HTTP/1.1\r\nHost: x\r\n\
        content-type: application/json\r\ncontent-length: 100000\r\n\r\n";
    let heads: [(&'static [u8], Option<u8>); 3] = [
        (b"GET /status HTTP/1.1\r\nHost: x\r\nx-slow: ", Some(b'a')),
        (post, Some(b'b')),
        (post, None),
    ];
    for (head, trickle) in heads {
        let slow = std::thread::scope(|scope| {
            let slow = scope.spawn(|| slowloris(&broker, head, trickle));
            // The well-behaved client is answered all along.
            while !slow.is_finished() {
                assert_eq!(keeper.request("GET", "/status", &[], b"").status, 200);
                std::thread::sleep(Duration::from_millis(100));
            }
            slow.join().unwrap()
        });
        assert_eq!(slow, Some(408), "the slow request is answered 408");
    }
    assert_eq!(keeper.request("GET", "/status", &[], b"").status, 200);
}

/// Slow clients, the part of its body each sends before stalling, and the body it announces.
const SLOW_CLIENTS: usize = 48;
const SENT: usize = 1 << 20;
const ANNOUNCED: usize = 4 << 20;
/// How much the broker's peak RSS may grow while they stall (stated bound): the 4 MiB budget,
/// its buffers' slack and one 8 KiB read per connection, against the 48 MiB they send.
const RSS_BOUND: u64 = 24 << 20;

#[test]
fn slow_bodies_fill_the_shard_budget_and_the_shard_stops_reading() {
    let broker = Broker::start_with(
        1,
        &["--request-timeout", "3s", "--partial-input-budget", "4MiB"],
    );
    let pid = broker.pid();
    let mut keeper = HttpClient::connect(broker.http);
    // Warm up: a few bodies the size the well-behaved client sends later.
    let body = format!("\"{}\"", "x".repeat(256 << 10)).into_bytes();
    for _ in 0..4 {
        let r = keeper.produce("t", None, "application/json", &body);
        assert!(r.status < 300, "{r:?}");
    }
    let before = peak_rss(pid);

    let http = broker.http;
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(http).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
                let head = format!(
                    "POST /v1/topic/t/messages HTTP/1.1\r\nhost: x\r\n\
                     content-type: application/json\r\ncontent-length: {ANNOUNCED}\r\n\r\n"
                );
                s.write_all(head.as_bytes()).unwrap();
                // Whatever the broker does not read waits in the kernel's socket buffers.
                let _ = s.write_all(&vec![b's'; SENT]);
                read_response(&mut s).map(|r| r.status)
            })
        })
        .collect();

    // Small requests are still answered while the budget is full.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(keeper.request("GET", "/status", &[], b"").status, 200);
    // A well-behaved body has to wait for room, and gets it once the slow clients' deadlines
    // have dropped them.
    let started = Instant::now();
    let r = keeper.produce("t", None, "application/json", &body);
    assert!(r.status < 300, "{r:?}");
    let waited = started.elapsed();
    let answers: Vec<_> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    let peak = peak_rss(pid);
    eprintln!(
        "{SLOW_CLIENTS} slow clients sent {} MiB; broker peak RSS {} KiB before, {} KiB after \
         (+{} KiB); the well-behaved body waited {waited:?}",
        (SLOW_CLIENTS * SENT) >> 20,
        before >> 10,
        peak >> 10,
        (peak - before) >> 10
    );
    assert!(
        answers.iter().all(|a| *a == Some(408)),
        "every slow client gets 408: {answers:?}"
    );
    assert!(
        peak - before < RSS_BOUND,
        "broker peak RSS grew by {} KiB (bound {} KiB)",
        (peak - before) >> 10,
        RSS_BOUND >> 10
    );
    assert_eq!(keeper.request("GET", "/status", &[], b"").status, 200);
}

/// Framed clients that each send the header and part of the body of a large frame, then stall.
const SLOW_FRAMES: usize = 32;
const FRAME_SENT: usize = 2 << 20;
/// Their stated bound: the 4 MiB budget, plus the one read between frames each connection
/// makes without waiting for room (at most 384 KiB), against the 64 MiB they send.
const FRAMED_RSS_BOUND: u64 = 32 << 20;

#[test]
fn slow_framed_frames_and_http_bodies_share_the_shard_budget() {
    let broker = Broker::start_with(
        1,
        &[
            "--frame-timeout",
            "3s",
            "--request-timeout",
            "60s",
            "--partial-input-budget",
            "4MiB",
        ],
    );
    let pid = broker.pid();
    let mut keeper = HttpClient::connect(broker.http);
    let body = format!("\"{}\"", "x".repeat(256 << 10)).into_bytes();
    for _ in 0..4 {
        let r = keeper.produce("t", None, "application/json", &body);
        assert!(r.status < 300, "{r:?}");
    }
    let before = peak_rss(pid);

    // A frame announcing a 4 MiB body, cut after its first 2 MiB.
    let mut frame = Vec::new();
    shardlog::wire::frame::encode_frame(
        &mut frame,
        shardlog::wire::OpCode::Produce,
        0,
        1,
        &vec![7u8; 4 << 20],
    );
    frame.truncate(13 + FRAME_SENT);
    let frame = std::sync::Arc::new(frame);
    let framed = broker.framed;
    let slow: Vec<_> = (0..SLOW_FRAMES)
        .map(|_| {
            let frame = frame.clone();
            std::thread::spawn(move || {
                let mut s = common::Client::connect(framed);
                s.stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                s.send_raw(&frame);
                // The frame timeout answers ERROR 3 and closes.
                let first = s.recv();
                (first, s.recv())
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(keeper.request("GET", "/status", &[], b"").status, 200);
    // The HTTP body waits for the room the stalled frames hold, until their deadline.
    let started = Instant::now();
    let r = keeper.produce("t", None, "application/json", &body);
    assert!(r.status < 300, "{r:?}");
    let waited = started.elapsed();
    let ends: Vec<_> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    let peak = peak_rss(pid);
    eprintln!(
        "{SLOW_FRAMES} stalled frames sent {} MiB; broker peak RSS {} KiB before, {} KiB after \
         (+{} KiB); the HTTP body waited {waited:?}",
        (SLOW_FRAMES * FRAME_SENT) >> 20,
        before >> 10,
        peak >> 10,
        (peak - before) >> 10
    );
    for (first, then) in &ends {
        assert!(
            matches!(first, Some(common::Response::Error { code: 3, .. })),
            "{first:?}"
        );
        assert_eq!(*then, None, "closed");
    }
    assert!(
        peak - before < FRAMED_RSS_BOUND,
        "broker peak RSS grew by {} KiB (bound {} KiB)",
        (peak - before) >> 10,
        FRAMED_RSS_BOUND >> 10
    );
}
