//! The bookkeeping of a chaos run: every message sent, under a unique id (producer, sequence)
//! carried in its body, with what the client was told about it (acknowledged, failed: "maybe",
//! never sent) and in which broker incarnation it was sent and answered, so the checker can
//! tell a duplicate or reordering caused by a client retry across a crash from a broker fault.

use std::sync::Mutex;

/// The producers of a run; the index is the producer field of every message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `shardlog-client` `Producer`, keyed messages (`key-0` .. `key-{KEYS-1}`).
    FramedKeyed,
    /// `shardlog-client` `Producer`, keyless messages.
    FramedKeyless,
    /// gRPC `Produce` calls with `partition-key` metadata, one key per call.
    GrpcKeyed,
    /// gRPC `Produce` calls without partition metadata (partition 0).
    GrpcUnkeyed,
}

pub const SOURCES: [Source; 4] = [
    Source::FramedKeyed,
    Source::FramedKeyless,
    Source::GrpcKeyed,
    Source::GrpcUnkeyed,
];

/// Keys of the keyed producers.
pub const KEYS: u8 = 8;
/// The key field of a keyless message.
pub const NO_KEY: u8 = u8::MAX;

impl Source {
    pub fn index(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Source::FramedKeyed => "framed-keyed",
            Source::FramedKeyless => "framed-keyless",
            Source::GrpcKeyed => "grpc-keyed",
            Source::GrpcUnkeyed => "grpc-unkeyed",
        }
    }

    /// Whether the client sends a message again after a lost answer (the framed producer
    /// does, at-least-once; the gRPC loop here never does).
    pub fn retries(self) -> bool {
        matches!(self, Source::FramedKeyed | Source::FramedKeyless)
    }

    /// Whether its messages of one key must keep their order in the partition.
    pub fn ordered(self) -> bool {
        !matches!(self, Source::FramedKeyless)
    }
}

/// One message's identity, as written in its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    pub producer: u8,
    pub seq: u64,
    pub key: u8,
}

impl MessageId {
    /// The body: `chaos {producer} {seq} {key} ` then `pad` filler bytes.
    pub fn body(&self, pad: usize) -> Vec<u8> {
        let mut b = format!("chaos {} {} {} ", self.producer, self.seq, self.key).into_bytes();
        b.resize(b.len() + pad, b'.');
        b
    }

    /// The id in a body written by [`MessageId::body`], or `None` for anything else.
    pub fn parse(body: &[u8]) -> Option<MessageId> {
        let text = std::str::from_utf8(body).ok()?;
        let mut fields = text.strip_prefix("chaos ")?.splitn(4, ' ');
        let producer = fields.next()?.parse().ok()?;
        let seq = fields.next()?.parse().ok()?;
        let key = fields.next()?.parse().ok()?;
        let rest = fields.next()?;
        rest.bytes()
            .all(|b| b == b'.')
            .then_some(MessageId { producer, seq, key })
    }

    /// The partition key this id was sent with, if any.
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        (self.key != NO_KEY).then(|| key_name(self.key).into_bytes())
    }
}

pub fn key_name(k: u8) -> String {
    format!("key-{k}")
}

/// What the client was told about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sent, no answer yet.
    InFlight,
    /// Acknowledged: must be present exactly once (apart from retries), and stay.
    Acked,
    /// Failed or lost in a crash: may be present, at most once unless retried.
    Maybe,
    /// Refused by the client before it was sent: must never appear.
    NotSent,
}

/// One message of the ledger.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: u8,
    pub state: State,
    /// The run's epoch when it was sent and when answered: even while the broker is up,
    /// odd from a kill until the restarted broker is ready.
    pub sent_epoch: u32,
    pub answered_epoch: u32,
    /// (partition, offset) where a read-back first found it; it must stay there.
    pub pinned: Option<(u32, i64)>,
}

