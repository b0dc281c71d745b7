//! The COMMIT body. Plain, it is the consumer id alone and confirms everything the
//! consumer's last poll returned. With positions, it confirms exactly those: each names a
//! partition as poll items do and the next offset to read there, so a consumer commits what it
//! processed and the rest is delivered again.
//!
//! ```text
//! consumer id string | [count u16 | count × (topic string | token i64 | range index u8 |
//!                                             gen u32 | offset i64)]
//! ```

use super::consumer::validate_consumer_id;
use super::reader::Reader;
use super::startup::validate_topic;
use super::writer::Put;
use super::WireError;

/// One explicit position: partition (as a poll item names it) and the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPosition {
    pub topic: String,
    /// The start of the partition's token range (a poll item's `token`).
    pub token: i64,
    pub range_index: u8,
    pub gen: u32,
    /// The next offset to read: one past the last record processed.
    pub offset: i64,
}

/// A parsed COMMIT body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitBody {
    pub consumer_id: String,
    /// `None`: everything the last poll returned.
    pub positions: Option<Vec<CommitPosition>>,
}

impl CommitBody {
    pub fn decode(body: &[u8]) -> Result<CommitBody, WireError> {
        let mut r = Reader::new(body);
        let consumer_id = r.string("consumer id")?;
        validate_consumer_id(&consumer_id)?;
        if r.is_empty() {
            return Ok(CommitBody {
                consumer_id,
                positions: None,
            });
        }
        let count = r.u16("position count")?;
        // Each position is at least 22 bytes: the count cannot ask for more than the body holds.
        if usize::from(count) * 22 > r.remaining() {
            return Err(WireError::Malformed(format!(
                "COMMIT names {count} positions in {} bytes",
                r.remaining()
            )));
        }
        let mut positions = Vec::with_capacity(count.into());
        for _ in 0..count {
            let topic = r.string("topic")?;
            validate_topic(&topic)?;
            let token = r.i64("token")?;
            let range_index = r.u8("range index")?;
            let gen = r.u32("gen")?;
            let offset = r.i64("offset")?;
            if offset < 0 {
                return Err(WireError::Malformed(format!(
                    "COMMIT offset {offset} is negative"
                )));
            }
            positions.push(CommitPosition {
                topic,
                token,
                range_index,
                gen,
                offset,
            });
        }
        r.finish("COMMIT")?;
        Ok(CommitBody {
            consumer_id,
            positions: Some(positions),
        })
    }

    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_str_u8(&self.consumer_id);
        if let Some(ps) = &self.positions {
            dst.put_u16(ps.len() as u16);
            for p in ps {
                dst.put_str_u8(&p.topic);
                dst.put_i64(p.token);
                dst.put_u8(p.range_index);
                dst.put_u32(p.gen);
                dst.put_i64(p.offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_positions() {
        let plain = CommitBody {
            consumer_id: "c1".into(),
            positions: None,
        };
        let with = CommitBody {
            consumer_id: "c1".into(),
            positions: Some(vec![
                CommitPosition {
                    topic: "orders".into(),
                    token: i64::MIN,
                    range_index: 3,
                    gen: 1,
                    offset: 42,
                },
                CommitPosition {
                    topic: "b".into(),
                    token: 7,
                    range_index: 0,
                    gen: 2,
                    offset: 0,
                },
            ]),
        };
        for b in [plain, with] {
            let mut buf = Vec::new();
            b.encode(&mut buf);
            assert_eq!(CommitBody::decode(&buf).unwrap(), b);
            if b.positions.is_some() {
                for n in 4..buf.len() {
                    assert!(CommitBody::decode(&buf[..n]).is_err(), "prefix {n}");
                }
            }
        }
    }

    #[test]
    fn refuses_bad_positions() {
        let bad = |p: CommitPosition| {
            let mut buf = Vec::new();
            CommitBody {
                consumer_id: "c".into(),
                positions: Some(vec![p]),
            }
            .encode(&mut buf);
            CommitBody::decode(&buf).is_err()
        };
        let p = CommitPosition {
            topic: "t".into(),
            token: 0,
            range_index: 0,
            gen: 1,
            offset: 1,
        };
        assert!(bad(CommitPosition {
            offset: -1,
            ..p.clone()
        }));
        assert!(bad(CommitPosition {
            topic: "a/b".into(),
            ..p.clone()
        }));
        // A count larger than the body can hold is refused before anything is allocated.
        let mut buf = Vec::new();
        buf.put_str_u8("c");
        buf.put_u16(u16::MAX);
        assert!(CommitBody::decode(&buf).is_err());
        let mut trailing = Vec::new();
        CommitBody {
            consumer_id: "c".into(),
            positions: Some(vec![p]),
        }
        .encode(&mut trailing);
        trailing.push(0);
        assert!(CommitBody::decode(&trailing).is_err());
    }
}
