//! A fake broker for the harness's tests: a std `TcpListener` that answers STARTUP with READY
//! and each PRODUCE with a PRODUCE_RESPONSE on the same stream id, after an optional delay.
//! It checks what the harness sends with the broker's own codecs (valid frames, valid PRODUCE
//! bodies, no stream id in flight twice) and can misbehave on purpose (ERROR answers, answers
//! out of order, a stall, garbage, closing the connection).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use shardlog_wire::error::{encode_error_body, ErrorCode};
use shardlog_wire::frame::{encode_frame, Flags, Frame, OpCode};
use shardlog_wire::produce::ProduceBody;
use shardlog_wire::startup::parse_startup;

#[derive(Debug, Clone, Default)]
pub struct FakeOptions {
    /// Answer each PRODUCE this long after it arrived.
    pub delay: Duration,
    /// Answer every Nth PRODUCE frame (1-based, across connections) with ERROR 6.
    pub error_every: Option<u64>,
    /// Answer the frames of each read in reverse order.
    pub reorder: bool,
    /// After this many PRODUCE frames (across connections), stop answering for this long.
    pub stall: Option<(u64, Duration)>,
    /// After this many PRODUCE frames, send a frame with a bad head CRC.
    pub garbage_after: Option<u64>,
    /// After this many PRODUCE frames, close the connection.
    pub close_after: Option<u64>,
    /// Answer STARTUP with this ERROR instead of READY.
    pub refuse_startup: Option<(u8, String)>,
}

#[derive(Debug, Default)]
pub struct FakeStats {
    pub connections: AtomicU64,
    pub frames: AtomicU64,
    pub messages: AtomicU64,
    pub with_timestamp: AtomicU64,
    pub topics: Mutex<Vec<String>>,
    /// PRODUCE frames per key.
    pub keys: Mutex<HashMap<Vec<u8>, u64>>,
    /// Protocol violations seen (should stay empty).
    pub violations: Mutex<Vec<String>>,
}

impl FakeStats {
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

pub struct FakeBroker {
    pub addr: SocketAddr,
    pub stats: Arc<FakeStats>,
}

impl FakeBroker {
    pub fn start(opts: FakeOptions) -> FakeBroker {
        FakeBroker::start_on("127.0.0.1:0", opts)
    }

    pub fn start_on(addr: &str, opts: FakeOptions) -> FakeBroker {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(FakeStats::default());
        let s = stats.clone();
        let opts = Arc::new(opts);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let (s, o) = (s.clone(), opts.clone());
                thread::spawn(move || serve(stream, s, o));
            }
        });
        FakeBroker { addr, stats }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

/// A port on which nothing listens.
pub fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

fn violation(stats: &FakeStats, what: String) {
    stats.violations.lock().unwrap().push(what);
}

