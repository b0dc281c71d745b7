//! The ledger of acknowledged frames, kept so a run can be read back and checked.
//!
//! Every acknowledged PRODUCE frame is recorded with its global frame index, its key, how many
//! messages it carried, which prebuilt messages those were, and when it was sent and
//! acknowledged. [`AckLedger`] groups the entries per key, in acknowledgement order.
//!
//! # How the read-back checks it
//!
//! Before producing, a fresh group registers on the topic with start policy `latest` (which
//! commits the end of every partition at once) and says GOODBYE; after producing it registers
//! again and polls until two polls in a row bring nothing, so only this run's records are read,
//! even from a topic used before. Poll items are decoded with `shardlog_wire::poll`, their
//! payloads decompressed, their records read with `shardlog_wire::record`.
//!
//! With `--verify` the workload tags each message with its global frame index and its index in
//! the frame: [`TAG_LEN`] lowercase hex characters written over the start of the message's first
//! random hex field ([`tag_position`]), so the payload's compressibility does not change (it
//! costs a copy per frame, only when verifying). The check ([`Checker`]) is:
//!
//! 1. **Nothing acknowledged is lost.** Every message of every frame in the ledger is read back
//!    exactly once, byte for byte equal to the regenerated payload (same seed, same pool index)
//!    apart from the tag.
//! 2. **Frames are atomic.** A frame's messages come back at consecutive offsets of one
//!    partition, in the order they were sent.
//! 3. **Per-key order.** For two frames A and B of the same key where A was acknowledged before
//!    B was sent (`A.acked <= B.sent`, on any connection), A's records come before B's.
//!    Frames of one key that were in flight at the same time may land in either order, so
//!    they are not compared. Keyless frames are only checked for 1 and 2.
//! 4. **No duplicates.** No tag is read twice. Frames answered with ERROR, or never answered,
//!    are reported if they appear (not a failure: an unanswered frame may have been written).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

mod read_back;

pub use read_back::ReadBack;

/// Key index of a keyless frame.
pub const KEYLESS: u32 = u32::MAX;

/// One acknowledged frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckEntry {
    /// Global frame index (0, 1, 2, ... across all connections).
    pub frame: u64,
    /// Index of the key (`key-{index}`), or [`KEYLESS`].
    pub key: u32,
    /// Messages in the frame.
    pub messages: u32,
    /// Index in the message pool of the frame's first message; message `i` of the frame is
    /// pool message `first_message + i` (cycling).
    pub first_message: u64,
    pub connection: u32,
    /// When it was sent (open loop: intended send time), since the run started.
    pub sent: Duration,
    /// When its PRODUCE_RESPONSE arrived, since the run started.
    pub acked: Duration,
}

/// Entries recorded by one connection, in the order its acknowledgements arrived.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    entries: Vec<AckEntry>,
}

