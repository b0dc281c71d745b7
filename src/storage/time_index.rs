//! The per-segment time index: fixed 16-byte entries `max timestamp μs i64 | offset i64`
//! (big-endian), the time-side twin of the offset index ([`super::index`]).
//!
//! An entry `(t, o)` says: the records of this segment before offset `o` have timestamps of at
//! most `t`, and `t` is the largest among them (the segment's *running maximum* up to `o`). An
//! entry is added after each chunk that raises the running maximum, with `o` the chunk's end
//! offset; sealing or closing the segment adds a closing entry `(maximum, end offset)` when the
//! last chunk did not raise it, so a complete file always ends at the segment's end. Timestamps
//! never decrease along the file and offsets strictly increase.
//!
//! The first offset whose record timestamp is ≥ T is then found by a binary search for the
//! first entry with `t ≥ T`: the record is in the stretch of chunks between the previous entry's
//! offset and that entry's (normally a single chunk, the one that raised the maximum past T).
//! Timestamps going backwards (a clock step, producer-given times) need nothing special: the
//! running maximum still says exactly where the first record at or after T can be, and records
//! after it may be older than T (as in Kafka's time index).
//!
//! Like the offset index, the file is a cache: written with buffered writes together with the
//! offset index's, never fsynced, checked and rebuilt by recovery.

use super::index::{FileEntry, ENTRY_LEN};

/// The segment's running maximum timestamp up to (not including) `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub max_timestamp_us: i64,
    pub offset: i64,
}

impl FileEntry for TimeEntry {
    fn encode(&self, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&self.max_timestamp_us.to_be_bytes());
        dst.extend_from_slice(&self.offset.to_be_bytes());
    }
}

/// `00000000000000000042.timeindex` for base offset 42.
pub fn time_index_file_name(base: i64) -> String {
    format!("{base:020}.timeindex")
}

/// Parses the longest prefix of plausible entries of the segment whose first offset is `base`
/// and whose chunks end at the offsets accepted by `is_chunk_end`: offsets strictly increasing
/// (after `base`), each a chunk end, timestamps never decreasing. Anything after the first
/// implausible entry (or a trailing partial entry) is ignored.
pub fn parse_valid_prefix(
    bytes: &[u8],
    base: i64,
    is_chunk_end: &dyn Fn(i64) -> bool,
) -> Vec<TimeEntry> {
    let mut out: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for e in bytes.chunks_exact(ENTRY_LEN) {
        let mut t = [0u8; 8];
        let mut o = [0u8; 8];
        t.copy_from_slice(&e[..8]);
        o.copy_from_slice(&e[8..]);
        let entry = TimeEntry {
            max_timestamp_us: i64::from_be_bytes(t),
            offset: i64::from_be_bytes(o),
        };
        let ok = match out.last() {
            None => entry.offset > base,
            Some(prev) => {
                entry.offset > prev.offset && entry.max_timestamp_us >= prev.max_timestamp_us
            }
        };
        if !ok || !is_chunk_end(entry.offset) {
            break;
        }
        out.push(entry);
    }
    out
}

