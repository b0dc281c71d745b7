//! Framed clients that misbehave on purpose — one that never reads its answers, one that
//! stalls inside a frame, several sending compression bombs at once — are stopped, refused or
//! disconnected, while a well-behaved client on another connection of the same shard keeps
//! getting answers and the broker's memory stays bounded.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::proc::rss_kib;
use common::{Broker, Client, Response};
use shardlog::wire::frame::{encode_frame, encode_frame_with, Flags, OpCode};
use shardlog::wire::produce::encode_produce_body;
use shardlog::wire::record::encode_record;
use shardlog::wire::ErrorCode;

/// The broker's RSS (KiB) grew by less than [`RSS_BOUND_KIB`] from `before` to `peak`.
fn assert_rss_growth_bounded(before: u64, peak: u64) {
    assert!(
        peak.saturating_sub(before) < RSS_BOUND_KIB,
        "broker RSS grew by {} KiB (bound {RSS_BOUND_KIB} KiB)",
        peak.saturating_sub(before)
    );
}

/// What a well-behaved producer saw while a hostile client was at work.
struct Served {
    /// Acknowledgements it got.
    acks: u16,
    /// The broker's highest RSS sampled meanwhile, in KiB (at least `before`).
    peak: u64,
    /// Its slowest acknowledgement.
    slowest: Duration,
}

/// Produces one message at a time on `keeper` (stream ids from 2), pausing `pause` between
/// them, while `busy()` holds; samples the broker's RSS after each acknowledgement.
fn keep_producing(
    keeper: &mut Client,
    pid: u32,
    before: u64,
    pause: Duration,
    busy: impl Fn() -> bool,
) -> Served {
    let mut served = Served {
        acks: 0,
        peak: before,
        slowest: Duration::ZERO,
    };
    while busy() {
        let sid = 2u16.wrapping_add(served.acks);
        let t = Instant::now();
        assert_eq!(
            keeper.produce(sid, b"k", &[b"still here"]),
            Response::Produced(sid)
        );
        served.slowest = served.slowest.max(t.elapsed());
        served.acks = served.acks.wrapping_add(1);
        served.peak = served.peak.max(rss_kib(pid));
        std::thread::sleep(pause);
    }
    served
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
    let Served {
        mut peak, slowest, ..
    } = keep_producing(&mut keeper, pid, before, Duration::from_millis(20), || {
        !sender.is_finished()
    });
    let sent = sender.join().unwrap();
    peak = peak.max(rss_kib(pid));
    let after = rss_kib(pid);
    eprintln!(
        "hostile client sent {} KiB; broker RSS {before} KiB before, peak {peak} KiB, \
         {after} KiB after; slowest ack {slowest:?}; ended by {:?}",
        sent.bytes >> 10,
        sent.error
    );
    assert_rss_growth_bounded(before, peak);
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

/// Producer-compressed PRODUCE frames (flag 0x08) whose few KiB of zstd expand to 64 MiB, from
/// eight connections at once, pipelined: each is refused with `bad-request` once the check has
/// decompressed a frame's worth, and the shard checks one frame at a time in one buffer, so the
/// broker's memory grows by about one frame limit, not by eight times 64 MiB. A plain producer
/// on the same shard is served throughout.
#[test]
fn compression_bombs_from_many_connections_cost_one_check_buffer() {
    const CONNECTIONS: usize = 8;
    const BOMBS_EACH: u16 = 12;
    // One record of 64 MiB of zeros: a few KiB of zstd, 4 times the 16 MiB frame limit.
    let mut record = Vec::new();
    encode_record(1_700_000_000_000_000, &vec![0u8; 64 << 20], &mut record);
    // Streamed, with no content size in the zstd frame header: the check cannot refuse it
    // from the header and must decompress up to its limit to find out.
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    z.include_checksum(true).unwrap();
    z.include_contentsize(false).unwrap();
    z.write_all(&record).unwrap();
    let payload = z.finish().unwrap();
    drop(record);
    let mut body = vec![1, b'k'];
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&payload);
    let mut bombs = Vec::new();
    for sid in 0..BOMBS_EACH {
        encode_frame(&mut bombs, OpCode::Produce, Flags::COMPRESSED, sid, &body);
    }

    let broker = Broker::start_with(
        1,
        &[
            "--max-frame-size",
            "16MiB",
            "--h2-connection-buffer",
            "16MiB",
        ],
    );
    let pid = broker.pid();
    let mut keeper = Client::startup(broker.framed, "t");
    assert_eq!(keeper.produce(1, b"k", &[b"warm"]), Response::Produced(1));
    std::thread::sleep(Duration::from_millis(300));
    let before = common::rss(pid) >> 10;
    let peak_resettable = common::reset_peak(pid);

    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let mut c = Client::startup(broker.framed, "t");
            let bombs = bombs.clone();
            std::thread::spawn(move || {
                c.send_raw(&bombs);
                let mut refused = 0;
                for _ in 0..BOMBS_EACH {
                    match c.recv() {
                        Some(Response::Error { code, message, .. }) => {
                            assert_eq!(code, ErrorCode::BadRequest as u8, "{message}");
                            assert!(message.contains("more than"), "{message}");
                            refused += 1;
                        }
                        other => panic!("a bomb was answered with {other:?}"),
                    }
                }
                refused
            })
        })
        .collect();

    let started = Instant::now();
    let Served {
        acks,
        mut peak,
        slowest,
    } = keep_producing(&mut keeper, pid, before, Duration::from_millis(10), || {
        senders.iter().any(|s| !s.is_finished())
    });
    let refused: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
    assert_eq!(refused, CONNECTIONS * BOMBS_EACH as usize);
    if peak_resettable {
        peak = peak.max(common::peak_rss(pid) >> 10);
    }
    eprintln!(
        "{refused} bombs refused in {:?}; broker RSS {before} KiB before, peak {peak} KiB \
         (VmHWM {}); {} acks to the plain producer meanwhile, the slowest in {slowest:?}",
        started.elapsed(),
        if peak_resettable {
            "reset before"
        } else {
            "not resettable"
        },
        acks
    );
    // One check buffer of at most the frame limit (plus the record-count allowance), and the
    // eight connections' read buffers.
    assert_rss_growth_bounded(before, peak);
    // Each bomb costs the shard a frame limit's worth of decompression, as a legitimate
    // frame of that size would; the plain producer shares the core with them but is not shut
    // out (a hang guard, not a speed target).
    assert!(
        slowest < Duration::from_secs(10),
        "the plain producer waited {slowest:?}"
    );
    assert_eq!(keeper.produce(1, b"k", &[b"after"]), Response::Produced(1));
}