impl Ledger {
    pub fn push(&mut self, entry: AckEntry) {
        self.entries.push(entry);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// All connections' ledgers, per key in acknowledgement order.
#[derive(Debug, Default, Clone)]
pub struct AckLedger {
    per_key: BTreeMap<u32, Vec<AckEntry>>,
}

impl AckLedger {
    /// Merges per-connection ledgers.
    pub fn merge(ledgers: impl IntoIterator<Item = Ledger>) -> AckLedger {
        let mut per_key: BTreeMap<u32, Vec<AckEntry>> = BTreeMap::new();
        for l in ledgers {
            for e in l.entries {
                per_key.entry(e.key).or_default().push(e);
            }
        }
        for entries in per_key.values_mut() {
            // Stable: equal times keep each connection's arrival order.
            entries.sort_by_key(|e| (e.acked, e.frame));
        }
        AckLedger { per_key }
    }

    /// The keys that have acknowledged frames ([`KEYLESS`] for keyless ones).
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.per_key.keys().copied()
    }

    /// A key's acknowledged frames, in acknowledgement order.
    pub fn entries(&self, key: u32) -> &[AckEntry] {
        self.per_key.get(&key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A key's acknowledged frame indexes, in acknowledgement order.
    pub fn frames(&self, key: u32) -> Vec<u64> {
        self.entries(key).iter().map(|e| e.frame).collect()
    }

    pub fn total_frames(&self) -> usize {
        self.per_key.values().map(Vec::len).sum()
    }

    pub fn total_messages(&self) -> u64 {
        self.per_key
            .values()
            .flatten()
            .map(|e| e.messages as u64)
            .sum()
    }

    /// Pairs `(a, b)` of one key's frames whose order the log must keep: `a` was acknowledged
    /// before `b` was sent. (Check 3 above; quadratic in the worst case, fine for test runs.)
    pub fn must_precede(&self, key: u32) -> Vec<(u64, u64)> {
        let entries = self.entries(key);
        let mut pairs = Vec::new();
        for a in entries {
            for b in entries {
                if a.acked <= b.sent {
                    pairs.push((a.frame, b.frame));
                }
            }
        }
        pairs
    }
}

/// Length of a message tag: 12 hex digits of frame index, 4 of index in the frame.
pub const TAG_LEN: usize = 16;

/// Where the tag goes in `message`: the start of the first random hex field's value
/// (`event_id`, `trace_id` or `digest`, whichever comes first), else the start of the message.
/// `None` when the message is shorter than a tag.
pub fn tag_position(message: &[u8]) -> Option<usize> {
    if message.len() < TAG_LEN {
        return None;
    }
    let mut best: Option<usize> = None;
    for marker in [
        &b"\"event_id\":\""[..],
        &b"\"trace_id\":\""[..],
        &b"\"digest\":\""[..],
    ] {
        if let Some(at) = message.windows(marker.len()).position(|w| w == marker) {
            let pos = at + marker.len();
            if pos + TAG_LEN <= message.len() && best.is_none_or(|b| pos < b) {
                best = Some(pos);
            }
        }
    }
    Some(best.unwrap_or(0))
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes the tag of message `index` of frame `frame` into the first [`TAG_LEN`] bytes of `dst`.
pub fn write_tag(dst: &mut [u8], frame: u64, index: u16) {
    let v = ((frame & 0xFFFF_FFFF_FFFF) << 16) | index as u64;
    for (i, b) in dst[..TAG_LEN].iter_mut().enumerate() {
        *b = HEX_DIGITS[((v >> (4 * (TAG_LEN - 1 - i))) & 0xF) as usize];
    }
}

/// Reads a tag back: `(frame, index)`, or `None` if the bytes are not [`TAG_LEN`] hex digits.
pub fn read_tag(src: &[u8]) -> Option<(u64, u16)> {
    let src = src.get(..TAG_LEN)?;
    let mut v = 0u64;
    for &b in src {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some((v >> 16, v as u16))
}

/// What the read-back found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyResult {
    /// Acknowledged messages read back exactly as sent.
    pub verified: u64,
    /// Acknowledged messages not read back.
    pub missing: u64,
    /// Extra copies of messages (acknowledged or not) read back more than once.
    pub duplicates: u64,
    /// Acknowledged frames whose messages are not consecutive and in order in one partition,
    /// plus frames that come before a frame of the same key acknowledged before they were sent.
    pub out_of_order: u64,
    /// Records that carry no valid tag or differ from the message sent with that tag.
    pub corrupt: u64,
    /// Messages of frames never acknowledged (answered ERROR or unanswered) that were read
    /// back: not a failure (an unanswered frame may have been written).
    pub unacked_seen: u64,
    /// Records read back in all.
    pub records_read: u64,
}

impl VerifyResult {
    /// True when nothing acknowledged is missing, duplicated, reordered or corrupt.
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.duplicates == 0 && self.out_of_order == 0 && self.corrupt == 0
    }
}

/// Where a message was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    /// Partition number, in order of appearance.
    partition: u32,
    offset: i64,
}

/// A complete, well-formed frame of a key: when it was sent and acknowledged, and where its
/// first message landed.
#[derive(Debug, Clone, Copy)]
struct Placed {
    sent: Duration,
    acked: Duration,
    at: Found,
}

/// Checks read-back records against the ledger. Feed it every record ([`Checker::record`]),
/// then call [`Checker::finish`].
pub struct Checker<'a> {
    ledger: &'a AckLedger,
    /// The message sent as message `i` of frame `f`, tag excluded (`expected(f, i)`).
    expected: &'a dyn Fn(u64, u16) -> Option<&'a [u8]>,
    /// Distinct tag positions among the messages sent.
    positions: Vec<usize>,
    /// Frame index → (key, position in that key's ledger entries).
    acked: HashMap<u64, (u32, usize)>,
    found: HashMap<u64, Vec<Option<Found>>>,
    unacked: HashMap<(u64, u16), u32>,
    partitions: HashMap<(i64, u8, String), u32>,
    result: VerifyResult,
}

impl<'a> Checker<'a> {
    /// `expected(frame, i)` is the message sent as message `i` of `frame` (with whatever bytes
    /// at its tag position), `None` for a frame that was never sent; `positions` holds every tag
    /// position in use.
    pub fn new(
        ledger: &'a AckLedger,
        expected: &'a dyn Fn(u64, u16) -> Option<&'a [u8]>,
        mut positions: Vec<usize>,
    ) -> Checker<'a> {
        positions.sort_unstable();
        positions.dedup();
        let mut acked = HashMap::new();
        for key in ledger.keys() {
            for (i, e) in ledger.entries(key).iter().enumerate() {
                acked.insert(e.frame, (key, i));
            }
        }
        Checker {
            ledger,
            expected,
            positions,
            acked,
            found: HashMap::new(),
            unacked: HashMap::new(),
            partitions: HashMap::new(),
            result: VerifyResult::default(),
        }
    }

