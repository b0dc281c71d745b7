//! [`PartitionReader`]: one partition from an offset, without a consumer group (FETCH). It
//! keeps its own position; nothing is committed on the broker. For replaying a partition,
//! inspecting it, or a consumer that stores its positions itself.

use std::time::Duration;

use shardlog_wire::fetch::FetchBody;
use shardlog_wire::OpCode;

use crate::consumer::{decode_poll, Record};
use crate::mux::Mux;
use crate::ClientError;

/// Where and how a [`PartitionReader`] reads.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// Framed-protocol address of a broker (`host:port`).
    pub broker: String,
    pub topic: String,
    /// The partition's index in the topic's layout (`0..partitions`).
    pub partition: u32,
    /// The first offset to return.
    pub offset: i64,
    /// Compressed bytes asked for per fetch (the broker caps it at its `--max-poll-bytes`).
    pub max_bytes: u32,
    /// How long a fetch at the end of the partition waits for new records.
    pub max_wait: Duration,
    pub request_timeout: Duration,
    /// Largest response accepted, and largest decompressed chunk.
    pub max_response_bytes: u32,
}

impl ReaderConfig {
    pub fn new(
        broker: impl Into<String>,
        topic: impl Into<String>,
        partition: u32,
        offset: i64,
    ) -> ReaderConfig {
        ReaderConfig {
            broker: broker.into(),
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 1 << 20,
            max_wait: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 64 << 20,
        }
    }
}

/// Reads one partition in order from an offset.
pub struct PartitionReader {
    config: ReaderConfig,
    conn: Mux,
    next: i64,
}

impl PartitionReader {
    pub async fn connect(config: ReaderConfig) -> Result<PartitionReader, ClientError> {
        let timeout = config.request_timeout + config.max_wait;
        let conn = Mux::connect(&config.broker, config.max_response_bytes, 1, timeout).await?;
        Ok(PartitionReader {
            next: config.offset,
            config,
            conn,
        })
    }

    /// The offset the next record will have.
    pub fn position(&self) -> i64 {
        self.next
    }

    /// The next records from the position (empty after `max_wait` at the end of the
    /// partition), and moves the position past them.
    pub async fn next_batch(&mut self) -> Result<Vec<Record>, ClientError> {
        let mut body = Vec::new();
        FetchBody {
            topic: self.config.topic.clone(),
            partition: self.config.partition,
            offset: self.next,
            max_bytes: self.config.max_bytes,
            max_wait_ms: Some(self.config.max_wait.as_millis().min(u32::MAX as u128) as u32),
        }
        .encode(&mut body);
        let answer = self.conn.call(OpCode::Fetch, 0, &body).await?;
        if answer.opcode()? != OpCode::PollResponse {
            return Err(ClientError::ConnectionLost(
                "no POLL_RESPONSE to FETCH".into(),
            ));
        }
        let mut records = decode_poll(&answer.body, self.config.max_response_bytes as usize)?;
        // The first chunk may start before the position.
        records.retain(|r| r.offset >= self.next);
        if let Some(last) = records.last() {
            self.next = last.offset + 1;
        }
        Ok(records)
    }
}
