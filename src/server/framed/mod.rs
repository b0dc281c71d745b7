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
//! - [`group`]: GROUP, a group operation another broker passes to this one (cluster mode).

pub mod connection;
pub mod consumer;
pub mod errors;
pub mod fetch;
pub mod group;
pub mod produce;

use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::Bytes;
use futures_lite::io::split;

use crate::rt::{self, TcpListener, TcpStream};
use crate::shard::{Shard, TopicState};
use crate::stats::{Protocol, RequestType};
use crate::wire::error::encode_error_body;
use crate::wire::forward::Startup;
use crate::wire::frame::encode_frame_with;
use crate::wire::{ErrorCode, FrameHeader, OpCode};

use super::budget::InputBudget;
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
    /// A forwarding broker's connection (cluster mode): its PRODUCE bodies start with the
    /// partition and leader epoch they were routed to, and are never forwarded again.
    forwarded_by: Option<u32>,
}

/// Serves one connection to its end.
async fn serve(shard: &Rc<Shard>, stream: TcpStream, guard: &ConnGuard) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    tracing::debug!(?peer, shard = shard.id, "framed connection opened");
    let fd = stream.as_raw_fd();
    let (read_half, write_half) = split(stream);
    let config = &shard.config;
    let outbox = Rc::new(Outbox::new(
        peer,
        shard.metrics.clone(),
        config.max_unsent_answers,
    ));
    let writer = {
        let outbox = outbox.clone();
        rt::spawn(async move { outbox.write_loop(write_half, fd).await })
    };
    let max_in_flight = shard.config.max_in_flight;
    let in_flight = Rc::new(rt::Semaphore::new(max_in_flight));
    let poll_slot = Rc::new(rt::Semaphore::new(1));
    let mut reader = FrameReader::new(read_half, fd, config.max_frame_size, config.frame_timeout)
        .with_budget(InputBudget::of_shard(shard).charge());
    let mut session: Option<Session> = None;
    let broker = std::cell::Cell::new(None);
    let stall = config.write_stall_timeout;
    loop {
        let next = futures_lite::future::or(
            async {
                // Backpressure on answers: a client that does not read them is not read
                // either, and is dropped if it stays so.
                if outbox.over_limit() {
                    match rt::timeout(stall, outbox.room()).await {
                        Some(true) => {}
                        Some(false) => return Next::WriterGone,
                        None => return Next::Stalled,
                    }
                }
                Next::Read(reader.read_frame().await)
            },
            async {
                shard.lifecycle.stopped().await;
                Next::Stop
            },
        )
        .await;
        let next = match next {
            Next::Read(next) => next,
            Next::Stop => {
                tracing::debug!(
                    ?peer,
                    "shutting down: no more frames read from this connection"
                );
                break;
            }
            Next::WriterGone => {
                tracing::debug!(?peer, "connection write ended: no more frames read");
                break;
            }
            Next::Stalled => {
                let unsent = outbox.unsent();
                super::errlog::client_error(
                    "framed",
                    peer,
                    &format_args!(
                        "closing the connection: {unsent} bytes of answers unsent for \
                         --write-stall-timeout {} (the client does not read them; \
                         --max-unsent-answers {})",
                        humantime::format_duration(stall),
                        config.max_unsent_answers
                    ),
                );
                return abort(fd, writer);
            }
        };
        match next {
            Ok(Some((header, body))) => {
                guard.touch();
                let conn = Conn {
                    outbox: &outbox,
                    in_flight: &in_flight,
                    poll_slot: &poll_slot,
                    broker: &broker,
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
            Err(ReadError::FrameTimeout { stream_id, after }) => {
                let message = format!(
                    "frame not complete within --frame-timeout {}: closing the connection",
                    humantime::format_duration(after)
                );
                outbox.push_error(stream_id, ErrorCode::Protocol, &message);
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
    match rt::timeout(stall, writer).await {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            tracing::debug!(?peer, error = %e, "connection write ended");
            return;
        }
        None => {
            tracing::debug!(?peer, "last answers not taken within --write-stall-timeout");
            // SAFETY: shutdown(2) on the socket this task owns; nothing is closed or freed.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            return;
        }
    }
    // Every answer is written: send FIN, then let the client close first. Closing with its
    // unread frames still queued would make the kernel reset the connection, and a client
    // could lose answers it had not read yet.
    // SAFETY: shutdown(2) on the socket this task owns; nothing is closed or freed.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
    let _ = futures_lite::future::or(reader.drain(), rt::sleep(LINGER)).await;
}

/// What the read loop got next.
enum Next {
    Read(Result<Option<(FrameHeader, Bytes)>, ReadError>),
    /// The broker is shutting down.
    Stop,
    /// The unsent answers stayed above the limit for `--write-stall-timeout`.
    Stalled,
    /// The writer ended (the client is gone): nothing read could be answered.
    WriterGone,
}

/// Drops a connection whose client does not read its answers: its unsent answers are
/// discarded (the writer task is cancelled) and the socket shut down both ways, so the client
/// sees a reset. Frames still in flight finish on their own; their answers go nowhere.
fn abort(fd: std::os::fd::RawFd, writer: rt::Task<std::io::Result<()>>) {
    // SAFETY: shutdown(2) on the socket this task owns; nothing is closed or freed.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    drop(writer);
}

/// How long a closing connection waits for the client to close its side.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// A connection's shared parts, as the frame handlers need them.
struct Conn<'a> {
    outbox: &'a Rc<Outbox>,
    in_flight: &'a Rc<rt::Semaphore>,
    poll_slot: &'a Rc<rt::Semaphore>,
    /// The broker at the other end, once its STARTUP said so (cluster mode).
    broker: &'a std::cell::Cell<Option<u32>>,
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
        shard.metrics.request(Protocol::Framed, t);
    }
    match op {
        OpCode::Startup => match Startup::decode(&body) {
            Ok(Startup {
                forwarded_by: Some(from),
                ..
            }) if crate::cluster::installed().is_none() => outbox.push_error(
                sid,
                ErrorCode::BadRequest,
                &format!(
                    "a forwarding STARTUP (from broker {from}) reached a broker that is not in \
                     cluster mode"
                ),
            ),
            // A broker's connection for group operations: no topic.
            Ok(Startup {
                topic: "",
                forwarded_by: Some(from),
            }) => {
                conn.broker.set(Some(from));
                outbox.push_empty(OpCode::Ready, sid);
            }
            // The topic, from etcd in cluster mode (see `cluster::session`).
            Ok(startup) => match crate::cluster::session::open(shard, startup.topic).await {
                Ok((state, keyless_partition)) => {
                    *session = Some(Session {
                        topic: state,
                        keyless_partition,
                        forwarded_by: startup.forwarded_by,
                    });
                    conn.broker.set(startup.forwarded_by);
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
        OpCode::Fetch => {
            fetch::handle(shard, outbox, conn.poll_slot, sid, header.flags, &body).await
        }
        OpCode::Group => group::handle(shard, conn, sid, body).await,
        OpCode::Ready
        | OpCode::Error
        | OpCode::ProduceResponse
        | OpCode::PollResponse
        | OpCode::GroupAnswer => outbox.push_error(
            sid,
            ErrorCode::BadRequest,
            &format!(
                "opcode {} is a response; clients may not send it",
                header.opcode
            ),
        ),
    }
}
