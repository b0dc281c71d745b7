//! Forwarding a PRODUCE to the broker that leads its partition: one framed connection per
//! (leader, topic) from this broker, opened on first use on the cluster thread, and answered
//! when the leader answers. The connection is the client crate's [`Mux`]: STARTUP names the
//! topic and marks the connection as a forwarding broker's (`wire::forward`), then PRODUCE
//! frames are pipelined, each body the head `partition u32 | leader epoch u64` and the client's
//! body exactly as received. The leader stores a frame only if it leads that partition at that
//! epoch, and never forwards it again. Frames handed over in order go out in order on that one
//! connection, so a key stays in order. A connection that fails fails what it had in flight
//! (retryably: the client resends) and is opened again for the next frame.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use shardlog_client::mux::Mux;
use shardlog_client::ClientError;
use tokio::sync::mpsc;

use crate::error::{Classify, ErrorClass};
use crate::wire::forward::{ForwardedHead, Startup};
use crate::wire::{ErrorCode, OpCode};

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
    /// Connecting, a lost connection, no answer in time, bytes that are not the protocol.
    #[error(transparent)]
    Client(ClientError),
    #[error("the leader refused STARTUP: {0}")]
    StartupRefused(String),
    #[error("the leader answered {0:?} where it should not")]
    Unexpected(OpCode),
    #[error("the broker stopped forwarding")]
    Stopped,
}

impl From<ClientError> for LinkError {
    fn from(e: ClientError) -> LinkError {
        LinkError::Client(e)
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

/// Frames one link may have sent and not yet seen answered; past it, the link waits.
const MAX_IN_FLIGHT: usize = 4096;
/// How long a forwarded frame waits for the leader's answer (its write and fdatasync).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer frame read from a leader (answers are small; errors carry a message).
const MAX_ANSWER: u32 = 1 << 20;

/// One frame to forward, and where its answer goes.
struct Request {
    flags: u8,
    head: ForwardedHead,
    body: Bytes,
    reply: oneshot::Sender<Result<(), ForwardError>>,
}

/// The open links, by (leader, its address, topic).
pub struct Forwarder {
    /// This broker's id, which its links' STARTUP carries.
    me: u32,
    links: Mutex<HashMap<(u32, String, String), mpsc::UnboundedSender<Request>>>,
}

impl Forwarder {
    pub fn new(me: u32) -> Forwarder {
        Forwarder {
            me,
            links: Mutex::default(),
        }
    }

    /// Hands a PRODUCE body, routed to `head`'s partition and epoch, to the link to `leader`
    /// (at framed `addr`) for `topic`; the returned receiver gets the leader's answer. Hand
    /// frames over in the order they must be written.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        runtime: &tokio::runtime::Handle,
        leader: u32,
        addr: &str,
        topic: &str,
        flags: u8,
        head: ForwardedHead,
        body: Bytes,
    ) -> oneshot::Receiver<Result<(), ForwardError>> {
        let (reply, answer) = oneshot::channel();
        let mut request = Request {
            flags,
            head,
            body,
            reply,
        };
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let key = (leader, addr.to_string(), topic.to_string());
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
        let link = Link {
            me: self.me,
            leader,
            addr: addr.to_string(),
        };
        runtime.spawn(link.run(topic.to_string(), rx));
        answer
    }
}

/// One connection to a leader.
struct Link {
    me: u32,
    leader: u32,
    addr: String,
}

impl Link {
    fn fail(&self, reason: LinkError) -> ForwardError {
        ForwardError::Link {
            leader: self.leader,
            addr: self.addr.clone(),
            reason,
        }
    }

    /// Serves the link until it fails or every sender is gone; then fails what is left.
    async fn run(self, topic: String, mut requests: mpsc::UnboundedReceiver<Request>) {
        let why = match self.open(&topic).await {
            Ok(mux) => self.pump(&mux, &mut requests).await,
            Err(why) => why,
        };
        requests.close();
        while let Some(r) = requests.recv().await {
            let _ = r.reply.send(Err(self.fail(why.clone())));
        }
    }

    /// Connects and sends STARTUP for `topic` as a forwarding broker, waiting for READY.
    async fn open(&self, topic: &str) -> Result<Mux, LinkError> {
        let mux = Mux::connect(&self.addr, MAX_ANSWER, MAX_IN_FLIGHT, ANSWER_TIMEOUT).await?;
        let mut body = Vec::new();
        Startup {
            topic,
            forwarded_by: Some(self.me),
        }
        .encode(&mut body);
        match mux.call(OpCode::Startup, 0, &body).await {
            Ok(answer) => match answer.opcode()? {
                OpCode::Ready => Ok(mux),
                other => Err(LinkError::Unexpected(other)),
            },
            Err(ClientError::Broker { message, .. }) => Err(LinkError::StartupRefused(message)),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends frames in the order they come; each answer is awaited on a task of its own.
    async fn pump(&self, mux: &Mux, requests: &mut mpsc::UnboundedReceiver<Request>) -> LinkError {
        while let Some(r) = requests.recv().await {
            let head = r.head.encode();
            let sent = mux
                .send_owned(OpCode::Produce, r.flags, &[&head[..], &r.body[..]])
                .await;
            match sent {
                Ok(pending) => {
                    let (leader, addr) = (self.leader, self.addr.clone());
                    tokio::spawn(async move {
                        let answer = match pending.answer().await {
                            Ok(frame) => match frame.opcode() {
                                Ok(OpCode::ProduceResponse) => Ok(()),
                                Ok(other) => Err(LinkError::Unexpected(other)),
                                Err(e) => Err(e.into()),
                            }
                            .map_err(|reason| ForwardError::Link {
                                leader,
                                addr,
                                reason,
                            }),
                            Err(ClientError::Broker { code, message }) => {
                                Err(ForwardError::Refused { code, message })
                            }
                            Err(e) => Err(ForwardError::Link {
                                leader,
                                addr,
                                reason: e.into(),
                            }),
                        };
                        let _ = r.reply.send(answer);
                    });
                }
                Err(e) => {
                    let _ = r.reply.send(Err(self.fail(e.clone().into())));
                    return e.into();
                }
            }
        }
        LinkError::Stopped
    }
}
