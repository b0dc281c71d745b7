//! Reading a partition another broker leads, for a consumer poll served here: a framed FETCH
//! to the leader (on the cluster thread, over the `shardlog-client` crate's connection), whose
//! POLL_RESPONSE carries the leader's stored chunks. Each item becomes a [`StoredChunk`] whose
//! payload is a slice of the received body, so the poll assembled here sends the leader's
//! bytes as they are: nothing is re-encoded on either hop.
//!
//! A poll item says where its chunk starts but not how many records it holds; the poll needs
//! that to know where the partition's next read starts. Between two items of one answer the
//! count is the difference of their offsets; the last item's records are counted by
//! decompressing that one chunk (counted, then thrown away; never re-encoded).
//!
//! One FETCH per connection at a time (the leader serves a connection's fetches in turn, and
//! a long poll holds its connection for its wait): idle connections to each leader are kept
//! for reuse, and a call that finds none opens another, within the bounds of
//! [`super::read_pool`] (`--max-remote-reads` long polls per leader, beyond which a long poll
//! pauses here and then reads without a wait).

use std::time::Duration;

use bytes::Bytes;
use shardlog_client::mux::Mux;
use shardlog_client::{ClientError, TimeOffset};

use super::forward::ForwardError;
use super::read_pool::{Kind, ReadPools, Slot, PAUSE, QUEUE_WITHIN, QUICK_READS};
use super::{Cluster, Route};
use crate::error::{Classify, ErrorClass};
use crate::shard::msg::ReadResult;
use crate::shard::ReadError;
use crate::storage::chunk::{decode_chunk_records, StoredChunk};
use crate::wire::fetch::{FetchBody, FetchFrom};
use crate::wire::poll::parse_poll_response;
use crate::wire::record::RecordIter;
use crate::wire::{ErrorCode, Flags, OpCode};

/// Why a read from a partition's leader failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteReadError {
    #[error("reading from broker {leader} at {addr}: {source}")]
    Link {
        leader: u32,
        addr: String,
        #[source]
        source: ClientError,
    },
    /// The leader's own refusal (its code and message).
    #[error("broker {leader} refused the read: {message}")]
    Refused {
        leader: u32,
        code: u8,
        message: String,
    },
    #[error(
        "broker {leader} answered a read with a chunk whose records cannot be counted: {reason}"
    )]
    BadChunk { leader: u32, reason: String },
    #[error(
        "this broker's reads at broker {leader} ({addr}) are all in use: --max-remote-reads long \
         polls and {QUICK_READS} reads without a wait, none free within {QUEUE_WITHIN:?}; retry"
    )]
    Busy { leader: u32, addr: String },
    #[error(transparent)]
    PeerBusy(#[from] super::admin_proxy::PeerBusy),
    #[error("the cluster thread stopped")]
    Stopped,
}

impl Classify for RemoteReadError {
    fn class(&self) -> ErrorClass {
        match self {
            RemoteReadError::Refused { code, .. } => match ErrorCode::from_u8(*code) {
                Some(ErrorCode::NotFound) => ErrorClass::NotFound,
                Some(ErrorCode::OutOfRange) => ErrorClass::OutOfRange,
                Some(ErrorCode::Storage) => ErrorClass::Storage,
                Some(ErrorCode::BadRequest | ErrorCode::Protocol) => ErrorClass::Invalid,
                _ => ErrorClass::Unavailable,
            },
            RemoteReadError::BadChunk { .. } => ErrorClass::Storage,
            RemoteReadError::Busy { .. } | RemoteReadError::PeerBusy(_) => ErrorClass::LimitReached,
            _ => ErrorClass::Unavailable,
        }
    }
}

/// The largest FETCH answer taken from a leader (a poll's budget is far below it).
const MAX_ANSWER: u32 = 256 << 20;

/// Beyond a FETCH's own wait, how long its answer may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The longest a long poll waits at a leader (a FETCH's wait is capped there too).
const LONGEST_WAIT: Duration = crate::consumer::api::MAX_POLL_WAIT;

/// The connections to leaders for reads, bounded per leader.
pub struct RemoteReads {
    pools: ReadPools,
}

impl RemoteReads {
    /// Reads allowing `max_waiting` long polls at each leader at once (`--max-remote-reads`).
    pub fn new(max_waiting: usize) -> RemoteReads {
        RemoteReads {
            pools: ReadPools::new(max_waiting),
        }
    }
}

