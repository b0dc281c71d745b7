//! The FETCH body: read one partition from an offset, without a consumer group. Answered with
//! a POLL_RESPONSE (the same items as a poll: the stored chunks, the first of which may start
//! before the offset), or an ERROR.
//!
//! ```text
//! topic len u8 | topic | partition u32 | offset i64 | max bytes u32 | [max wait ms u32]
//! ```
//!
//! With header flag [`Flags::BY_TIME`] (0x02) the `offset` field is a timestamp in μs since the
//! epoch (the unit of record timestamps and of PRODUCE's timestamp): the read starts at the
//! first record whose timestamp is at or after it, in offset order.
//!
//! `partition` is the index `0..P` in the topic's layout (partition `j` covers the `j`-th
//! token range; see `ring`). `max bytes` bounds the response's payloads (the broker also caps
//! it at its `--max-poll-bytes`; at least one chunk is sent if there is any). With a max wait,
//! a fetch at the end of the partition waits up to that long for new records.

use super::reader::Reader;
use super::startup::validate_topic;
use super::writer::Put;
use super::{Flags, WireError};

/// Where a FETCH starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFrom {
    /// At this offset (the chunk holding it).
    Offset(i64),
    /// At the first record whose timestamp (μs since the epoch) is ≥ this (header flag
    /// [`Flags::BY_TIME`]).
    Time(i64),
}

/// A parsed FETCH body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchBody {
    pub topic: String,
    pub partition: u32,
    pub from: FetchFrom,
    pub max_bytes: u32,
    pub max_wait_ms: Option<u32>,
}

impl FetchBody {
    /// Parses a body; `flags` is its frame header's flags ([`Flags::BY_TIME`] makes the
    /// offset field a timestamp).
    pub fn decode(body: &[u8], flags: u8) -> Result<FetchBody, WireError> {
        let mut r = Reader::new(body);
        let topic = r.string("topic")?;
        validate_topic(&topic)?;
        let partition = r.u32("partition")?;
        let value = r.i64("offset")?;
        let from = if flags & Flags::BY_TIME != 0 {
            FetchFrom::Time(value)
        } else if value < 0 {
            return Err(WireError::Malformed(format!(
                "FETCH offset {value} is negative"
            )));
        } else {
            FetchFrom::Offset(value)
        };
        let max_bytes = r.u32("max bytes")?;
        let max_wait_ms = match r.remaining() {
            0 => None,
            4 => Some(r.u32("max wait")?),
            n => {
                return Err(WireError::Malformed(format!(
                    "FETCH body has {n} bytes after max bytes; expected none or a 4-byte max wait"
                )))
            }
        };
        Ok(FetchBody {
            topic,
            partition,
            from,
            max_bytes,
            max_wait_ms,
        })
    }

    /// The header flags the body needs ([`Flags::BY_TIME`] for a read by time).
    pub fn flags(&self) -> u8 {
        match self.from {
            FetchFrom::Offset(_) => 0,
            FetchFrom::Time(_) => Flags::BY_TIME,
        }
    }

    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_str_u8(&self.topic);
        dst.put_u32(self.partition);
        dst.put_i64(match self.from {
            FetchFrom::Offset(o) => o,
            FetchFrom::Time(t) => t,
        });
        dst.put_u32(self.max_bytes);
        if let Some(ms) = self.max_wait_ms {
            dst.put_u32(ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_bodies() {
        let froms = [
            FetchFrom::Offset(1_000_000),
            FetchFrom::Time(1_764_000_000_000_000),
            FetchFrom::Time(-5),
        ];
        for (wait, from) in [None, Some(250)]
            .into_iter()
            .zip(froms)
            .chain([(None, froms[2])])
        {
            let b = FetchBody {
                topic: "orders".into(),
                partition: 3,
                from,
                max_bytes: 1 << 20,
                max_wait_ms: wait,
            };
            let mut buf = Vec::new();
            b.encode(&mut buf);
            assert_eq!(FetchBody::decode(&buf, b.flags()).unwrap(), b);
            // Every strict prefix is refused, never a panic.
            for n in 0..buf.len() {
                if wait.is_some() && n == buf.len() - 4 {
                    continue; // without the optional max wait: a valid body
                }
                assert!(
                    FetchBody::decode(&buf[..n], b.flags()).is_err(),
                    "prefix {n}"
                );
            }
        }
        // The flag is what tells a time from an offset.
        let mut t = Vec::new();
        FetchBody {
            topic: "t".into(),
            partition: 0,
            from: FetchFrom::Time(42),
            max_bytes: 1,
            max_wait_ms: None,
        }
        .encode(&mut t);
        assert_eq!(
            FetchBody::decode(&t, 0).unwrap().from,
            FetchFrom::Offset(42)
        );
        assert_eq!(
            FetchBody::decode(&t, Flags::BY_TIME).unwrap().from,
            FetchFrom::Time(42)
        );
        let mut bad = Vec::new();
        FetchBody {
            topic: "a/b".into(),
            partition: 0,
            from: FetchFrom::Offset(0),
            max_bytes: 1,
            max_wait_ms: None,
        }
        .encode(&mut bad);
        assert!(FetchBody::decode(&bad, 0).is_err());
        let mut neg = Vec::new();
        FetchBody {
            topic: "t".into(),
            partition: 0,
            from: FetchFrom::Offset(-1),
            max_bytes: 1,
            max_wait_ms: None,
        }
        .encode(&mut neg);
        assert!(FetchBody::decode(&neg, 0).is_err());
    }
}