/// A segment's time index in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    pub entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// The largest timestamp in the segment (`None` while it has no record).
    pub fn max_timestamp_us(&self) -> Option<i64> {
        self.entries.last().map(|e| e.max_timestamp_us)
    }

    /// The offset the entries reach: everything before it is covered.
    pub fn covered_to(&self) -> Option<i64> {
        self.entries.last().map(|e| e.offset)
    }

    /// Notes a chunk ending at `end_offset` whose newest record has timestamp `max_us`: an
    /// entry when it raises the running maximum. Returns whether it added one.
    pub fn note_chunk(&mut self, max_us: i64, end_offset: i64) -> bool {
        if self.max_timestamp_us().is_some_and(|m| m >= max_us) {
            return false;
        }
        self.entries.push(TimeEntry {
            max_timestamp_us: max_us,
            offset: end_offset,
        });
        true
    }

    /// Adds the closing entry `(maximum, end_offset)` when the entries stop short of
    /// `end_offset`, so the file says it covers the whole segment (see the module doc).
    pub fn close_at(&mut self, end_offset: i64) {
        if let Some(last) = self.entries.last().copied() {
            if last.offset < end_offset {
                self.entries.push(TimeEntry {
                    max_timestamp_us: last.max_timestamp_us,
                    offset: end_offset,
                });
            }
        }
    }

    /// The stretch `[from, to)` of offsets holding the first record with timestamp ≥ `t_us`,
    /// where `first` is the segment's first stored offset; `None` when every record of the
    /// segment is older than `t_us`. Every record before `from` is older than `t_us`.
    pub fn stretch_for(&self, t_us: i64, first: i64) -> Option<(i64, i64)> {
        let j = self.entries.partition_point(|e| e.max_timestamp_us < t_us);
        let to = self.entries.get(j)?.offset;
        let from = j.checked_sub(1).map_or(first, |i| self.entries[i].offset);
        Some((from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(entries: &[(i64, i64)]) -> Vec<u8> {
        let mut v = Vec::new();
        for &(t, o) in entries {
            TimeEntry {
                max_timestamp_us: t,
                offset: o,
            }
            .encode(&mut v);
        }
        v
    }

    fn index(entries: &[(i64, i64)]) -> TimeIndex {
        let b = bytes(entries);
        TimeIndex {
            entries: parse_valid_prefix(&b, 0, &|_| true),
        }
    }

    #[test]
    fn entries_round_trip_and_the_valid_prefix_stops_at_the_first_implausible_one() {
        let good = bytes(&[(100, 5), (100, 9), (250, 12)]);
        let all = |_: i64| true;
        let parsed = parse_valid_prefix(&good, 0, &all);
        assert_eq!(
            parsed,
            vec![
                TimeEntry {
                    max_timestamp_us: 100,
                    offset: 5
                },
                TimeEntry {
                    max_timestamp_us: 100,
                    offset: 9
                },
                TimeEntry {
                    max_timestamp_us: 250,
                    offset: 12
                },
            ]
        );
        // A trailing partial entry, a first offset not after the base, going back in time or
        // in offsets, an offset that is no chunk end: the prefix stops there.
        assert_eq!(parse_valid_prefix(&good[..40], 0, &all).len(), 2);
        assert_eq!(parse_valid_prefix(&good, 5, &all).len(), 0);
        let back = bytes(&[(100, 5), (90, 9), (250, 12)]);
        assert_eq!(parse_valid_prefix(&back, 0, &all).len(), 1);
        let repeat = bytes(&[(100, 5), (200, 5)]);
        assert_eq!(parse_valid_prefix(&repeat, 0, &all).len(), 1);
        assert_eq!(parse_valid_prefix(&good, 0, &|o| o != 9).len(), 1);
        assert!(parse_valid_prefix(&[0xff; 7], 0, &all).is_empty());
    }

    #[test]
    fn entries_follow_the_running_maximum() {
        let mut ix = TimeIndex::default();
        assert!(ix.note_chunk(100, 3));
        assert!(!ix.note_chunk(90, 5), "an older chunk adds no entry");
        assert!(!ix.note_chunk(100, 6), "nor does an equal one");
        assert!(ix.note_chunk(150, 8));
        ix.close_at(8);
        assert_eq!(ix.entries.len(), 2, "the entries already reach the end");
        assert!(!ix.note_chunk(120, 10));
        ix.close_at(10);
        assert_eq!(ix.max_timestamp_us(), Some(150));
        assert_eq!(ix.covered_to(), Some(10));
        assert_eq!(ix.entries.len(), 3);
        let mut empty = TimeIndex::default();
        empty.close_at(0);
        assert!(empty.entries.is_empty());
    }

    #[test]
    fn lookup_finds_the_stretch_of_the_first_record_at_or_after_a_time() {
        // Chunks [0,3) max 100, [3,5) max 90 (the clock stepped back), [5,8) max 150, closed.
        let ix = index(&[(100, 3), (150, 8), (150, 10)]);
        assert_eq!(ix.stretch_for(i64::MIN, 0), Some((0, 3)));
        assert_eq!(ix.stretch_for(100, 0), Some((0, 3)));
        assert_eq!(ix.stretch_for(101, 0), Some((3, 8)));
        assert_eq!(ix.stretch_for(150, 0), Some((3, 8)));
        assert_eq!(ix.stretch_for(151, 0), None);
        assert_eq!(TimeIndex::default().stretch_for(0, 0), None);
    }
}
