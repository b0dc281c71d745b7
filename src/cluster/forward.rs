//! Forwarding a framed PRODUCE to the broker that leads its partition: one framed connection
//! per (leader, topic) from this broker, opened on first use on the cluster thread (STARTUP
//! with the topic, then pipelined PRODUCE frames whose bodies are sent exactly as received),
//! and answered when the leader answers. Frames handed over in order go out in order on that
//! one connection, so a key stays in order. A connection that fails fails what it had in
//! flight (retryably: the client resends) and is opened again for the next frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_channel::oneshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::error::{Classify, ErrorClass};
use crate::wire::error::parse_error_body;
use crate::wire::frame::{encode_frame, Frame, OpCode};
use crate::wire::startup::encode_startup;
use crate::wire::ErrorCode;

/// Why a forwarded PRODUCE was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    #[error("partition {partition} of '{topic}' is led by broker {leader}, which is down")]
    LeaderDown {
        topic: String,
        partition: u32,
        leader: u32,
    },
    #[error("partition {partition} of '{topic}' has no leader")]
    NoLeader { topic: String, partition: u32 },
    #[error("this broker does not hold its cluster lease now (cut off from etcd)")]
    NoLease,
    #[error("forwarding to broker {leader} at {addr}: {reason}")]
    Link {
        leader: u32,
        addr: String,
        #[source]
        reason: LinkError,
    },
    /// The leader refused the frame: its error code and message, passed on as they are.
    #[error("{message}")]
    Refused { code: u8, message: String },
}

/// Why a link to a leader failed (every frame waiting on it gets this).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    Io(Arc<std::io::Error>),
    #[error("the leader sent a bad frame: {0}")]
    Wire(#[from] crate::wire::WireError),
    #[error("the leader refused STARTUP: {0}")]
    StartupRefused(String),
    #[error("the leader answered {0:?} where it should not")]
    Unexpected(OpCode),
    #[error("the leader closed the connection")]
    Closed,
    #[error("the broker stopped forwarding")]
    Stopped,
}

impl From<std::io::Error> for LinkError {
    fn from(e: std::io::Error) -> LinkError {
        LinkError::Io(Arc::new(e))
    }
}

impl Classify for ForwardError {
    fn class(&self) -> ErrorClass {
        match self {
            // The leader's own refusal, by its code (framed answers pass the code on as is).
            ForwardError::Refused { code, .. } => match ErrorCode::from_u8(*code) {
                Some(ErrorCode::BadRequest | ErrorCode::Protocol) => ErrorClass::Invalid,
                Some(ErrorCode::NotFound) => ErrorClass::NotFound,
                Some(ErrorCode::Storage) => ErrorClass::Storage,
                Some(ErrorCode::ResourceExhausted) => ErrorClass::ResourceExhausted,
                _ => ErrorClass::Unavailable,
            },
            // Leadership or the link: passes.
            _ => ErrorClass::Unavailable,
        }
    }
}

/// One frame to forward, and where its answer goes.
struct Request {
    flags: u8,
    body: Bytes,
    reply: oneshot::Sender<Result<(), ForwardError>>,
}

/// The open links, by (leader, topic).
#[derive(Default)]
pub struct Forwarder {
    links: Mutex<HashMap<(u32, String), mpsc::UnboundedSender<Request>>>,
}