/// One read of a partition at its leader.
#[derive(Debug, Clone)]
pub struct RemoteRead {
    pub leader: u32,
    pub addr: String,
    pub topic: String,
    pub partition: u32,
    pub from: FetchFrom,
    pub max_bytes: usize,
    pub wait: Option<Duration>,
}

impl Cluster {
    /// Reads `read` at its leader; callable from any runtime (the work runs on the cluster
    /// thread).
    pub async fn read_remote(&self, read: RemoteRead) -> Result<ReadResult, RemoteReadError> {
        let cluster = super::installed().cloned();
        let work = async move {
            match cluster {
                Some(c) => c.remote_reads.fetch(read).await,
                None => Err(RemoteReadError::Stopped),
            }
        };
        self.on_cluster_thread(work)
            .await
            .ok_or(RemoteReadError::Stopped)?
    }
}

impl Cluster {
    /// Partition `j` of `topic` as its leader sees it when another broker leads it: its first
    /// and next offsets, and its first offset whose record is at or after `time_us` (any
    /// time will do when only the bounds matter), asked over the leader's HTTP port (the
    /// admin API's offset for a time). `None` when this broker leads the partition (look
    /// here). For a group's start, describe and reset in cluster mode.
    pub async fn offsets_at_leader(
        &self,
        topic: &str,
        j: u32,
        time_us: i64,
    ) -> Result<Option<TimeOffset>, ReadError> {
        let Route::Forward { leader, .. } = self.route(topic, j)? else {
            return Ok(None);
        };
        let http = self
            .state()
            .live
            .get(&leader)
            .map(|b| b.http.clone())
            .ok_or_else(|| ForwardError::LeaderDown {
                topic: topic.to_string(),
                partition: j,
                leader,
            })?;
        let admin = shardlog_client::Admin::new(http.clone()).with_timeout(ANSWER_WITHIN);
        let topic = topic.to_string();
        let peers = self.peer_requests.clone();
        let work = async move { peers.run(admin.offset_for_time(&topic, j, time_us)).await };
        let found = self
            .on_cluster_thread(work)
            .await
            .ok_or(RemoteReadError::Stopped)?
            .map_err(RemoteReadError::from)?
            .map_err(|source| RemoteReadError::Link {
                leader,
                addr: http,
                source,
            })?;
        Ok(Some(found))
    }
}

impl RemoteReads {
    /// A slot for `read` at its leader: a long poll's if one is free; else, after a pause
    /// (at most its wait), the read goes on without a wait, in a slot of those.
    async fn slot(&self, read: &mut RemoteRead) -> Result<Slot, RemoteReadError> {
        if let Some(wait) = read.wait.filter(|w| !w.is_zero()) {
            if let Some(slot) = self.pools.try_waiting(&read.addr) {
                return Ok(slot);
            }
            tokio::time::sleep(wait.min(PAUSE)).await;
            read.wait = None;
        }
        self.pools
            .quick(&read.addr)
            .await
            .ok_or_else(|| RemoteReadError::Busy {
                leader: read.leader,
                addr: read.addr.clone(),
            })
    }

    async fn fetch(&self, mut read: RemoteRead) -> Result<ReadResult, RemoteReadError> {
        let slot = self.slot(&mut read).await?;
        let link = |source| RemoteReadError::Link {
            leader: read.leader,
            addr: read.addr.clone(),
            source,
        };
        let wait = read.wait.unwrap_or_default().min(LONGEST_WAIT);
        // A connection serves reads of its kind only, so its timeout fits any of them; each
        // read is timed by its own wait below.
        let mux = match self.pools.take_idle(&slot) {
            Some(m) => m,
            None => {
                let within = match slot.kind() {
                    Kind::Waiting => LONGEST_WAIT + ANSWER_WITHIN,
                    Kind::Quick => ANSWER_WITHIN,
                };
                Mux::connect(&read.addr, MAX_ANSWER, 1, within)
                    .await
                    .map_err(link)?
            }
        };
        let mut body = Vec::new();
        let fetch = FetchBody {
            topic: read.topic.clone(),
            partition: read.partition,
            from: read.from,
            max_bytes: read.max_bytes.min(u32::MAX as usize) as u32,
            max_wait_ms: read
                .wait
                .map(|w| w.as_millis().min(u128::from(u32::MAX)) as u32),
        };
        fetch.encode(&mut body);
        // The leader reads its own log: a read is never forwarded twice.
        let flags = fetch.flags() | Flags::AT_THIS_BROKER;
        let within = wait + ANSWER_WITHIN;
        let answer = match tokio::time::timeout(within, mux.call(OpCode::Fetch, flags, &body)).await
        {
            Ok(Ok(a)) => a,
            Ok(Err(ClientError::Broker { code, message })) => {
                self.pools.put_back(&slot, mux);
                return Err(RemoteReadError::Refused {
                    leader: read.leader,
                    code,
                    message,
                });
            }
            // The connection is not reused.
            Ok(Err(e)) => return Err(link(e)),
            Err(_) => return Err(link(ClientError::Timeout(within))),
        };
        self.pools.put_back(&slot, mux);
        if answer.opcode().ok() != Some(OpCode::PollResponse) {
            return Err(link(ClientError::ConnectionLost(
                "no POLL_RESPONSE to FETCH".into(),
            )));
        }
        // An empty answer to a read by time starts nowhere in particular: 0.
        let from = match read.from {
            FetchFrom::Offset(o) => o,
            FetchFrom::Time(_) => 0,
        };
        chunks_of(read.leader, from, &answer.body)
    }
}

