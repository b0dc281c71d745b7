//! A blocking framed-TCP consumer client for end-to-end tests: REGISTER, POLL, COMMIT,
//! GOODBYE, and decoding of poll responses down to records (zstd + `RecordIter`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use shardlog::wire::consumer::{
    encode_consumer_id, encode_poll, encode_register, PollBody, RegisterBody, StartPolicy,
};
use shardlog::wire::error::parse_error_body;
use shardlog::wire::frame::{encode_frame, Frame, OpCode};
use shardlog::wire::poll::parse_poll_response;
use shardlog::wire::record::RecordIter;

/// One poll item, decoded.
#[derive(Debug, Clone)]
pub struct Item {
    pub token: i64,
    pub range_index: u8,
    pub gen: u32,
    pub topic: String,
    pub offset: i64,
    /// The compressed payload exactly as received.
    pub payload: Vec<u8>,
    /// (offset, timestamp μs, body) of each record.
    pub records: Vec<(i64, i64, Vec<u8>)>,
}

/// An ERROR answer: (code, message).
pub type Refusal = (u8, String);

pub struct ConsumerClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    next_sid: u16,
}

impl ConsumerClient {
    pub fn connect(addr: SocketAddr) -> ConsumerClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        ConsumerClient {
            stream,
            buf: Vec::new(),
            next_sid: 1,
        }
    }

    /// Sends one frame and returns the answer's opcode and body.
    pub fn request(&mut self, op: OpCode, body: &[u8]) -> (OpCode, Vec<u8>) {
        let sid = self.next_sid;
        self.next_sid = self.next_sid.wrapping_add(1);
        let mut b = Vec::new();
        encode_frame(&mut b, op, 0, sid, body);
        self.stream.write_all(&b).expect("send");
        let (rsid, op, body) = self.recv().expect("an answer");
        assert_eq!(rsid, sid, "answer on the request's stream id");
        (op, body)
    }

    /// The next frame: (stream id, opcode, body), or `None` at end of stream.
    pub fn recv(&mut self) -> Option<(u16, OpCode, Vec<u8>)> {
        loop {
            if let Some((f, used)) = Frame::parse(&self.buf, u32::MAX).expect("valid frame") {
                let out = (
                    f.header.stream_id,
                    OpCode::from_u8(f.header.opcode).expect("known opcode"),
                    f.body.to_vec(),
                );
                self.buf.drain(..used);
                return Some(out);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn expect_ready(answer: (OpCode, Vec<u8>)) -> Result<(), Refusal> {
        match answer {
            (OpCode::Ready, _) => Ok(()),
            (OpCode::Error, body) => Err(parse_error_body(&body).unwrap()),
            (other, _) => panic!("unexpected answer {other:?}"),
        }
    }

    pub fn register(
        &mut self,
        id: &str,
        group: &str,
        topics: &[&str],
        policy: StartPolicy,
    ) -> Result<(), Refusal> {
        let mut b = Vec::new();
        encode_register(
            &RegisterBody {
                policy,
                consumer_id: id.into(),
                group: group.into(),
                topics: topics.iter().map(|t| t.to_string()).collect(),
            },
            &mut b,
        );
        Self::expect_ready(self.request(OpCode::Register, &b))
    }

    /// Polls; returns the raw response body too.
    pub fn poll_raw(&mut self, id: &str, wait_ms: Option<u32>) -> Result<Vec<u8>, Refusal> {
        let mut b = Vec::new();
        encode_poll(
            &PollBody {
                consumer_id: id.into(),
                max_wait_ms: wait_ms,
            },
            &mut b,
        );
        match self.request(OpCode::Poll, &b) {
            (OpCode::PollResponse, body) => Ok(body),
            (OpCode::Error, body) => Err(parse_error_body(&body).unwrap()),
            (other, _) => panic!("unexpected answer {other:?}"),
        }
    }

    pub fn poll(&mut self, id: &str, wait_ms: Option<u32>) -> Result<Vec<Item>, Refusal> {
        self.poll_raw(id, wait_ms).map(|b| decode_items(&b))
    }

    pub fn commit(&mut self, id: &str) -> Result<(), Refusal> {
        let mut b = Vec::new();
        encode_consumer_id(id, &mut b);
        Self::expect_ready(self.request(OpCode::Commit, &b))
    }

    pub fn goodbye(&mut self, id: &str) -> Result<(), Refusal> {
        let mut b = Vec::new();
        encode_consumer_id(id, &mut b);
        Self::expect_ready(self.request(OpCode::Goodbye, &b))
    }
}

/// Decodes a poll response body, decompressing every payload and checking its records.
pub fn decode_items(body: &[u8]) -> Vec<Item> {
    parse_poll_response(body)
        .expect("a well-formed poll response")
        .into_iter()
        .map(|it| {
            let raw = zstd::stream::decode_all(it.payload).expect("a zstd frame");
            let records = RecordIter::new(&raw)
                .enumerate()
                .map(|(i, r)| {
                    let r = r.expect("a well-formed record");
                    (it.header.offset + i as i64, r.timestamp_us, r.body.to_vec())
                })
                .collect();
            Item {
                token: it.header.token,
                range_index: it.header.range_index,
                gen: it.header.gen_version,
                topic: it.header.topic.to_string(),
                offset: it.header.offset,
                payload: it.payload.to_vec(),
                records,
            }
        })
        .collect()
}

/// Produces `n` messages to `topic`, keyed `key-{i mod keys}`, body `{tag}|{key}|{seq}` where
/// seq counts per key; up to 32 frames in flight. Returns (key, body) of each, all acked.
pub fn produce_keyed(
    addr: SocketAddr,
    topic: &str,
    n: usize,
    keys: usize,
    tag: &str,
) -> Vec<(String, String)> {
    let mut c = super::Client::startup(addr, topic);
    let mut out = Vec::with_capacity(n);
    let mut in_flight = 0;
    let mut seq = vec![0usize; keys];
    for i in 0..n {
        let k = i % keys;
        let key = format!("key-{k}");
        let body = format!("{tag}|{key}|{}", seq[k]);
        seq[k] += 1;
        c.send_produce((i % 60000) as u16 + 1, key.as_bytes(), &[body.as_bytes()]);
        out.push((key, body));
        in_flight += 1;
        if in_flight == 32 {
            expect_acks(&mut c, in_flight);
            in_flight = 0;
        }
    }
    expect_acks(&mut c, in_flight);
    out
}

fn expect_acks(c: &mut super::Client, n: usize) {
    for _ in 0..n {
        match c.recv().expect("answer") {
            super::Response::Produced(_) => {}
            other => panic!("produce failed: {other:?}"),
        }
    }
}

/// Polls until two polls in a row bring nothing; returns every item.
pub fn drain(c: &mut ConsumerClient, id: &str) -> Vec<Item> {
    let mut all = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let items = c.poll(id, None).expect("poll");
        if items.is_empty() {
            empty += 1;
        } else {
            empty = 0;
            all.extend(items);
        }
    }
    all
}

/// The bodies of every record of `items`, as strings.
pub fn bodies(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .flat_map(|it| it.records.iter())
        .map(|(_, _, b)| String::from_utf8(b.clone()).expect("UTF-8 body"))
        .collect()
}
