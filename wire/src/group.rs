//! Bodies of the group operations one broker passes to the broker that coordinates a consumer
//! group (cluster mode). Ordinary clients never send these: a broker refuses the GROUP opcode
//! on a connection whose STARTUP did not say it is a broker's (see [`super::forward`]).
//!
//! Strings are `len u8 | UTF-8 bytes`, integers big-endian.
//!
//! ```text
//! GROUP         kind u8 | group str | consumer id str | the kind's fields
//!   1 register  start u8 (0 earliest, 1 latest, 2 time) | [time μs i64 if 2]
//!               | topics u16 | (topic str | partitions u32)*
//!   2 plan      (nothing)
//!   3 returned  session u64 | positions
//!   4 commit    (nothing)
//!   5 commit positions   positions
//!   6 goodbye   (nothing)
//!   positions = count u32 | (topic str | partition u32 | offset i64)*
//! GROUP_ANSWER  status u8 | the status's fields
//!   0 done      (nothing)
//!   1 plan      session u64 | count u32 | (topic str | partition u32 | has offset u8 | offset i64)*
//!   2 not coordinator   broker id u32 (whom the answering broker's view names; u32::MAX: none)
//! ```
//!
//! A refusal by the coordinator (an unknown consumer, a limit) is an ERROR frame as for any
//! request. "Not coordinator" is an answer of its own, not an error code: only brokers see it,
//! and the asking broker acts on it (it looks the coordinator up again).

use super::reader::Reader;
use super::writer::Put;
use super::WireError;

/// Where a group starts in a topic it has no committed offsets for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    Earliest,
    Latest,
    /// The first record at or after this time (μs since the epoch).
    Time(i64),
}

/// One partition's position: the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPosition {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
}

/// What a broker asks the coordinator to do for one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOp {
    /// Joins the group; each topic with its partition count.
    Register {
        start: GroupStart,
        topics: Vec<(String, u32)>,
    },
    /// Commits the previous poll and says what to read now.
    Plan,
    /// The positions a poll of `session` returned to the consumer.
    Returned {
        session: u64,
        positions: Vec<GroupPosition>,
    },
    /// Commits what the last poll returned.
    Commit,
    /// Commits exactly these positions.
    CommitPositions(Vec<GroupPosition>),
    /// Commits and leaves the group.
    Goodbye,
}

/// A GROUP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRequest {
    pub group: String,
    pub consumer: String,
    pub op: GroupOp,
}

/// One partition a poll reads, from its committed offset (`None`: none yet, the log's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTarget {
    pub topic: String,
    pub partition: u32,
    pub offset: Option<i64>,
}

/// A GROUP_ANSWER body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAnswer {
    Done,
    Plan {
        session: u64,
        targets: Vec<GroupTarget>,
    },
    /// The answering broker does not coordinate the group; its view names `coordinator`.
    NotCoordinator {
        coordinator: Option<u32>,
    },
}

/// The smallest encoded position (`topic` of one byte): bounds what a count may reserve.
const MIN_POSITION: usize = 2 + 4 + 8;
/// The smallest encoded topic of a REGISTER (`topic` of one byte).
const MIN_TOPIC: usize = 2 + 4;
/// The smallest encoded plan target.
const MIN_TARGET: usize = 2 + 4 + 1 + 8;

/// A count read from the input, as a capacity no larger than the input could hold.
fn capacity(count: usize, r: &Reader, min_item: usize) -> usize {
    count.min(r.remaining() / min_item)
}

fn put_positions(dst: &mut Vec<u8>, positions: &[GroupPosition]) {
    dst.put_u32(positions.len() as u32);
    for p in positions {
        dst.put_str_u8(&p.topic);
        dst.put_u32(p.partition);
        dst.put_i64(p.offset);
    }
}

fn positions(r: &mut Reader) -> Result<Vec<GroupPosition>, WireError> {
    let count = r.u32("position count")? as usize;
    let mut out = Vec::with_capacity(capacity(count, r, MIN_POSITION));
    for _ in 0..count {
        out.push(GroupPosition {
            topic: r.string("position topic")?,
            partition: r.u32("position partition")?,
            offset: r.i64("position offset")?,
        });
    }
    Ok(out)
}

