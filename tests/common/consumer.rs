//! A consumer for end-to-end tests on the client library's connection layer
//! (`shardlog_client::mux`, on a runtime from [`super::runtime`]): REGISTER, POLL, COMMIT,
//! GOODBYE with blocking calls, and poll responses decoded down to items and records (zstd +
//! `RecordIter`) with each item's payload kept exactly as received, which the tests compare
//! with what is stored. It sends whatever opcode and body a test gives ([`ConsumerClient::request`]),
//! so a test can also send a consumer operation the broker must refuse.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use shardlog::wire::consumer::{
    encode_consumer_id, encode_poll, encode_register, PollBody, RegisterBody, StartPolicy,
};
use shardlog::wire::error::parse_error_body;
use shardlog::wire::frame::OpCode;
use shardlog::wire::poll::parse_poll_response;
use shardlog::wire::record::RecordIter;
use shardlog::wire::startup::StartupBody;
use shardlog_client::mux::Mux;
use shardlog_client::ClientError;

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

/// How long any answer may take (a poll's own wait included).
const ANSWER_LIMIT: Duration = Duration::from_secs(60);

/// One consumer connection. Dropping it closes the connection (as a consumer's crash would).
pub struct ConsumerClient {
    conn: Mux,
    rt: tokio::runtime::Runtime,
}

impl ConsumerClient {
    pub fn connect(addr: SocketAddr) -> ConsumerClient {
        let rt = super::runtime();
        let conn = rt
            .block_on(Mux::connect(&addr.to_string(), u32::MAX, 1, ANSWER_LIMIT))
            .expect("connect");
        ConsumerClient { conn, rt }
    }

    /// Sends one frame and returns the answer's opcode and body (an ERROR answer as
    /// `(OpCode::Error, code | message)`, as it came).
    pub fn request(&mut self, op: OpCode, body: &[u8]) -> (OpCode, Vec<u8>) {
        self.request_with(op, 0, body)
    }

    /// [`Self::request`] with header flags.
    pub fn request_with(&mut self, op: OpCode, flags: u8, body: &[u8]) -> (OpCode, Vec<u8>) {
        match self.rt.block_on(self.conn.call(op, flags, body)) {
            Ok(answer) => (
                OpCode::from_u8(answer.header.opcode).expect("known opcode"),
                answer.body.to_vec(),
            ),
            Err(ClientError::Broker { code, message }) => {
                let mut body = vec![code];
                body.extend_from_slice(message.as_bytes());
                (OpCode::Error, body)
            }
            Err(e) => panic!("{op:?} got no answer: {e}"),
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

    /// Every record partition `partition` of `topic` holds, by FETCH from offset 0 until a
    /// fetch brings nothing (in cluster mode read at the partition's leader).
    pub fn fetch_all(&mut self, topic: &str, partition: u32) -> Vec<Item> {
        self.fetch_all_with(topic, partition, 0)
    }

    /// Like [`Self::fetch_all`], from this broker's own log, never forwarded (cluster mode:
    /// header flag `AT_THIS_BROKER`); a broker that does not lead the partition refuses it.
    pub fn try_fetch_all_local(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<Vec<Item>, Refusal> {
        self.try_fetch_all_with(topic, partition, shardlog::wire::Flags::AT_THIS_BROKER)
    }

    fn fetch_all_with(&mut self, topic: &str, partition: u32, flags: u8) -> Vec<Item> {
        self.try_fetch_all_with(topic, partition, flags)
            .unwrap_or_else(|e| panic!("FETCH refused: {e:?}"))
    }

    fn try_fetch_all_with(
        &mut self,
        topic: &str,
        partition: u32,
        flags: u8,
    ) -> Result<Vec<Item>, Refusal> {
        let mut all: Vec<Item> = Vec::new();
        let mut next = 0;
        loop {
            let mut body = Vec::new();
            shardlog::wire::fetch::FetchBody {
                topic: topic.into(),
                partition,
                from: shardlog::wire::fetch::FetchFrom::Offset(next),
                max_bytes: 1 << 20,
                max_wait_ms: None,
            }
            .encode(&mut body);
            let items = match self.request_with(OpCode::Fetch, flags, &body) {
                (OpCode::PollResponse, body) => decode_items(&body),
                (OpCode::Error, body) => return Err(parse_error_body(&body).expect("ERROR")),
                (op, body) => panic!("FETCH answered {op:?}: {body:?}"),
            };
            let Some(last) = items.last().and_then(|it| it.records.last()) else {
                return Ok(all);
            };
            next = last.0 + 1;
            all.extend(items);
        }
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
/// seq counts per key; one message per frame, up to 32 frames in flight on one connection
/// (the client library's `mux`). Returns (key, body) of each, all acked.
pub fn produce_keyed(
    addr: SocketAddr,
    topic: &str,
    n: usize,
    keys: usize,
    tag: &str,
) -> Vec<(String, String)> {
    let rt = super::runtime();
    rt.block_on(async {
        let conn = Mux::connect(&addr.to_string(), 1 << 20, 32, ANSWER_LIMIT)
            .await
            .expect("connect");
        let mut startup = Vec::new();
        StartupBody { topic }.encode(&mut startup);
        let ready = conn
            .call(OpCode::Startup, 0, &startup)
            .await
            .expect("READY");
        assert_eq!(ready.header.opcode, OpCode::Ready as u8);
        let mut out = Vec::with_capacity(n);
        let mut seq = vec![0usize; keys];
        let mut in_flight = Vec::with_capacity(32);
        for i in 0..n {
            let k = i % keys;
            let key = format!("key-{k}");
            let body = format!("{tag}|{key}|{}", seq[k]);
            seq[k] += 1;
            let sent = conn
                .send_with(OpCode::Produce, 0, |d| {
                    shardlog::wire::produce::encode_produce_body(
                        None,
                        key.as_bytes(),
                        [body.as_bytes()],
                        d,
                    )
                })
                .await
                .expect("send");
            in_flight.push(sent);
            out.push((key, body));
            if in_flight.len() == 32 {
                expect_acks(std::mem::take(&mut in_flight)).await;
            }
        }
        expect_acks(in_flight).await;
        out
    })
}

async fn expect_acks(in_flight: Vec<shardlog_client::mux::Pending<'_>>) {
    for p in in_flight {
        let answer = p.answer().await.expect("produce acknowledged");
        assert_eq!(answer.header.opcode, OpCode::ProduceResponse as u8);
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
