//! Framed clients that misbehave on purpose — one that never reads its answers, one that
//! stalls inside a frame — are stopped and disconnected, while a well-behaved client on
//! another connection of the same shard keeps getting answers and the broker's memory stays
//! bounded.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Broker, Client, Response};
use shardlog::wire::frame::{encode_frame, encode_frame_with, OpCode};
use shardlog::wire::produce::encode_produce_body;

/// The broker's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    common::rss(pid) >> 10
}

/// What the hostile sender saw.
struct Sent {
    bytes: u64,
    /// The error that ended the sending (`None`: everything was sent).
    error: Option<std::io::Error>,
    /// When the last write returned.
    at: Instant,
}

/// Bytes of bad frames the hostile client tries to send.
const HOSTILE_BYTES: u64 = 100 << 20;
/// How much the broker's RSS may grow while the hostile client sends (stated bound).
const RSS_BOUND_KIB: u64 = 64 << 10;

#[test]
fn a_client_that_never_reads_its_answers_is_stopped_then_closed() {
    let stall = Duration::from_secs(3);
    let broker = Broker::start_with(1, &["--write-stall-timeout", "3s"]);
    let pid = broker.pid();
    let mut keeper = Client::startup(broker.framed, "t");
    assert_eq!(keeper.produce(1, b"k", &[b"warm"]), Response::Produced(1));
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(pid);

    // PRODUCE frames with no body and no STARTUP: each 13-byte frame draws a 72-byte ERROR
    // ("PRODUCE before STARTUP"). The client never reads.
    let mut chunk = Vec::with_capacity(1 << 20);
    while chunk.len() + 13 <= 1 << 20 {
        encode_frame(&mut chunk, OpCode::Produce, 0, 7, &[]);
    }
    let mut hostile = TcpStream::connect(broker.framed).unwrap();
    hostile
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let reader_side = hostile.try_clone().unwrap();
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut bytes = 0u64;
        let mut error = None;
        while bytes < HOSTILE_BYTES {
            if let Err(e) = hostile.write_all(&chunk) {
                error = Some(e);
                break;
            }
            bytes += chunk.len() as u64;
        }
        Sent {
            bytes,
            error,
            at: Instant::now(),
        }
    });

    // Meanwhile the well-behaved client keeps producing and getting answers.
    let mut peak = before;
    let mut sid = 2u16;
    let mut slowest = Duration::ZERO;
    while !sender.is_finished() {
        let t = Instant::now();
        assert_eq!(
            keeper.produce(sid, b"k", &[b"still here"]),
            Response::Produced(sid)
        );
        slowest = slowest.max(t.elapsed());
        sid = sid.wrapping_add(1);
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = sender.join().unwrap();
    peak = peak.max(rss_kib(pid));
    let after = rss_kib(pid);
    eprintln!(
        "hostile client sent {} KiB; broker RSS {before} KiB before, peak {peak} KiB, \
         {after} KiB after; slowest ack {slowest:?}; ended by {:?}",
        sent.bytes >> 10,
        sent.error
    );
    assert!(
        peak - before < RSS_BOUND_KIB,
        "broker RSS grew by {} KiB (bound {RSS_BOUND_KIB} KiB)",
        peak - before
    );
    assert!(
        slowest < Duration::from_secs(5),
        "the other client waited {slowest:?}"
    );
    // The broker stopped reading, then closed the connection after the stall deadline.
    let error = sent
        .error
        .expect("the broker read everything: it should have stopped reading");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "the broker should have closed the connection: {error}"
    );
    assert!(sent.bytes < HOSTILE_BYTES / 2, "{} bytes read", sent.bytes);
    drop(reader_side);
    // Closed after the deadline, not before, and not much later.
    let took = sent.at - started;
    assert!(
        took >= stall && took < stall + Duration::from_secs(15),
        "closed {took:?} after the first write"
    );

    // The broker goes on serving.
    assert_eq!(keeper.produce(1, b"k", &[b"after"]), Response::Produced(1));
    let mut fresh = Client::startup(broker.framed, "t");
    assert_eq!(fresh.produce(1, b"k", &[b"new"]), Response::Produced(1));
}

#[test]
fn a_frame_that_stalls_midway_closes_the_connection() {
    let timeout = Duration::from_secs(1);
    let broker = Broker::start_with(1, &["--frame-timeout", "1s"]);
    let mut keeper = Client::startup(broker.framed, "t");
    let mut slow = Client::startup(broker.framed, "t");

    // Idle between frames for longer than the frame timeout is fine.
    std::thread::sleep(timeout + Duration::from_millis(500));
    assert_eq!(slow.produce(1, b"k", &[b"idle"]), Response::Produced(1));

    // A frame sent in pieces, within the deadline, is served.
    let mut frame = Vec::new();
    encode_frame_with(&mut frame, OpCode::Produce, 0, 2, |d| {
        encode_produce_body(None, b"k", [&[7u8; 100][..]], d)
    });
    slow.send_raw(&frame[..5]);
    std::thread::sleep(timeout / 4);
    slow.send_raw(&frame[5..40]);
    std::thread::sleep(timeout / 4);
    slow.send_raw(&frame[40..]);
    assert_eq!(slow.recv(), Some(Response::Produced(2)));

    // A header and half the body, then nothing.
    let mut frame = Vec::new();
    encode_frame_with(&mut frame, OpCode::Produce, 0, 3, |d| {
        encode_produce_body(None, b"k", [&[7u8; 100][..]], d)
    });
    slow.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    slow.send_raw(&frame[..frame.len() / 2]);
    // The other client is served meanwhile.
    assert_eq!(keeper.produce(1, b"k", &[b"served"]), Response::Produced(1));
    match slow.recv() {
        Some(Response::Error {
            stream_id: 3,
            code: 3,
            message,
        }) => assert!(message.contains("--frame-timeout"), "{message}"),
        other => panic!("expected ERROR 3 naming --frame-timeout, got {other:?}"),
    }
    assert_eq!(slow.recv(), None, "connection closed");
    let took = started.elapsed();
    assert!(
        took >= timeout - Duration::from_millis(50) && took < Duration::from_secs(8),
        "closed after {took:?}"
    );
    assert_eq!(keeper.produce(2, b"k", &[b"still"]), Response::Produced(2));
}