impl Entry {
    /// Sent before a kill and answered after it, or sent while the broker was down: the
    /// client may have sent it again.
    pub fn spanned_crash(&self) -> bool {
        self.answered_epoch != self.sent_epoch
            || self.sent_epoch % 2 == 1
            || self.state == State::InFlight
    }
}

/// Every message of a run, per producer, indexed by sequence.
#[derive(Debug)]
pub struct Ledger {
    pub producers: Vec<Vec<Entry>>,
    /// Messages sent and not answered yet.
    pub outstanding: u64,
    /// Set while the run verifies: no new message may be issued.
    pub paused: bool,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger {
            producers: vec![Vec::new(); SOURCES.len()],
            outstanding: 0,
            paused: false,
        }
    }

    /// Ids for `n` new messages of `source` with `key`, or `None` while paused.
    pub fn issue(
        &mut self,
        source: Source,
        key: u8,
        n: usize,
        epoch: u32,
    ) -> Option<Vec<MessageId>> {
        if self.paused {
            return None;
        }
        let list = &mut self.producers[source.index() as usize];
        let first = list.len() as u64;
        list.extend((0..n).map(|_| Entry {
            key,
            state: State::InFlight,
            sent_epoch: epoch,
            answered_epoch: epoch,
            pinned: None,
        }));
        self.outstanding += n as u64;
        Some(
            (0..n as u64)
                .map(|i| MessageId {
                    producer: source.index(),
                    seq: first + i,
                    key,
                })
                .collect(),
        )
    }

    /// Records the answer for `id`: `Acked`, `Maybe` or `NotSent`.
    pub fn answer(&mut self, id: MessageId, state: State, epoch: u32) {
        if let Some(e) = self
            .producers
            .get_mut(id.producer as usize)
            .and_then(|l| l.get_mut(id.seq as usize))
        {
            if e.state == State::InFlight {
                self.outstanding = self.outstanding.saturating_sub(1);
            }
            e.state = state;
            e.answered_epoch = epoch;
        }
    }

    pub fn get(&self, id: MessageId) -> Option<&Entry> {
        self.producers
            .get(id.producer as usize)?
            .get(id.seq as usize)
    }

    pub fn count(&self, state: State) -> u64 {
        self.producers
            .iter()
            .flatten()
            .filter(|e| e.state == state)
            .count() as u64
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

/// The ledger shared by the load tasks and the checker.
pub type SharedLedger = std::sync::Arc<Mutex<Ledger>>;

pub fn lock(l: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_bodies_and_nothing_else_parses() {
        let id = MessageId {
            producer: 2,
            seq: 123_456,
            key: 7,
        };
        assert_eq!(MessageId::parse(&id.body(40)), Some(id));
        assert_eq!(MessageId::parse(&id.body(0)), Some(id));
        assert_eq!(MessageId::parse(b"chaos 1 2"), None);
        assert_eq!(MessageId::parse(b"chaos 1 2 3 xx"), None);
        assert_eq!(MessageId::parse(b"hello"), None);
    }

    #[test]
    fn issuing_stops_while_paused_and_answers_settle_the_outstanding_count() {
        let mut l = Ledger::new();
        let ids = l.issue(Source::GrpcKeyed, 3, 2, 0).unwrap();
        assert_eq!(l.outstanding, 2);
        l.answer(ids[0], State::Acked, 0);
        l.answer(ids[1], State::Maybe, 1);
        assert_eq!(l.outstanding, 0);
        assert!(!l.get(ids[0]).unwrap().spanned_crash());
        assert!(l.get(ids[1]).unwrap().spanned_crash());
        // Sent while the broker was down (odd epoch), answered once it was back.
        let down = l.issue(Source::FramedKeyed, 0, 1, 1).unwrap()[0];
        l.answer(down, State::Acked, 2);
        assert!(l.get(down).unwrap().spanned_crash());
        l.paused = true;
        assert!(l.issue(Source::GrpcKeyed, 3, 1, 1).is_none());
    }
}
