//! `atomix.log.LogService`: the seed's log service over one partition of a topic.
//!
//! Request metadata picks the partition: `topic` (default `default`), then `partition-key`
//! (routed like a framed producer's key, so one key's messages share a partition whichever
//! interface wrote them) or `partition` (an index into the topic's partitions). With neither,
//! the call addresses partition 0, so an un-keyed gRPC log has one total order.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use prost::Message;

use crate::proto::log::{ProduceRequest, ProduceResponse};
use crate::rt::StaticPermit;
use crate::shard::msg::ProduceFrame;
use crate::shard::{now_us, PendingAck, Shard, TopicState};
use crate::wire::produce::{encode_produce_body, ProduceLayout};
use crate::wire::startup::{validate_topic, DEFAULT_TOPIC};

use super::call::{Requests, Responder};
use super::status::{Code, Status};
use super::CallCtx;

/// Frames one Produce call may have submitted and not yet seen acknowledged; past it, the call
/// stops reading (and h2 flow control stops the client).
const MAX_FRAMES_IN_FLIGHT: usize = 16;

/// The longest partition key (the framed body's key length is a u8).
const MAX_KEY_LEN: usize = 255;

/// The partition a call addresses.
pub struct Target {
    pub topic: Rc<TopicState>,
    pub partition: u32,
    /// The partition key, stored in the frame bodies like a framed producer's.
    pub key: Bytes,
}

/// Reads `topic`, `partition-key` and `partition` from the metadata.
pub async fn target(ctx: &CallCtx) -> Result<Target, Status> {
    let md = &ctx.metadata;
    let text = |name: &str| -> Result<Option<&str>, Status> {
        md.get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    Status::invalid_argument(format!("metadata '{name}' is not printable ASCII"))
                })
            })
            .transpose()
    };
    let topic = text("topic")?.unwrap_or(DEFAULT_TOPIC);
    validate_topic(topic).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let state = ctx.shard.topic(topic).await?;
    let partitions = state.layout.partitions();
    let key = md
        .get("partition-key")
        .map(|v| Bytes::copy_from_slice(v.as_bytes()))
        .unwrap_or_default();
    let partition = match (key.is_empty(), text("partition")?) {
        (false, Some(_)) => {
            return Err(Status::invalid_argument(
                "give either partition-key or partition, not both",
            ))
        }
        (false, None) if key.len() > MAX_KEY_LEN => {
            return Err(Status::invalid_argument(format!(
                "partition-key is {} bytes long; the limit is {MAX_KEY_LEN}",
                key.len()
            )))
        }
        (false, None) => state.layout.partition_of_key(&key),
        (true, Some(p)) => match p.trim().parse::<u32>() {
            Ok(j) if j < partitions => j,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "partition '{p}' is not a partition of topic '{topic}', which has \
                     partitions 0 to {}",
                    partitions - 1
                )))
            }
        },
        (true, None) => 0,
    };
    Ok(Target {
        topic: state,
        partition,
        key,
    })
}

/// A submitted frame and the share of the shard's buffer budget it holds until acknowledged.
struct InFlight {
    ack: PendingAck,
    _budget: StaticPermit,
}

/// `Produce(stream ProduceRequest) returns ProduceResponse`: appends the values in order and
/// answers once every one of them is durable. The values that arrived together become one
/// frame (one body in the framed PRODUCE format, submitted like a framed producer's), so a
/// fast client gets batching for free; frames are submitted in order, which keeps the values
/// in order in the partition.
pub async fn produce(
    ctx: &CallCtx,
    requests: &mut Requests,
    responder: &Responder,
) -> Result<(), Status> {
    let target = target(ctx).await?;
    let shard = &ctx.shard;
    let max_frame = shard.config.max_frame_size as usize;
    let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(MAX_FRAMES_IN_FLIGHT);
    let mut values: Vec<Bytes> = Vec::new();
    let mut carry: Option<Bytes> = None;
    loop {
        // Gather the values that have arrived: wait for one, then take what is already here.
        values.clear();
        let mut size = 0;
        let first = match carry.take() {
            Some(v) => v,
            None => match requests.next().await? {
                Some(msg) => decode_value(msg)?,
                None => break,
            },
        };
        size += 4 + first.len();
        values.push(first);
        while let Some(msg) = requests.try_next()? {
            let v = decode_value(msg)?;
            if size + 4 + v.len() > max_frame {
                carry = Some(v);
                break;
            }
            size += 4 + v.len();
            values.push(v);
        }
        if in_flight.len() >= MAX_FRAMES_IN_FLIGHT {
            if let Some(f) = in_flight.pop_front() {
                f.ack.wait().await?;
            }
        }
        in_flight.push_back(submit(shard, &target, &values, size).await?);
    }
    while let Some(f) = in_flight.pop_front() {
        f.ack.wait().await?;
    }
    responder.send(&ProduceResponse {}).await
}

fn decode_value(msg: Bytes) -> Result<Bytes, Status> {
    // `bytes` fields decode as slices of `msg`: no copy.
    Ok(ProduceRequest::decode(msg)?.value)
}

/// Builds one frame of `values` (whose `len u32 | value` runs add up to `size` bytes) and
/// hands it to the partition.
async fn submit(
    shard: &Shard,
    target: &Target,
    values: &[Bytes],
    size: usize,
) -> Result<InFlight, Status> {
    let key = &target.key[..];
    let mut body = Vec::with_capacity(1 + key.len() + size);
    encode_produce_body(None, key, values.iter().map(|v| &v[..]), &mut body);
    let layout = ProduceLayout {
        timestamp: None,
        key_start: 1,
        key_len: key.len(),
        messages_start: 1 + key.len(),
        count: values.len() as u32,
    };
    // The same per-shard budget framed connections draw from: when acknowledgements lag,
    // every interface slows down together.
    let budget = (body.len() as u64).min(shard.config.shard_buffer_bytes);
    let budget = shard
        .buffer
        .clone()
        .acquire_static_permit(budget)
        .await
        .map_err(|_| Status::new(Code::Unavailable, "the shard is shutting down"))?;
    let frame = ProduceFrame {
        body: Bytes::from(body),
        layout,
        received_us: now_us(),
    };
    let ack = shard.submit(&target.topic, target.partition, frame).await?;
    Ok(InFlight {
        ack,
        _budget: budget,
    })
}

/// `Consume(ConsumeRequest) returns stream LogRecord`: waits for the shard read API.
pub async fn consume(
    ctx: &CallCtx,
    requests: &mut Requests,
    _responder: &Responder,
) -> Result<(), Status> {
    let _req = crate::proto::log::ConsumeRequest::decode(requests.single().await?)?;
    let _target = target(ctx).await?;
    Err(Status::unimplemented(
        "Consume is not available yet on this broker build",
    ))
}
