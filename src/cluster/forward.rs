//! Forwarding a PRODUCE to the broker that leads its partition: one framed connection per
//! (leader, topic) from this broker, opened on first use on the cluster thread, and answered
//! when the leader answers. The connection is the client crate's [`Mux`]: STARTUP names the
//! topic and marks the connection as a forwarding broker's (`wire::forward`), then PRODUCE
//! frames are pipelined, each body the head `partition u32 | leader epoch u64` and the client's
//! body exactly as received. The leader stores a frame only if it leads that partition at that
//! epoch, and never forwards it again. Frames handed over in order go out in order on that one
//! connection, so a key stays in order. A connection that fails fails what it had in flight
//! (retryably: the client resends) and is opened again for the next frame.
//!
//! Bounds: each link has at most [`MAX_IN_FLIGHT`] frames sent and not yet answered, and the
//! frames' bytes stay counted in the forwarding shard's `--shard-buffer` until answered. A
//! broker keeps at most `--max-forward-links` links to one leader: a link for another topic
//! closes the least recently used link with nothing in flight, and is refused when every
//! link is busy ([`ForwardError::TooManyLinks`]), so a client naming topics without end
//! costs each leader a bounded number of connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    #[error(
        "this broker already forwards to broker {leader} for {max} other topics, each with \
         frames in flight (--max-forward-links); nothing was stored, retry"
    )]
    TooManyLinks { leader: u32, max: usize },
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
            ForwardError::TooManyLinks { .. } => ErrorClass::LimitReached,
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
    /// Counts the frame in its link's in-flight count until it is answered (dropped).
    _counted: Counted,
}

/// One frame counted in a link's in-flight count while it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: &Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::AcqRel);
        Counted(count.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A link as the forwarder holds it: where its frames go, how many are not answered yet,
/// and when it was last used (for closing the least recently used idle one).
struct LinkEntry {
    tx: mpsc::UnboundedSender<Request>,
    in_flight: Arc<AtomicUsize>,
    used: u64,
}

/// A link's key: (leader, its address, topic).
type LinkKey = (u32, String, String);

/// The open links, by (leader, its address, topic).
pub struct Forwarder {
    /// This broker's id, which its links' STARTUP carries.
    me: u32,
    /// Links to one leader at most (`--max-forward-links`).
    max_links: usize,
    links: Mutex<Links>,
}

#[derive(Default)]
struct Links {
    map: HashMap<LinkKey, LinkEntry>,
    /// Increases with every frame handed over: the links' use order.
    clock: u64,
}

impl Links {
    /// Makes room for one more link to `leader`: drops ended links, then, at the bound, the
    /// least recently used one with nothing in flight. False if every link is busy.
    fn make_room(&mut self, leader: u32, max: usize) -> bool {
        self.map.retain(|_, l| !l.tx.is_closed());
        let to_leader = || self.map.iter().filter(|((l, _, _), _)| *l == leader);
        if to_leader().count() < max {
            return true;
        }
        let idle = to_leader()
            .filter(|(_, l)| l.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, l)| l.used)
            .map(|(k, _)| k.clone());
        match idle {
            // Dropping its sender ends the link once its queue (empty) is drained.
            Some(k) => self.map.remove(&k).is_some(),
            None => false,
        }
    }
}

impl Forwarder {
    pub fn new(me: u32, max_links: usize) -> Forwarder {
        Forwarder {
            me,
            max_links: max_links.max(1),
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
        let (mut reply, answer) = oneshot::channel();
        let mut body = body;
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.clock += 1;
        let clock = links.clock;
        let key = (leader, addr.to_string(), topic.to_string());
        if let Some(link) = links.map.get_mut(&key) {
            link.used = clock;
            let request = Request {
                flags,
                head,
                body,
                reply,
                _counted: Counted::new(&link.in_flight),
            };
            match link.tx.send(request) {
                Ok(()) => return answer,
                // The link ended: open another.
                Err(mpsc::error::SendError(r)) => (reply, body) = (r.reply, r.body),
            }
        }
        if !links.make_room(leader, self.max_links) {
            let _ = reply.send(Err(ForwardError::TooManyLinks {
                leader,
                max: self.max_links,
            }));
            return answer;
        }
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Request {
            flags,
            head,
            body,
            reply,
            _counted: Counted::new(&in_flight),
        });
        links.map.insert(
            key,
            LinkEntry {
                tx,
                in_flight,
                used: clock,
            },
        );
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
            let Request {
                flags,
                head,
                body,
                reply,
                _counted: counted,
            } = r;
            let head = head.encode();
            let sent = mux
                .send_owned(OpCode::Produce, flags, &[&head[..], &body[..]])
                .await;
            match sent {
                Ok(pending) => {
                    let (leader, addr) = (self.leader, self.addr.clone());
                    tokio::spawn(async move {
                        // The frame counts as in flight until its answer is passed on.
                        let _counted = counted;
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
                        let _ = reply.send(answer);
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(self.fail(e.clone().into())));
                    return e.into();
                }
            }
        }
        LinkError::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link to `leader` for `topic`, used at `used`, with `in_flight` frames; its receiver.
    fn add(
        links: &mut Links,
        leader: u32,
        topic: &str,
        used: u64,
        in_flight: usize,
    ) -> mpsc::UnboundedReceiver<Request> {
        let (tx, rx) = mpsc::unbounded_channel();
        let entry = LinkEntry {
            tx,
            in_flight: Arc::new(AtomicUsize::new(in_flight)),
            used,
        };
        links
            .map
            .insert((leader, "a:1".into(), topic.into()), entry);
        rx
    }

    #[test]
    fn links_to_a_leader_are_bounded_and_only_idle_ones_close() {
        let mut links = Links::default();
        let _a = add(&mut links, 1, "a", 1, 0);
        let _b = add(&mut links, 1, "b", 2, 3);
        let _c = add(&mut links, 2, "c", 0, 0);
        // Under the bound: nothing closes.
        assert!(links.make_room(1, 3));
        assert_eq!(links.map.len(), 3);
        // At the bound: the least recently used idle link to that leader closes ("a"; "c"
        // leads elsewhere).
        assert!(links.make_room(1, 2));
        let topics: Vec<&str> = links.map.keys().map(|k| k.2.as_str()).collect();
        assert!(!topics.contains(&"a") && topics.len() == 2, "{topics:?}");
        // Every link busy: no room.
        assert!(!links.make_room(1, 1));
        // A link whose task ended makes room by itself.
        drop(_b);
        assert!(links.make_room(1, 1));
    }
}