impl GroupRequest {
    pub fn decode(body: &[u8]) -> Result<GroupRequest, WireError> {
        let mut r = Reader::new(body);
        let kind = r.u8("group operation")?;
        let group = r.string("group")?;
        let consumer = r.string("consumer id")?;
        let op = match kind {
            1 => {
                let start = match r.u8("start")? {
                    0 => GroupStart::Earliest,
                    1 => GroupStart::Latest,
                    2 => GroupStart::Time(r.i64("start time")?),
                    other => {
                        return Err(WireError::Malformed(format!(
                            "group start {other} is not 0 (earliest), 1 (latest) or 2 (time)"
                        )))
                    }
                };
                let count = r.u16("topic count")? as usize;
                let mut topics = Vec::with_capacity(capacity(count, &r, MIN_TOPIC));
                for _ in 0..count {
                    topics.push((r.string("topic")?, r.u32("partitions")?));
                }
                GroupOp::Register { start, topics }
            }
            2 => GroupOp::Plan,
            3 => GroupOp::Returned {
                session: u64::from_be_bytes(r.array::<8>("session")?),
                positions: positions(&mut r)?,
            },
            4 => GroupOp::Commit,
            5 => GroupOp::CommitPositions(positions(&mut r)?),
            6 => GroupOp::Goodbye,
            other => {
                return Err(WireError::Malformed(format!(
                    "group operation {other} is not 1..=6"
                )))
            }
        };
        r.finish("GROUP")?;
        Ok(GroupRequest {
            group,
            consumer,
            op,
        })
    }

    pub fn encode(&self, dst: &mut Vec<u8>) {
        let kind = match self.op {
            GroupOp::Register { .. } => 1,
            GroupOp::Plan => 2,
            GroupOp::Returned { .. } => 3,
            GroupOp::Commit => 4,
            GroupOp::CommitPositions(_) => 5,
            GroupOp::Goodbye => 6,
        };
        dst.put_u8(kind);
        dst.put_str_u8(&self.group);
        dst.put_str_u8(&self.consumer);
        match &self.op {
            GroupOp::Register { start, topics } => {
                match start {
                    GroupStart::Earliest => dst.put_u8(0),
                    GroupStart::Latest => dst.put_u8(1),
                    GroupStart::Time(t) => {
                        dst.put_u8(2);
                        dst.put_i64(*t);
                    }
                }
                let topics = &topics[..topics.len().min(u16::MAX as usize)];
                dst.put_u16(topics.len() as u16);
                for (t, n) in topics {
                    dst.put_str_u8(t);
                    dst.put_u32(*n);
                }
            }
            GroupOp::Returned { session, positions } => {
                dst.put_slice(&session.to_be_bytes());
                put_positions(dst, positions);
            }
            GroupOp::CommitPositions(positions) => put_positions(dst, positions),
            GroupOp::Plan | GroupOp::Commit | GroupOp::Goodbye => {}
        }
    }
}

impl GroupAnswer {
    pub fn decode(body: &[u8]) -> Result<GroupAnswer, WireError> {
        let mut r = Reader::new(body);
        let answer = match r.u8("group answer status")? {
            0 => GroupAnswer::Done,
            1 => {
                let session = u64::from_be_bytes(r.array::<8>("session")?);
                let count = r.u32("target count")? as usize;
                let mut targets = Vec::with_capacity(capacity(count, &r, MIN_TARGET));
                for _ in 0..count {
                    let topic = r.string("target topic")?;
                    let partition = r.u32("target partition")?;
                    let has = r.u8("target has offset")?;
                    let offset = r.i64("target offset")?;
                    let offset = match has {
                        0 => None,
                        1 => Some(offset),
                        other => {
                            return Err(WireError::Malformed(format!(
                                "target offset flag {other} is not 0 or 1"
                            )))
                        }
                    };
                    targets.push(GroupTarget {
                        topic,
                        partition,
                        offset,
                    });
                }
                GroupAnswer::Plan { session, targets }
            }
            2 => {
                let id = r.u32("coordinator")?;
                GroupAnswer::NotCoordinator {
                    coordinator: (id != u32::MAX).then_some(id),
                }
            }
            other => {
                return Err(WireError::Malformed(format!(
                    "group answer status {other} is not 0..=2"
                )))
            }
        };
        r.finish("GROUP_ANSWER")?;
        Ok(answer)
    }

