//! `Consume`: streams the records of a partition from an offset, then keeps waiting for new
//! ones. With the request metadata key `shardlog-start-time` (RFC 3339 or Unix milliseconds)
//! it starts instead at the first record at or after that time, and the request's offset is
//! not used. The one reader that decompresses chunks, since a `LogRecord` carries one record: each
//! chunk is decompressed once into a buffer that the records' values are sliced from (no
//! per-record copy), and the records are encoded in batches that go out under h2 flow control,
//! so a slow consumer holds at most one read's worth of chunks.

use bytes::{Bytes, BytesMut};
use prost::Message;

use crate::proto::log::{ConsumeRequest, LogRecord};
use crate::rt;
use crate::storage::chunk::{decode_payload, max_decoded_len};
use crate::storage::StoredChunk;
use crate::wire::record::RecordIter;
use crate::wire::time::parse_time_us;

use super::super::call::{Requests, Responder};
use super::super::status::{Code, Status};
use super::super::CallCtx;
use super::target;

/// Compressed bytes asked of one read.
const READ_BYTES: usize = 1 << 20;
/// How long one read waits at the end of the log before asking again.
const TAIL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Encoded responses gathered before they are handed to h2.
const SEND_BATCH: usize = 256 << 10;

/// The request metadata key that starts a `Consume` at a time instead of the request's offset.
pub const START_TIME_KEY: &str = "shardlog-start-time";

/// The time of [`START_TIME_KEY`] (RFC 3339 or Unix milliseconds) in μs, if the call has one.
fn start_time(ctx: &CallCtx) -> Result<Option<i64>, Status> {
    let Some(v) = ctx.metadata.get(START_TIME_KEY) else {
        return Ok(None);
    };
    let text = v.to_str().map_err(|_| {
        Status::invalid_argument(format!(
            "metadata '{START_TIME_KEY}' is not printable ASCII"
        ))
    })?;
    parse_time_us(text)
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("metadata '{START_TIME_KEY}': {e}")))
}

/// `Consume(ConsumeRequest) returns stream LogRecord`: runs until the client cancels or the
/// deadline passes (both handled by the caller, which drops this future).
pub async fn consume(
    ctx: &CallCtx,
    requests: &mut Requests,
    responder: &Responder,
) -> Result<(), Status> {
    let req = ConsumeRequest::decode(requests.single().await?)?;
    let start_time = start_time(ctx)?;
    let target = target(ctx).await?;
    let mut next = match start_time {
        Some(t_us) => {
            ctx.shard
                .offset_for_time(&target.topic, target.partition, t_us)
                .await?
                .offset
        }
        None => i64::try_from(req.offset).map_err(|_| {
            Status::invalid_argument(format!("offset {} is out of range", req.offset))
        })?,
    };
    let max_frame = ctx.shard.config.max_frame_bytes();
    let mut out = BytesMut::new();
    // The first read does not wait, so that a bad offset is answered at once (trailers-only);
    // then the headers go out and the call tails the log.
    let mut wait = None;
    loop {
        let read = ctx
            .shard
            .read(&target.topic, target.partition, next, READ_BYTES, wait)
            .await?;
        if wait.is_none() {
            responder.send_headers()?;
            wait = Some(TAIL_WAIT);
        }
        for chunk in &read.chunks {
            if chunk.end_offset() <= next {
                continue;
            }
            let records = decompress(chunk, max_frame)?;
            for (i, record) in RecordIter::new(&records).enumerate() {
                let record = record.map_err(|e| {
                    Status::internal(format!("chunk at offset {}: {e}", chunk.start_offset))
                })?;
                let offset = chunk.start_offset + i as i64;
                if offset < next {
                    continue;
                }
                let start = record.body.as_ptr() as usize - records.as_ptr() as usize;
                let msg = LogRecord {
                    offset: offset as u64,
                    timestamp: record.timestamp_us.max(0) as u64,
                    value: records.slice(start..start + record.body.len()),
                };
                responder.encode(&msg, &mut out)?;
                next = offset + 1;
                if out.len() >= SEND_BATCH {
                    responder.send_encoded(out.split().freeze()).await?;
                }
            }
            if !out.is_empty() {
                responder.send_encoded(out.split().freeze()).await?;
            }
            rt::yield_if_needed().await;
        }
    }
}

/// Decompresses a chunk's payload (zstd verifies the frame's content checksum), refusing to
/// produce more than a chunk of its record count can hold under this broker's frame limit:
/// a payload that decompresses beyond it is corrupt, answered DATA_LOSS like a bad checksum.
fn decompress(chunk: &StoredChunk, max_frame: usize) -> Result<Bytes, Status> {
    let limit = max_decoded_len(Some(chunk.record_count), max_frame);
    decode_payload(&chunk.payload, limit)
        .map(Bytes::from)
        .map_err(|e| {
            Status::new(
                Code::DataLoss,
                format!(
                    "chunk at offset {} does not decompress: {e}",
                    chunk.start_offset
                ),
            )
        })
}
