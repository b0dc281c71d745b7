//! [`Consumer`]: a consumer-group member over the framed protocol. It registers, polls (long
//! polls: the broker answers as soon as there is data, or after `max_wait`), decodes the
//! stored chunks into [`Record`]s, commits and leaves with GOODBYE.
//!
//! A plain COMMIT confirms everything the previous poll returned. With `auto_commit` (the
//! default) each poll first commits the one before, so a record counts as processed once the
//! application asks for more; a crash before that delivers it again (at-least-once).
//!
//! With `auto_commit` off, the application says what it processed: [`Consumer::commit`] (the
//! whole last poll) or [`Consumer::commit_records`] (exactly through the records given: a
//! COMMIT with explicit positions). Before the next poll the consumer commits, for every
//! partition of the last poll, what was processed there — or nothing of it — so the broker
//! does not confirm the rest, and delivers it again.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use shardlog_wire::commit::{CommitBody, CommitPosition};
pub use shardlog_wire::consumer::StartPolicy;
use shardlog_wire::consumer::{ConsumerIdBody, PollBody, RegisterBody};
use shardlog_wire::poll::PollResponse;
use shardlog_wire::record::RecordIter;
use shardlog_wire::ring::PartitionId;
use shardlog_wire::{ErrorCode, OpCode};

use crate::mux::Mux;
use crate::ClientError;

/// Who the consumer is and how it reads.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Framed-protocol address of a broker (`host:port`).
    pub broker: String,
    pub group: String,
    /// This member's id, unique in the group and stable across restarts of the same member.
    pub id: String,
    pub topics: Vec<String>,
    /// Where a group with no committed offset for a topic starts.
    pub start: StartPolicy,
    /// How long a poll waits for data before answering with none.
    pub max_wait: Duration,
    /// Commit the previous poll at each poll.
    pub auto_commit: bool,
    /// How long a request may take beyond `max_wait`.
    pub request_timeout: Duration,
    /// Largest poll response accepted, and largest decompressed chunk.
    pub max_response_bytes: u32,
}

impl ConsumerConfig {
    pub fn new(
        broker: impl Into<String>,
        group: impl Into<String>,
        id: impl Into<String>,
        topics: &[&str],
    ) -> ConsumerConfig {
        ConsumerConfig {
            broker: broker.into(),
            group: group.into(),
            id: id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            start: StartPolicy::Earliest,
            max_wait: Duration::from_secs(1),
            auto_commit: true,
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 64 << 20,
        }
    }
}

/// One stored message. Keys are not stored, so a record has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    /// The partition, as the broker names it (generation, token range start, range index).
    pub partition: PartitionId,
    pub offset: i64,
    /// Microseconds since the Unix epoch: the producer's timestamp, or the broker's receive time.
    pub timestamp_us: i64,
    pub value: Bytes,
}

/// A consumer-group member. Dropping it without [`close`](Consumer::close) leaves its
/// partitions assigned until the broker's `--consumer-timeout`.
pub struct Consumer {
    config: ConsumerConfig,
    conn: Mux,
    /// A poll returned records not committed yet.
    uncommitted: bool,
    /// Per partition of the last poll: its first record's offset, and how far the
    /// application committed it (manual commits).
    last_poll: HashMap<PartitionOf, (i64, Option<i64>)>,
    /// Per partition: records below this offset were committed, so a chunk that starts
    /// before it (a poll resumes at chunk boundaries) has its first records dropped.
    skip_below: HashMap<PartitionOf, i64>,
}

/// A partition as poll items name it.
type PartitionOf = (String, PartitionId);

impl Consumer {
    /// Connects and registers in the group.
    pub async fn join(config: ConsumerConfig) -> Result<Consumer, ClientError> {
        let timeout = config.request_timeout + config.max_wait;
        let conn = Mux::connect(&config.broker, config.max_response_bytes, 4, timeout).await?;
        let c = Consumer {
            config,
            conn,
            uncommitted: false,
            last_poll: HashMap::new(),
            skip_below: HashMap::new(),
        };
        c.register().await?;
        Ok(c)
    }

    async fn register(&self) -> Result<(), ClientError> {
        let mut body = Vec::new();
        RegisterBody {
            policy: self.config.start,
            consumer_id: self.config.id.clone(),
            group: self.config.group.clone(),
            topics: self.config.topics.clone(),
        }
        .encode(&mut body);
        self.expect_ready(OpCode::Register, &body).await
    }

    async fn expect_ready(&self, op: OpCode, body: &[u8]) -> Result<(), ClientError> {
        let answer = self.conn.call(op, 0, body).await?;
        match answer.opcode()? {
            OpCode::Ready => Ok(()),
            other => Err(ClientError::ConnectionLost(format!(
                "unexpected {other:?} to {op:?}"
            ))),
        }
    }