impl Forwarder {
    /// Hands a PRODUCE body to the link to `leader` (at framed `addr`) for `topic`; the
    /// returned receiver gets the leader's answer. Hand frames over in the order they must
    /// be written.
    pub fn send(
        &self,
        runtime: &tokio::runtime::Handle,
        leader: u32,
        addr: &str,
        topic: &str,
        flags: u8,
        body: Bytes,
    ) -> oneshot::Receiver<Result<(), ForwardError>> {
        let (reply, answer) = oneshot::channel();
        let mut request = Request { flags, body, reply };
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let key = (leader, topic.to_string());
        if let Some(link) = links.get(&key) {
            match link.send(request) {
                Ok(()) => return answer,
                // The link ended: open another.
                Err(mpsc::error::SendError(r)) => request = r,
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(request);
        links.insert(key, tx);
        runtime.spawn(run_link(leader, addr.to_string(), topic.to_string(), rx));
        answer
    }
}

/// Frames in flight on one link, by stream id.
type InFlight = Arc<Mutex<HashMap<u16, oneshot::Sender<Result<(), ForwardError>>>>>;

/// Serves one link until it fails or every sender is gone.
async fn run_link(
    leader: u32,
    addr: String,
    topic: String,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    let fail = |reason: LinkError| ForwardError::Link {
        leader,
        addr: addr.clone(),
        reason,
    };
    let stream = match open(&addr, &topic).await {
        Ok(s) => s,
        Err(reason) => {
            // Fail this link's waiting frames; the next frame opens a new link.
            requests.close();
            while let Some(r) = requests.recv().await {
                let _ = r.reply.send(Err(fail(reason.clone())));
            }
            return;
        }
    };
    let (mut read, mut write) = stream.into_split();
    let in_flight: InFlight = Arc::default();
    let mut reader = {
        let in_flight = in_flight.clone();
        tokio::spawn(async move { read_answers(&mut read, &in_flight).await })
    };
    let mut next_sid: u16 = 1;
    let mut out = Vec::new();
    let why = loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(r) = request else { break LinkError::Stopped };
                let sid = next_sid;
                next_sid = next_sid.wrapping_add(1).max(1);
                out.clear();
                encode_frame(&mut out, OpCode::Produce, r.flags, sid, &r.body);
                in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(sid, r.reply);
                if let Err(e) = write.write_all(&out).await {
                    break LinkError::from(e);
                }
            }
            _ = &mut reader => break LinkError::Closed,
        }
    };
    reader.abort();
    requests.close();
    let pending: Vec<_> = in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .map(|(_, r)| r)
        .collect();
    for r in pending {
        let _ = r.send(Err(fail(why.clone())));
    }
    while let Ok(r) = requests.try_recv() {
        let _ = r.reply.send(Err(fail(why.clone())));
    }
}

/// Connects and sends STARTUP for `topic`, waiting for READY.
async fn open(addr: &str, topic: &str) -> Result<TcpStream, LinkError> {
    let mut stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let mut body = Vec::new();
    encode_startup(topic, &mut body);
    let mut out = Vec::new();
    encode_frame(&mut out, OpCode::Startup, 0, 0, &body);
    stream.write_all(&out).await?;
    let mut buf = Vec::new();
    let (op, body) = read_frame(&mut stream, &mut buf).await?;
    match op {
        OpCode::Ready => Ok(stream),
        OpCode::Error => Err(LinkError::StartupRefused(
            parse_error_body(&body).map_or_else(|e| e.to_string(), |(_, m)| m),
        )),
        other => Err(LinkError::Unexpected(other)),
    }
}

/// Reads answers and resolves the frames they answer, until the connection ends.
async fn read_answers(read: &mut tokio::net::tcp::OwnedReadHalf, in_flight: &InFlight) {
    let mut buf = Vec::new();
    loop {
        let Ok((header_sid, op, body)) = read_frame_sid(read, &mut buf).await else {
            return;
        };
        let reply = in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&header_sid);
        let Some(reply) = reply else { continue };
        let answer = match op {
            OpCode::ProduceResponse => Ok(()),
            OpCode::Error => Err(match parse_error_body(&body) {
                Ok((code, message)) => ForwardError::Refused { code, message },
                Err(e) => ForwardError::Refused {
                    code: 0,
                    message: e.to_string(),
                },
            }),
            other => Err(ForwardError::Refused {
                code: 0,
                message: format!("the leader answered PRODUCE with {other:?}"),
            }),
        };
        let _ = reply.send(answer);
    }
}

/// The largest answer frame read from a leader (answers are small; errors carry a message).
const MAX_ANSWER: u32 = 1 << 20;

async fn read_frame<R: AsyncReadExt + Unpin>(
    read: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(OpCode, Vec<u8>), LinkError> {
    read_frame_sid(read, buf)
        .await
        .map(|(_, op, body)| (op, body))
}

/// Reads the next whole frame into `buf` (keeping what follows it).
async fn read_frame_sid<R: AsyncReadExt + Unpin>(
    read: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(u16, OpCode, Vec<u8>), LinkError> {
    loop {
        let parsed = Frame::parse(buf, MAX_ANSWER)?;
        if let Some((frame, used)) = parsed {
            let op = OpCode::from_u8(frame.header.opcode)?;
            let answer = (frame.header.stream_id, op, frame.body.to_vec());
            buf.drain(..used);
            return Ok(answer);
        }
        let mut chunk = [0u8; 4096];
        let n = read.read(&mut chunk).await?;
        if n == 0 {
            return Err(LinkError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