    /// One record read back from a partition at an offset.
    pub fn record(&mut self, partition: (i64, u8, &str), offset: i64, body: &[u8]) {
        self.result.records_read += 1;
        let n = self.partitions.len() as u32;
        let part = *self
            .partitions
            .entry((partition.0, partition.1, partition.2.to_string()))
            .or_insert(n);
        let Some((frame, index)) = self.identify(body) else {
            self.result.corrupt += 1;
            return;
        };
        match self.acked.get(&frame) {
            Some(&(key, i)) => {
                let messages = self.ledger.entries(key)[i].messages as usize;
                let slots = self
                    .found
                    .entry(frame)
                    .or_insert_with(|| vec![None; messages]);
                match &mut slots[index as usize] {
                    Some(_) => self.result.duplicates += 1,
                    slot => {
                        *slot = Some(Found {
                            partition: part,
                            offset,
                        })
                    }
                }
            }
            None => {
                let seen = self.unacked.entry((frame, index)).or_default();
                *seen += 1;
                if *seen > 1 {
                    self.result.duplicates += 1;
                } else {
                    self.result.unacked_seen += 1;
                }
            }
        }
    }

    /// The (frame, index) of a body whose tag is valid and whose other bytes are the message
    /// sent with it.
    fn identify(&self, body: &[u8]) -> Option<(u64, u16)> {
        for &pos in &self.positions {
            let Some((frame, index)) = body.get(pos..).and_then(read_tag) else {
                continue;
            };
            if let Some(&(key, i)) = self.acked.get(&frame) {
                if index as u32 >= self.ledger.entries(key)[i].messages {
                    continue;
                }
            }
            let Some(sent) = (self.expected)(frame, index) else {
                continue;
            };
            if sent.len() == body.len()
                && tag_position(sent) == Some(pos)
                && sent[..pos] == body[..pos]
                && sent[pos + TAG_LEN..] == body[pos + TAG_LEN..]
            {
                return Some((frame, index));
            }
        }
        None
    }