fn serve(stream: TcpStream, stats: Arc<FakeStats>, opts: Arc<FakeOptions>) {
    stream.set_nodelay(true).unwrap();
    let mut rd = stream.try_clone().unwrap();
    let in_flight = Arc::new(Mutex::new(HashSet::<u16>::new()));
    // The responder writes answers when they are due, in the order it gets them.
    let (tx, rx) = mpsc::channel::<(Instant, Option<u16>, Vec<u8>)>();
    let mut wr = stream;
    let inf = in_flight.clone();
    thread::spawn(move || {
        for (due, id, bytes) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if let Some(id) = id {
                inf.lock().unwrap().remove(&id);
            }
            if bytes.is_empty() {
                let _ = wr.shutdown(std::net::Shutdown::Both);
                return;
            }
            if wr.write_all(&bytes).is_err() {
                return;
            }
        }
    });

    let mut buf = vec![0u8; 1 << 20];
    let (mut start, mut end) = (0, 0);
    loop {
        if start == end {
            (start, end) = (0, 0);
        } else if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if end == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = match rd.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        end += n;
        let mut answers = Vec::new();
        loop {
            let (frame, used) = match Frame::parse(&buf[start..end], 64 << 20) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    violation(&stats, format!("bad frame from client: {e}"));
                    return;
                }
            };
            let h = frame.header;
            match OpCode::from_u8(h.opcode) {
                Ok(OpCode::Startup) => {
                    let mut out = Vec::new();
                    match (&opts.refuse_startup, parse_startup(frame.body)) {
                        (Some((code, msg)), _) => {
                            let mut body = Vec::new();
                            body.push(*code);
                            body.extend_from_slice(msg.as_bytes());
                            encode_frame(&mut out, OpCode::Error, 0, h.stream_id, &body);
                        }
                        (None, Ok(topic)) => {
                            stats.topics.lock().unwrap().push(topic);
                            encode_frame(&mut out, OpCode::Ready, 0, h.stream_id, &[]);
                        }
                        (None, Err(e)) => {
                            violation(&stats, format!("bad STARTUP: {e}"));
                            return;
                        }
                    }
                    answers.push((Instant::now(), None, out));
                }
                Ok(OpCode::Heartbeat) => {
                    let mut out = Vec::new();
                    encode_frame(&mut out, OpCode::Ready, 0, h.stream_id, &[]);
                    answers.push((Instant::now(), None, out));
                }
                Ok(OpCode::Produce) => {
                    let with_ts = h.flags & Flags::WITH_TIMESTAMP != 0;
                    let body = match ProduceBody::parse(frame.body, with_ts) {
                        Ok(b) => b,
                        Err(e) => {
                            violation(&stats, format!("bad PRODUCE body: {e}"));
                            return;
                        }
                    };
                    if !in_flight.lock().unwrap().insert(h.stream_id) {
                        violation(
                            &stats,
                            format!("stream id {} reused while in flight", h.stream_id),
                        );
                    }
                    let n = stats.frames.fetch_add(1, Ordering::SeqCst) + 1;
                    stats
                        .messages
                        .fetch_add(body.count as u64, Ordering::SeqCst);
                    if with_ts {
                        stats.with_timestamp.fetch_add(1, Ordering::SeqCst);
                    }
                    *stats
                        .keys
                        .lock()
                        .unwrap()
                        .entry(body.key.to_vec())
                        .or_default() += 1;
                    let mut due = Instant::now() + opts.delay;
                    if let Some((at, pause)) = opts.stall {
                        if n == at {
                            due += pause;
                        }
                    }
                    let mut out = Vec::new();
                    if opts.error_every.is_some_and(|k| n.is_multiple_of(k)) {
                        let mut body = Vec::new();
                        encode_error_body(
                            ErrorCode::Unavailable,
                            "unavailable: disk nearly full",
                            &mut body,
                        );
                        encode_frame(&mut out, OpCode::Error, 0, h.stream_id, &body);
                    } else {
                        encode_frame(&mut out, OpCode::ProduceResponse, 0, h.stream_id, &[]);
                    }
                    answers.push((due, Some(h.stream_id), out));
                    if opts.garbage_after == Some(n) {
                        let mut bad = Vec::new();
                        encode_frame(&mut bad, OpCode::ProduceResponse, 0, 1, &[]);
                        bad[12] ^= 0xFF;
                        answers.push((due, None, bad));
                    }
                    if opts.close_after == Some(n) {
                        answers.push((due, None, Vec::new()));
                    }
                }
                other => violation(&stats, format!("unexpected opcode from client: {other:?}")),
            }
            start += used;
        }
        if opts.reorder {
            // Keep due times non-decreasing for the FIFO responder, reverse the bytes.
            let dues: Vec<Instant> = answers.iter().map(|a| a.0).collect();
            answers.reverse();
            for (a, d) in answers.iter_mut().zip(dues) {
                a.0 = d;
            }
        }
        for a in answers {
            if tx.send(a).is_err() {
                return;
            }
        }
    }
}
