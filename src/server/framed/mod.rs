//! The framed binary TCP protocol for producers (see `docs/protocol.md`).
//!
//! A connection names its topic once with STARTUP, then sends PRODUCE frames on any number of
//! stream ids at once; each is answered, in completion order, with PRODUCE_RESPONSE once
//! durable or with ERROR. Framing errors (bad head CRC, unsupported version, oversized body)
//! are answered and close the connection; every other bad request is answered and the
//! connection goes on.
//!
//! Consumer operations (REGISTER, POLL, COMMIT, GOODBYE) need no STARTUP; see [`consumer`].
//!
//! - [`connection`]: the socket halves (frame reader, response outbox).
//! - [`consumer`]: the consumer operations.
//! - [`produce`]: PRODUCE, from the validated body to the answer.

pub mod connection;
pub mod consumer;
pub mod errors;
pub mod produce;

use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::Bytes;
use futures_lite::io::split;

use crate::rt::{self, TcpListener, TcpStream};
use crate::shard::{Shard, TopicState};
use crate::stats::RequestType;
use crate::wire::error::encode_error_body;
use crate::wire::frame::encode_frame_with;
use crate::wire::startup::StartupBody;
use crate::wire::{ErrorCode, FrameHeader, OpCode};

use super::conns::ConnGuard;
use super::listener::{self, ListenError, Server};
use connection::{FrameReader, Outbox, ReadError};

/// Binds the framed listener on this shard (every shard binds the same port; the kernel
/// spreads connections with SO_REUSEPORT).
pub fn bind(shard: &Shard) -> Result<TcpListener, ListenError> {
    listener::bind(shard.config.framed_listen, "framed-listen")
}

/// The framed protocol, for [`crate::server::listener::accept_loop`].
pub const SERVER: Server = Server {
    name: "framed",
    serve: |shard, stream, guard| Box::pin(async move { serve(&shard, stream, &guard).await }),
    refuse: |stream, max| Box::pin(refuse(stream, max)),
};

/// Answers a connection over the shard's limit with one ERROR and closes it.
async fn refuse(stream: TcpStream, max: usize) {
    use futures_lite::AsyncWriteExt;
    let mut out = Vec::new();
    let msg = format!("too many connections on this shard (--max-connections {max}); retry later");
    encode_frame_with(&mut out, OpCode::Error, 0, 0, |d| {
        encode_error_body(ErrorCode::Unavailable, &msg, d)
    });
    let mut stream = stream;
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

/// What a connection knows after STARTUP.
struct Session {
    topic: Rc<TopicState>,
    keyless_partition: u32,
}

/// Serves one connection to its end.
async fn serve(shard: &Rc<Shard>, stream: TcpStream, guard: &ConnGuard) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    tracing::debug!(?peer, shard = shard.id, "framed connection opened");
    let fd = stream.as_raw_fd();
    let (read_half, write_half) = split(stream);
    let outbox = Rc::new(Outbox::new(peer, shard.metrics.clone()));
    let writer = {
        let outbox = outbox.clone();
        rt::spawn(async move { outbox.write_loop(write_half, fd).await })
    };
    let max_in_flight = shard.config.max_in_flight;
    let in_flight = Rc::new(rt::Semaphore::new(max_in_flight));
    let poll_slot = Rc::new(rt::Semaphore::new(1));
    let mut reader = FrameReader::new(read_half, fd, shard.config.max_frame_size);
    let mut session: Option<Session> = None;
    loop {
        let next = futures_lite::future::or(async { Some(reader.read_frame().await) }, async {
            shard.lifecycle.stopped().await;
            None
        })
        .await;
        let Some(next) = next else {
            tracing::debug!(
                ?peer,
                "shutting down: no more frames read from this connection"
            );
            break;
        };
        match next {
            Ok(Some((header, body))) => {
                guard.touch();
                let conn = Conn {
                    outbox: &outbox,
                    in_flight: &in_flight,
                    poll_slot: &poll_slot,
                };
                handle_frame(shard, &conn, &mut session, header, body).await;
            }
            Ok(None) => {
                tracing::debug!(?peer, "framed connection closed by the client");
                break;
            }
            Err(ReadError::Wire { stream_id, error }) => {
                tracing::debug!(?peer, "framing error: closing the connection");
                outbox.push_error(stream_id, error.code(), &error.to_string());
                break;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!(?peer, error = %e, "connection read ended");
                break;
            }
        }
    }
    // Let frames already read finish and have their answers written before closing.
    let _ = in_flight.acquire(max_in_flight).await;
    outbox.close();
    if let Err(e) = writer.await {
        tracing::debug!(?peer, error = %e, "connection write ended");
        return;
    }
    // Every answer is written: send FIN, then let the client close first. Closing with its
    // unread frames still queued would make the kernel reset the connection, and a client
    // could lose answers it had not read yet.
    // SAFETY: shutdown(2) on the socket this task owns; nothing is closed or freed.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
    let _ = futures_lite::future::or(reader.drain(), rt::sleep(LINGER)).await;
}

/// How long a closing connection waits for the client to close its side.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// A connection's shared parts, as the frame handlers need them.
struct Conn<'a> {
    outbox: &'a Rc<Outbox>,
    in_flight: &'a Rc<rt::Semaphore>,
    poll_slot: &'a Rc<rt::Semaphore>,
}

async fn handle_frame(
    shard: &Rc<Shard>,
    conn: &Conn<'_>,
    session: &mut Option<Session>,
    header: FrameHeader,
    body: Bytes,
) {
    let outbox = conn.outbox;
    let sid = header.stream_id;
    let op = match OpCode::from_u8(header.opcode) {
        Ok(op) => op,
        Err(e) => return outbox.push_error(sid, e.code(), &e.to_string()),
    };
    if let Some(t) = RequestType::of(op) {
        shard.metrics.request(t);
    }
    match op {
        OpCode::Startup => match StartupBody::decode(&body) {
            Ok(startup) => match shard.topic(startup.topic).await {
                Ok(state) => {
                    let keyless_partition = shard.keyless_partition(&state);
                    *session = Some(Session {
                        topic: state,
                        keyless_partition,
                    });
                    outbox.push_empty(OpCode::Ready, sid);
                }
                Err(e) => outbox.push_error(sid, errors::code_of(&e), &e.to_string()),
            },
            Err(e) => outbox.push_error(sid, e.code(), &e.to_string()),
        },
        OpCode::Heartbeat => outbox.push_empty(OpCode::Ready, sid),
        OpCode::Produce => produce::handle(shard, conn, session.as_ref(), header, body).await,
        OpCode::Register | OpCode::Poll | OpCode::Commit | OpCode::Goodbye => {
            consumer::handle(shard, outbox, conn.poll_slot, op, sid, &body).await
        }
        OpCode::Ready | OpCode::Error | OpCode::ProduceResponse | OpCode::PollResponse => outbox
            .push_error(
                sid,
                ErrorCode::BadRequest,
                &format!(
                    "opcode {} is a response; clients may not send it",
                    header.opcode
                ),
            ),
    }
}