    pub fn encode(&self, dst: &mut Vec<u8>) {
        match self {
            GroupAnswer::Done => dst.put_u8(0),
            GroupAnswer::Plan { session, targets } => {
                dst.put_u8(1);
                dst.put_slice(&session.to_be_bytes());
                dst.put_u32(targets.len() as u32);
                for t in targets {
                    dst.put_str_u8(&t.topic);
                    dst.put_u32(t.partition);
                    dst.put_u8(u8::from(t.offset.is_some()));
                    dst.put_i64(t.offset.unwrap_or(0));
                }
            }
            GroupAnswer::NotCoordinator { coordinator } => {
                dst.put_u8(2);
                dst.put_u32(coordinator.unwrap_or(u32::MAX));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(topic: &str, partition: u32, offset: i64) -> GroupPosition {
        GroupPosition {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    fn requests() -> Vec<GroupRequest> {
        let ops = [
            GroupOp::Register {
                start: GroupStart::Time(-5),
                topics: vec![("a".into(), 6), ("bb".into(), 1)],
            },
            GroupOp::Register {
                start: GroupStart::Latest,
                topics: vec![],
            },
            GroupOp::Plan,
            GroupOp::Returned {
                session: u64::MAX - 1,
                positions: vec![pos("a", 3, 17), pos("b", 0, i64::MAX)],
            },
            GroupOp::Commit,
            GroupOp::CommitPositions(vec![pos("t", 9, 0)]),
            GroupOp::Goodbye,
        ];
        ops.into_iter()
            .map(|op| GroupRequest {
                group: "g".into(),
                consumer: "c-1".into(),
                op,
            })
            .collect()
    }

    #[test]
    fn requests_round_trip_and_every_truncation_is_an_error() {
        for req in requests() {
            let mut b = Vec::new();
            req.encode(&mut b);
            assert_eq!(GroupRequest::decode(&b).unwrap(), req);
            for n in 0..b.len() {
                assert!(GroupRequest::decode(&b[..n]).is_err(), "{req:?} cut at {n}");
            }
            b.push(0);
            assert!(GroupRequest::decode(&b).is_err(), "trailing byte");
        }
        assert!(GroupRequest::decode(&[7, 1, b'g', 1, b'c']).is_err());
        assert!(GroupRequest::decode(&[1, 1, b'g', 1, b'c', 3, 0, 0]).is_err());
    }

    #[test]
    fn answers_round_trip_and_every_truncation_is_an_error() {
        let answers = [
            GroupAnswer::Done,
            GroupAnswer::Plan {
                session: 4,
                targets: vec![
                    GroupTarget {
                        topic: "t".into(),
                        partition: 2,
                        offset: Some(-1),
                    },
                    GroupTarget {
                        topic: "u".into(),
                        partition: 0,
                        offset: None,
                    },
                ],
            },
            GroupAnswer::NotCoordinator {
                coordinator: Some(3),
            },
            GroupAnswer::NotCoordinator { coordinator: None },
        ];
        for a in answers {
            let mut b = Vec::new();
            a.encode(&mut b);
            assert_eq!(GroupAnswer::decode(&b).unwrap(), a);
            for n in 0..b.len() {
                assert!(GroupAnswer::decode(&b[..n]).is_err(), "{a:?} cut at {n}");
            }
        }
        assert!(GroupAnswer::decode(&[3]).is_err());
    }

    #[test]
    fn the_bytes_docs_protocol_md_shows() {
        let mut b = Vec::new();
        GroupRequest {
            group: "g".into(),
            consumer: "c1".into(),
            op: GroupOp::Plan,
        }
        .encode(&mut b);
        assert_eq!(b, [2, 1, b'g', 2, b'c', b'1']);
        let mut a = Vec::new();
        GroupAnswer::Plan {
            session: 3,
            targets: vec![GroupTarget {
                topic: "orders".into(),
                partition: 2,
                offset: Some(40),
            }],
        }
        .encode(&mut a);
        let mut want = vec![1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, 6];
        want.extend_from_slice(b"orders");
        want.extend_from_slice(&[0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0x28]);
        assert_eq!(a, want);
    }

    #[test]
    fn a_huge_count_reserves_no_more_than_the_body_can_hold() {
        // count u32::MAX with no items: an error, not an allocation of 4 G items.
        let mut b = vec![5, 1, b'g', 1, b'c'];
        b.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(GroupRequest::decode(&b).is_err());
        let mut a = vec![1];
        a.extend_from_slice(&[0; 8]);
        a.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(GroupAnswer::decode(&a).is_err());
    }
}
