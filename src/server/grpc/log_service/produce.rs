//! `Produce`: the streamed values become framed-format PRODUCE frames, submitted in order
//! (in cluster mode, to a partition another broker leads: forwarded to it in order).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;

use crate::cluster::{ClusterError, Route};
use crate::error::Classify;
use crate::proto::log::{ProduceRequest, ProduceResponse};
use crate::rt::{self, StaticPermit};
use crate::shard::Shard;
use crate::stats::{Protocol, RequestType};
use crate::wire::produce::encode_produce_body;

use super::super::call::{Requests, Responder};
use super::super::status::Status;
use super::super::CallCtx;
use super::{target, Target};

/// Frames one Produce call may have submitted and not yet seen acknowledged; past it, the call
/// stops reading (and h2 flow control stops the client).
const MAX_FRAMES_IN_FLIGHT: usize = 16;

/// A submitted frame and the share of the shard's buffer budget it holds until acknowledged.
/// Its acknowledgement is awaited by a task of its own, which times it as the moment it comes
/// (`ack_latency_seconds`, as for a framed PRODUCE), however late the call looks at it.
struct InFlight {
    ack: rt::Task<Result<(), Status>>,
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
    // Cluster mode: written here where this broker leads (at the epoch routed with), else
    // forwarded to the leader and answered with its answer.
    let partition = target.keyless.unwrap_or(target.partition);
    let route = match crate::cluster::installed() {
        None => Route::Local { epoch: 0 },
        Some(cluster) => cluster
            .route(&target.topic.name, partition)
            .map_err(|e| status_of(&e))?,
    };
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
                f.ack.await?;
            }
        }
        in_flight.push_back(submit(shard, &target, partition, &route, &values, size).await?);
    }
    while let Some(f) = in_flight.pop_front() {
        f.ack.await?;
    }
    responder.send(&ProduceResponse {}).await
}

fn decode_value(msg: Bytes) -> Result<Bytes, Status> {
    // `bytes` fields decode as slices of `msg`: no copy.
    Ok(ProduceRequest::decode(msg)?.value)
}

/// Builds one frame of `values` (whose `len u32 | value` runs add up to `size` bytes) and
/// hands it to partition `j`, here or (cluster mode) to its leader.
async fn submit(
    shard: &Shard,
    target: &Target,
    j: u32,
    route: &Route,
    values: &[Bytes],
    size: usize,
) -> Result<InFlight, Status> {
    let key = &target.key[..];
    let started = Instant::now();
    shard.metrics.request(Protocol::Grpc, RequestType::Produce);
    let metrics = shard.metrics.clone();
    let leader_epoch = match route {
        Route::Local { epoch } => *epoch,
        Route::Forward {
            leader,
            addr,
            epoch,
        } => {
            let Some(cluster) = crate::cluster::installed() else {
                return Err(Status::internal("a forwarding route without a cluster"));
            };
            // A forwarded frame holds this shard's buffer budget until the leader answers, as a
            // local one does until it is durable (and as framed forwarding does).
            let len = 1 + key.len() + size;
            let permit = shard.reserve_buffer(len).await?;
            let mut body = Vec::with_capacity(len);
            encode_produce_body(None, key, values.iter().map(|v| &v[..]), &mut body);
            let answer =
                cluster.forward(*leader, addr, *epoch, &target.topic.name, j, 0, body.into());
            let ack = rt::spawn(async move {
                let acked = match answer.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(status_of(&e)),
                    Err(_) => Err(status_of(&ClusterError::Stopped)),
                };
                metrics.ack.record(started.elapsed());
                acked
            });
            return Ok(InFlight {
                ack,
                _budget: permit,
            });
        }
    };
    let (ack, budget) = shard
        .submit_messages(
            &target.topic,
            j,
            leader_epoch,
            None,
            key,
            values.iter().map(|v| &v[..]),
            1 + key.len() + size,
        )
        .await?;
    let ack = rt::spawn(async move {
        let acked = ack.wait().await;
        metrics.ack.record(started.elapsed());
        acked.map(|_| ()).map_err(Status::from)
    });
    Ok(InFlight {
        ack,
        _budget: budget,
    })
}

/// The status of an error of a layer below, by its class.
fn status_of(e: &impl Classify) -> Status {
    Status::new(super::super::status::code(e.class()), e.to_string())
}
