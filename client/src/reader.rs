//! [`PartitionReader`]: one partition from an offset or a time, without a consumer group
//! (FETCH). It keeps its own position; nothing is committed on the broker. For replaying a
//! partition, inspecting it, or a consumer that stores its positions itself.

use std::time::Duration;

use shardlog_wire::fetch::{FetchBody, FetchFrom};
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
    /// The first offset to return (unless `start_time_us` is set).
    pub offset: i64,
    /// Start instead at the first record whose timestamp (μs since the Unix epoch) is at or
    /// after this, in offset order (FETCH by time): with timestamps that go backwards, later
    /// records may be older. When every record is older, the reader waits for the first newer one.
    pub start_time_us: Option<i64>,
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
            start_time_us: None,
            max_bytes: 1 << 20,
            max_wait: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 64 << 20,
        }
    }
}

impl ReaderConfig {
    /// A reader of `partition` from the first record at or after `time`.
    pub fn from_time(
        broker: impl Into<String>,
        topic: impl Into<String>,
        partition: u32,
        time: std::time::SystemTime,
    ) -> ReaderConfig {
        let mut config = ReaderConfig::new(broker, topic, partition, 0);
        config.start_time_us = Some(unix_micros(time));
        config
    }
}

/// Microseconds since the Unix epoch (negative before it, saturating).
pub fn unix_micros(time: std::time::SystemTime) -> i64 {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

/// Reads one partition in order from an offset or a time.
pub struct PartitionReader {
    config: ReaderConfig,
    conn: Mux,
    next: i64,
    /// Set until the first record of a read from a time has arrived: fetches go by time.
    seeking: Option<i64>,
}

impl PartitionReader {
    pub async fn connect(config: ReaderConfig) -> Result<PartitionReader, ClientError> {
        let timeout = config.request_timeout + config.max_wait;
        let conn = Mux::connect(&config.broker, config.max_response_bytes, 1, timeout).await?;
        Ok(PartitionReader {
            next: config.offset,
            seeking: config.start_time_us,
            config,
            conn,
        })
    }

    /// The offset the next record will have; `None` while a reader that starts at a time has
    /// not received its first record (the broker finds that offset).
    pub fn position(&self) -> Option<i64> {
        self.seeking.is_none().then_some(self.next)
    }

    /// The next records from the position (empty after `max_wait` at the end of the
    /// partition), and moves the position past them.
    pub async fn next_batch(&mut self) -> Result<Vec<Record>, ClientError> {
        let mut body = Vec::new();
        let fetch = FetchBody {
            topic: self.config.topic.clone(),
            partition: self.config.partition,
            from: match self.seeking {
                Some(t_us) => FetchFrom::Time(t_us),
                None => FetchFrom::Offset(self.next),
            },
            max_bytes: self.config.max_bytes,
            max_wait_ms: Some(self.config.max_wait.as_millis().min(u32::MAX as u128) as u32),
        };
        fetch.encode(&mut body);
        let answer = self.conn.call(OpCode::Fetch, fetch.flags(), &body).await?;
        if answer.opcode()? != OpCode::PollResponse {
            return Err(ClientError::ConnectionLost(
                "no POLL_RESPONSE to FETCH".into(),
            ));
        }
        let mut records = decode_poll(&answer.body, self.config.max_response_bytes as usize)?;
        match self.seeking {
            // The first chunk may start before the record the broker found: every record
            // before it is older than the time, and it is the first that is not.
            Some(t_us) => match records.iter().position(|r| r.timestamp_us >= t_us) {
                Some(first) => {
                    records.drain(..first);
                    self.seeking = None;
                }
                None => records.clear(),
            },
            // The first chunk may start before the position.
            None => records.retain(|r| r.offset >= self.next),
        }
        if let Some(last) = records.last() {
            self.next = last.offset + 1;
        }
        Ok(records)
    }
}
