//! The ledger of acknowledged frames, kept so a run can be read back and checked.
//!
//! Every acknowledged PRODUCE frame is recorded with its global frame index, its key, how many
//! messages it carried, which prebuilt messages those were, and when it was sent and
//! acknowledged. [`AckLedger`] groups the entries per key, in acknowledgement order.
//!
//! # How the read-back will check it
//!
//! The read-back needs the broker's consumer API (register a consumer with start policy
//! `earliest` on the run's topic, poll until every partition is drained, decode the poll items
//! with `shardlog::wire::poll` and their records with `shardlog::wire::record`). That API is not
//! served yet, so `--verify` refuses to run rather than pretend; the ledger is kept and tested
//! now so the check only needs the reading side. With `--verify`, the workload will tag each
//! message with its frame index and position in the frame (overwriting the `seq` digits of the
//! JSON payload, which costs a copy per frame and is only done when verifying), and the check is:
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

use std::collections::BTreeMap;
use std::time::Duration;

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
}