    /// Counts what is missing and out of order.
    pub fn finish(mut self) -> VerifyResult {
        for key in self.ledger.keys().collect::<Vec<_>>() {
            // (sent, acked, partition, first offset) of the key's complete, well-formed frames.
            let mut placed = Vec::new();
            for e in self.ledger.entries(key) {
                let slots = self.found.get(&e.frame);
                let got: Vec<Option<Found>> = match slots {
                    Some(s) => s.clone(),
                    None => vec![None; e.messages as usize],
                };
                let present = got.iter().filter(|s| s.is_some()).count() as u64;
                self.result.verified += present;
                self.result.missing += e.messages as u64 - present;
                if present != e.messages as u64 {
                    continue;
                }
                let first = got[0].expect("present");
                let atomic = got.iter().enumerate().all(|(i, s)| {
                    *s == Some(Found {
                        partition: first.partition,
                        offset: first.offset + i as i64,
                    })
                });
                if !atomic {
                    self.result.out_of_order += 1;
                    continue;
                }
                placed.push(Placed {
                    sent: e.sent,
                    acked: e.acked,
                    at: first,
                });
            }
            if key == KEYLESS || placed.is_empty() {
                continue;
            }
            // Every frame B must come after every frame A of its key acknowledged before B was
            // sent: sweep B in send order, with the highest position among those A.
            let mut by_acked = placed.clone();
            by_acked.sort_by_key(|p| p.acked);
            let mut by_sent = placed;
            by_sent.sort_by_key(|p| p.sent);
            let mut j = 0;
            let mut latest: Option<(u32, i64)> = None;
            for b in &by_sent {
                while j < by_acked.len() && by_acked[j].acked <= b.sent {
                    let a = by_acked[j];
                    latest = Some(match latest {
                        Some((p, o)) if p != a.at.partition => (u32::MAX, o.max(a.at.offset)),
                        Some((p, o)) => (p, o.max(a.at.offset)),
                        None => (a.at.partition, a.at.offset),
                    });
                    j += 1;
                }
                if let Some((p, o)) = latest {
                    if p != b.at.partition || o > b.at.offset {
                        self.result.out_of_order += 1;
                    }
                }
            }
        }
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(frame: u64, key: u32, connection: u32, sent_ms: u64, acked_ms: u64) -> AckEntry {
        AckEntry {
            frame,
            key,
            messages: 2,
            first_message: frame * 2,
            connection,
            sent: Duration::from_millis(sent_ms),
            acked: Duration::from_millis(acked_ms),
        }
    }

    #[test]
    fn merges_per_key_in_ack_order() {
        let mut a = Ledger::default();
        a.push(entry(0, 0, 0, 0, 5));
        a.push(entry(2, 0, 0, 1, 9));
        let mut b = Ledger::default();
        b.push(entry(1, 1, 1, 0, 3));
        b.push(entry(3, 0, 1, 2, 7));
        b.push(entry(4, KEYLESS, 1, 2, 8));
        let l = AckLedger::merge([a, b]);
        assert_eq!(l.frames(0), vec![0, 3, 2]);
        assert_eq!(l.frames(1), vec![1]);
        assert_eq!(l.frames(KEYLESS), vec![4]);
        assert_eq!(l.keys().collect::<Vec<_>>(), vec![0, 1, KEYLESS]);
        assert_eq!(l.total_frames(), 5);
        assert_eq!(l.total_messages(), 10);
    }

    #[test]
    fn only_non_overlapping_frames_are_ordered() {
        let mut a = Ledger::default();
        a.push(entry(0, 0, 0, 0, 5)); // in flight 0..5
        a.push(entry(1, 0, 0, 1, 6)); // overlaps 0
        a.push(entry(2, 0, 0, 6, 8)); // sent after both were acknowledged
        let l = AckLedger::merge([a]);
        assert_eq!(l.must_precede(0), vec![(0, 2), (1, 2)]);
    }

    #[test]
    fn tags_round_trip_and_sit_on_random_hex() {
        let mut b = [b'x'; TAG_LEN];
        write_tag(&mut b, 0x1234_5678_9abc, 0xfedc);
        assert_eq!(&b, b"123456789abcfedc");
        assert_eq!(read_tag(&b), Some((0x1234_5678_9abc, 0xfedc)));
        assert_eq!(read_tag(b"123456789abcfedZ"), None);
        let pool = crate::payload::MessagePool::generate(Default::default(), 64);
        for i in 0..64 {
            let m = pool.get(i);
            let at = tag_position(m).unwrap();
            assert!(at > 0, "message {i} has a hex field");
            assert!(m[at..at + TAG_LEN].iter().all(u8::is_ascii_hexdigit));
        }
        assert_eq!(tag_position(b"short"), None);
    }

    #[test]
    fn checker_counts_missing_duplicates_and_order() {
        let msgs: Vec<Vec<u8>> = (0..4)
            .map(|i| format!("{{\"event_id\":\"{}\"}}", "0".repeat(20 + i)).into_bytes())
            .collect();
        let tagged = |frame: u64, i: u16| {
            let mut m = msgs[(frame as usize * 2 + i as usize) % 4].clone();
            let at = tag_position(&m).unwrap();
            write_tag(&mut m[at..], frame, i);
            m
        };
        // Frames 0, 1, 2 of key 0, each acknowledged before the next was sent; 2 messages each.
        let mut l = Ledger::default();
        for f in 0..3 {
            l.push(entry(f, 0, 0, 10 * f, 10 * f + 5));
        }
        let ledger = AckLedger::merge([l]);
        let positions: Vec<usize> = msgs.iter().map(|m| tag_position(m).unwrap()).collect();
        let expected =
            |f: u64, i: u16| (f < 4 && i < 2).then(|| &msgs[(f as usize * 2 + i as usize) % 4][..]);
        let check = |records: &[(i64, Vec<u8>)]| {
            let mut c = Checker::new(&ledger, &expected, positions.clone());
            for (o, b) in records {
                c.record((0, 0, "t"), *o, b);
            }
            c.finish()
        };
        let good: Vec<(i64, Vec<u8>)> = (0..3u64)
            .flat_map(|f| (0..2u16).map(move |i| (f, i)))
            .enumerate()
            .map(|(o, (f, i))| (o as i64, tagged(f, i)))
            .collect();
        let r = check(&good);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.verified, 6);

        let mut missing = good.clone();
        missing.remove(3);
        let r = check(&missing);
        assert_eq!((r.missing, r.verified), (1, 5));

        let mut dup = good.clone();
        dup.push((6, tagged(1, 0)));
        assert_eq!(check(&dup).duplicates, 1);

        // Frame 2 (sent after frame 0 was acknowledged) stored before frame 0.
        let mut swapped: Vec<(i64, Vec<u8>)> = Vec::new();
        for (o, (f, i)) in [(2, 0), (2, 1), (1, 0), (1, 1), (0, 0), (0, 1)]
            .iter()
            .enumerate()
        {
            swapped.push((o as i64, tagged(*f, *i)));
        }
        assert!(check(&swapped).out_of_order >= 1);

        let mut corrupt = good.clone();
        corrupt[0].1[0] = b'[';
        let r = check(&corrupt);
        assert_eq!((r.corrupt, r.missing), (1, 1));

        let mut unacked = good;
        unacked.push((6, tagged(3, 0)));
        let r = check(&unacked);
        assert!(r.ok());
        assert_eq!(r.unacked_seen, 1);
    }
}
