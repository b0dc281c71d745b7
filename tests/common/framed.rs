//! A framed producer for end-to-end tests that produce ordinary frames, on the client
//! library's connection layer (`shardlog_client::mux`, on a runtime from
//! [`super::runtime`]): STARTUP, then PRODUCE frames of exactly the key and messages a test
//! gives, one blocking call each. Tests that script raw or malformed bytes use
//! [`super::Client`], the byte-level peer, instead.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use shardlog::wire::forward::{ForwardedHead, Startup};
use shardlog::wire::frame::OpCode;
use shardlog::wire::produce::encode_produce_body;
use shardlog::wire::startup::StartupBody;
use shardlog_client::mux::Mux;
use shardlog_client::ClientError;

use super::consumer::Refusal;

/// How long any answer may take.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// The most frames [`FramedProducer::produce_each`] puts in flight at once.
const MAX_IN_FLIGHT: usize = 1024;

/// One producer connection, started for one topic.
pub struct FramedProducer {
    conn: Mux,
    rt: tokio::runtime::Runtime,
}

impl FramedProducer {
    /// Connects and sends STARTUP for `topic`, expecting READY.
    pub fn startup(addr: SocketAddr, topic: &str) -> FramedProducer {
        let rt = super::runtime();
        let conn = rt.block_on(async {
            let conn = Mux::connect(&addr.to_string(), 1 << 20, MAX_IN_FLIGHT, ANSWER_LIMIT)
                .await
                .expect("connect");
            let mut body = Vec::new();
            StartupBody { topic }.encode(&mut body);
            let ready = conn.call(OpCode::Startup, 0, &body).await.expect("READY");
            assert_eq!(ready.header.opcode, OpCode::Ready as u8, "READY to STARTUP");
            conn
        });
        FramedProducer { conn, rt }
    }

    /// Connects as broker `from` forwarding frames would (cluster mode): STARTUP for `topic`
    /// with the forwarding option, expecting READY.
    pub fn startup_forwarded(addr: SocketAddr, topic: &str, from: u32) -> FramedProducer {
        let rt = super::runtime();
        let conn = rt.block_on(async {
            let conn = Mux::connect(&addr.to_string(), 1 << 20, MAX_IN_FLIGHT, ANSWER_LIMIT)
                .await
                .expect("connect");
            let mut body = Vec::new();
            Startup {
                topic,
                forwarded_by: Some(from),
            }
            .encode(&mut body);
            let ready = conn.call(OpCode::Startup, 0, &body).await.expect("READY");
            assert_eq!(ready.header.opcode, OpCode::Ready as u8, "READY to STARTUP");
            conn
        });
        FramedProducer { conn, rt }
    }

    /// On a forwarding connection: one frame routed to partition `j` at leader `epoch`.
    pub fn produce_routed(
        &mut self,
        j: u32,
        epoch: u64,
        key: &[u8],
        msgs: &[&[u8]],
    ) -> Result<(), Refusal> {
        let head = ForwardedHead {
            partition: j,
            leader_epoch: epoch,
        }
        .encode();
        let sent = self.rt.block_on(async {
            self.conn
                .send_with(OpCode::Produce, 0, |d| {
                    d.extend_from_slice(&head);
                    encode_produce_body(None, key, msgs.iter().copied(), d)
                })
                .await?
                .answer()
                .await
        });
        refusal(sent)
    }

    /// Produces one frame of `msgs` under `key` and waits for its answer: `Ok` once stored,
    /// the broker's ERROR as `Err((code, message))`.
    pub fn produce(&mut self, key: &[u8], msgs: &[&[u8]]) -> Result<(), Refusal> {
        let sent = self.rt.block_on(async {
            self.conn
                .send_with(OpCode::Produce, 0, |d| {
                    encode_produce_body(None, key, msgs.iter().copied(), d)
                })
                .await?
                .answer()
                .await
        });
        refusal(sent)
    }

    /// Sends one frame per `(key, message)`, all in flight together, then waits for every
    /// answer; the results are in the order the frames were sent.
    pub fn produce_each(&mut self, frames: &[(Vec<u8>, Vec<u8>)]) -> Vec<Result<(), Refusal>> {
        assert!(
            frames.len() <= MAX_IN_FLIGHT,
            "at most {MAX_IN_FLIGHT} frames at once"
        );
        let answers = self.rt.block_on(async {
            let mut pending = Vec::with_capacity(frames.len());
            for (key, message) in frames {
                let sent = self
                    .conn
                    .send_with(OpCode::Produce, 0, |d| {
                        encode_produce_body(None, key, [message.as_slice()], d)
                    })
                    .await;
                pending.push(sent);
            }
            let mut answers = Vec::with_capacity(pending.len());
            for p in pending {
                answers.push(match p {
                    Ok(p) => p.answer().await,
                    Err(e) => Err(e),
                });
            }
            answers
        });
        answers.into_iter().map(refusal).collect()
    }
}

/// A PRODUCE's answer as a test sees it: `Ok` once stored, the broker's ERROR as
/// `Err((code, message))`; anything else fails the test.
fn refusal(
    answer: Result<shardlog_client::connection::ReceivedFrame, ClientError>,
) -> Result<(), Refusal> {
    match answer {
        Ok(answer) => {
            assert_eq!(
                answer.header.opcode,
                OpCode::ProduceResponse as u8,
                "PRODUCE_RESPONSE to PRODUCE"
            );
            Ok(())
        }
        Err(ClientError::Broker { code, message }) => Err((code, message)),
        Err(e) => panic!("PRODUCE got no answer: {e}"),
    }
}

/// Every record a partition reader gets from where it stands until a fetch comes back empty
/// (after the reader's `max_wait`), through FETCH and the client library.
pub async fn read_until_empty(
    reader: &mut shardlog_client::PartitionReader,
) -> Vec<shardlog_client::Record> {
    let mut got = Vec::new();
    loop {
        let batch = reader.next_batch().await.unwrap();
        if batch.is_empty() {
            return got;
        }
        got.extend(batch);
    }
}