/// The chunks of a leader's POLL_RESPONSE `body` to a read from `from`, their payloads
/// slices of `body`.
fn chunks_of(leader: u32, from: i64, body: &Bytes) -> Result<ReadResult, RemoteReadError> {
    let bad = |reason: String| RemoteReadError::BadChunk { leader, reason };
    let items = parse_poll_response(body).map_err(|e| bad(e.to_string()))?;
    if items.is_empty() {
        return Ok(ReadResult {
            chunks: Vec::new(),
            start_offset: from,
            end_offset: from,
        });
    }
    let mut chunks: Vec<StoredChunk> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let count = match items.get(i + 1) {
            Some(next) => next.header.offset - item.header.offset,
            None => count_records(item.payload).map_err(|e| bad(e.to_string()))?,
        };
        let record_count = u32::try_from(count)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| bad(format!("{count} records at offset {}", item.header.offset)))?;
        chunks.push(StoredChunk {
            start_offset: item.header.offset,
            record_count,
            payload: body.slice_ref(item.payload),
        });
    }
    let end = chunks
        .last()
        .map_or(from, StoredChunk::end_offset)
        .max(from);
    Ok(ReadResult {
        chunks,
        start_offset: from,
        end_offset: end,
    })
}

/// Why a leader's chunk could not be counted.
#[derive(Debug, thiserror::Error)]
enum CountError {
    #[error(transparent)]
    Chunk(#[from] crate::storage::chunk::ChunkError),
    #[error(transparent)]
    Record(#[from] crate::wire::WireError),
}

/// The records in one chunk's payload (decompressed to count them).
fn count_records(payload: &[u8]) -> Result<i64, CountError> {
    let records = decode_chunk_records(payload)?;
    let mut n = 0i64;
    for r in RecordIter::new(&records) {
        r?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::poll::{PollItem, PollItemHeader, PollResponse};

    /// A chunk payload of `n` records: a zstd frame with a content checksum.
    fn payload(n: usize) -> Vec<u8> {
        let mut raw = Vec::new();
        for i in 0..n {
            crate::wire::record::encode_record(i as i64, b"body", &mut raw);
        }
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .unwrap();
        c.compress(&raw).unwrap()
    }

    fn item(offset: i64, payload: &[u8]) -> PollItem<'_> {
        PollItem {
            header: PollItemHeader {
                token: 7,
                range_index: 0,
                gen_version: 1,
                topic: "t",
                offset,
                payload_len: payload.len() as u32,
            },
            payload,
        }
    }

    #[test]
    fn a_leaders_answer_becomes_its_chunks_unchanged() {
        let (a, b) = (payload(3), payload(5));
        let mut body = Vec::new();
        PollResponse {
            items: vec![item(10, &a[..]), item(13, &b[..])],
        }
        .encode(&mut body);
        let body = Bytes::from(body);
        let r = chunks_of(1, 10, &body).unwrap();
        let got: Vec<(i64, u32)> = r
            .chunks
            .iter()
            .map(|c| (c.start_offset, c.record_count))
            .collect();
        assert_eq!(got, [(10, 3), (13, 5)]);
        assert_eq!(&r.chunks[1].payload[..], &b[..]);
        assert_eq!(r.end_offset, 18);
        assert!(chunks_of(1, 10, &Bytes::from_static(b"\x00\x01")).is_err());
        let empty = chunks_of(1, 4, &Bytes::from_static(b"\x00\x00")).unwrap();
        assert!(empty.chunks.is_empty() && empty.end_offset == 4);
    }
}