    /// The next records of the partitions assigned to this member (empty after `max_wait`
    /// with nothing new). With `auto_commit`, commits the previous poll first. A member the
    /// broker forgot (silent past its consumer timeout) registers again.
    pub async fn poll(&mut self) -> Result<Vec<Record>, ClientError> {
        if self.uncommitted {
            if self.config.auto_commit {
                // Not left to the POLL: the commit a POLL makes for its predecessor is saved in
                // the background (docs/consumers.md, "Durability"), while a COMMIT is answered
                // once the offsets are on disk. Dropping this round trip let a crash redeliver
                // records below a commit the application had seen (the chaos loop caught it).
                self.commit().await?;
            } else {
                self.commit_processed().await?;
            }
        }
        let mut body = Vec::new();
        PollBody {
            consumer_id: self.config.id.clone(),
            max_wait_ms: Some(self.config.max_wait.as_millis().min(u32::MAX as u128) as u32),
        }
        .encode(&mut body);
        let answer = match self.conn.call(OpCode::Poll, 0, &body).await {
            Err(e) if e.code() == Some(ErrorCode::UnknownConsumer) => {
                self.register().await?;
                self.conn.call(OpCode::Poll, 0, &body).await?
            }
            r => r?,
        };
        if answer.opcode()? != OpCode::PollResponse {
            return Err(ClientError::ConnectionLost(
                "no POLL_RESPONSE to POLL".into(),
            ));
        }
        let mut records = decode_poll(&answer.body, self.config.max_response_bytes as usize)?;
        records.retain(|r| {
            let below = self.skip_below.get(&(r.topic.clone(), r.partition));
            below.is_none_or(|b| r.offset >= *b)
        });
        self.last_poll.clear();
        for r in &records {
            self.last_poll
                .entry((r.topic.clone(), r.partition))
                .or_insert((r.offset, None));
        }
        self.uncommitted = !records.is_empty();
        Ok(records)
    }

    /// Commits everything the last poll returned.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let mut body = Vec::new();
        ConsumerIdBody {
            consumer_id: self.config.id.clone(),
        }
        .encode(&mut body);
        self.expect_ready(OpCode::Commit, &body).await?;
        self.uncommitted = false;
        Ok(())
    }

    /// Commits exactly through `records` (of the last poll): per partition, up to and
    /// including the highest offset given. The other records of the last poll are delivered
    /// again by the next poll.
    pub async fn commit_records(&mut self, records: &[Record]) -> Result<(), ClientError> {
        let mut through: HashMap<PartitionOf, i64> = HashMap::new();
        for r in records {
            let next = r.offset.saturating_add(1);
            let e = through
                .entry((r.topic.clone(), r.partition))
                .or_insert(next);
            *e = (*e).max(next);
        }
        for (p, next) in &through {
            if let Some(entry) = self.last_poll.get_mut(p) {
                entry.1 = Some(entry.1.map_or(*next, |d| d.max(*next)));
            }
        }
        self.commit_positions(through.into_iter().collect()).await
    }

    /// Manual commits: commits, for every partition of the last poll, what the application
    /// committed of it or nothing (its first record), so the broker confirms nothing more.
    async fn commit_processed(&mut self) -> Result<(), ClientError> {
        let positions: Vec<_> = self
            .last_poll
            .iter()
            .map(|(p, (first, done))| (p.clone(), done.unwrap_or(*first)))
            .collect();
        self.commit_positions(positions).await?;
        self.uncommitted = false;
        Ok(())
    }

    /// Drops what the last poll returned without committing it: registers again with the same
    /// id, which starts a new session on the broker, so those records go to the group's next
    /// poll (this member's or, after [`close`](Consumer::close), another's). For a poll whose
    /// answer never reached the application (interrupted, failed): the broker may have
    /// recorded positions nobody saw, which the next POLL, COMMIT or GOODBYE would confirm.
    pub async fn discard_last_poll(&mut self) -> Result<(), ClientError> {
        self.register().await?;
        self.last_poll.clear();
        self.uncommitted = false;
        Ok(())
    }

    /// A COMMIT with explicit positions (next offset to read, per partition).
    async fn commit_positions(
        &mut self,
        positions: Vec<(PartitionOf, i64)>,
    ) -> Result<(), ClientError> {
        let mut body = Vec::new();
        CommitBody {
            consumer_id: self.config.id.clone(),
            positions: Some(
                positions
                    .iter()
                    .map(|((topic, p), offset)| CommitPosition {
                        topic: topic.clone(),
                        token: p.token,
                        range_index: p.range_index,
                        gen: p.gen,
                        offset: *offset,
                    })
                    .collect(),
            ),
        }
        .encode(&mut body);
        self.expect_ready(OpCode::Commit, &body).await?;
        for (p, offset) in positions {
            self.skip_below.insert(p, offset);
        }
        Ok(())
    }

    /// Leaves the group (GOODBYE), so the member's partitions go to the others at once.
    /// GOODBYE commits the last poll: with `auto_commit` all of it, without only what the
    /// application committed (the rest is delivered again, to whichever member gets it).
    pub async fn close(mut self) -> Result<(), ClientError> {
        if !self.config.auto_commit && self.uncommitted {
            self.commit_processed().await?;
        }
        let mut body = Vec::new();
        ConsumerIdBody {
            consumer_id: self.config.id.clone(),
        }
        .encode(&mut body);
        self.expect_ready(OpCode::Goodbye, &body).await
    }
}

/// Decodes a POLL_RESPONSE body into records, each chunk decompressed with at most `limit`
/// bytes of output.
pub fn decode_poll(body: &[u8], limit: usize) -> Result<Vec<Record>, ClientError> {
    let mut out = Vec::new();
    for item in PollResponse::decode(body)?.items {
        let h = &item.header;
        let raw = Bytes::from(shardlog_wire::payload::decode(item.payload, limit)?);
        let partition = PartitionId {
            gen: h.gen_version,
            token: h.token,
            range_index: h.range_index,
        };
        for (i, record) in RecordIter::new(&raw).enumerate() {
            let record = record?;
            let start = record.body.as_ptr() as usize - raw.as_ptr() as usize;
            out.push(Record {
                topic: h.topic.to_string(),
                partition,
                offset: h.offset.saturating_add(i as i64),
                timestamp_us: record.timestamp_us,
                value: raw.slice(start..start + record.body.len()),
            });
        }
    }
    Ok(out)
}
