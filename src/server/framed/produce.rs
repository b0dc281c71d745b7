//! PRODUCE on framed TCP: validate the body, pick the partition from the key (or the
//! connection's keyless partition), wait for room in the connection's and the shard's budgets,
//! hand the frame to the partition's shard, and answer PRODUCE_RESPONSE once it is durable (or
//! ERROR). The answer is sent from a detached task, so later frames are read meanwhile;
//! answers go out in completion order.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use super::errors::code_of;
use super::{Conn, Session};
use crate::cluster::forward::ForwardError;
use crate::cluster::Route;
use crate::ring::TopicLayout;
use crate::rt;
use crate::shard::msg::{FrameLayout, ProduceFrame};
use crate::shard::Shard;
use crate::wire::forward::ForwardedHead;
use crate::wire::produce::ProduceLayout;
use crate::wire::produce_compressed::CompressedLayout;
use crate::wire::{ErrorCode, Flags, FrameHeader, OpCode, WireError};

/// Serves one PRODUCE frame.
pub(super) async fn handle(
    shard: &Rc<Shard>,
    conn: &Conn<'_>,
    session: Option<&Session>,
    header: FrameHeader,
    body: Bytes,
) {
    let (outbox, in_flight) = (conn.outbox, conn.in_flight);
    let sid = header.stream_id;
    let read_at = Instant::now();
    let Some(s) = session else {
        return outbox.push_error(
            sid,
            ErrorCode::BadRequest,
            "PRODUCE before STARTUP: send STARTUP with the topic first",
        );
    };
    // A forwarding broker's frame starts with the partition and epoch it was routed to.
    let (body, routed) = match s.forwarded_by {
        None => (body, None),
        Some(_) => match ForwardedHead::decode(&body) {
            Ok((head, start)) => (body.slice(start..), Some(head)),
            Err(e) => return outbox.push_error(sid, e.code(), &e.to_string()),
        },
    };
    let layout = match Decoded::decode(&body, header.flags) {
        Ok(l) => l,
        Err(e) => return outbox.push_error(sid, e.code(), &e.to_string()),
    };
    let key = layout.key(&body);
    let partition = match routed {
        None if key.is_empty() => s.keyless_partition,
        None => s.topic.layout.partition_of_key(key),
        Some(head) => match check_routed(&s.topic.layout, head.partition, key) {
            Ok(j) => j,
            Err(why) => return outbox.push_error(sid, ErrorCode::BadRequest, &why.to_string()),
        },
    };
    // Backpressure: wait for room in this connection's and this shard's budgets before reading
    // further from the socket.
    let Ok(slot) = in_flight.clone().acquire_static_permit(1).await else {
        return;
    };
    let Ok(bytes) = shard
        .buffer
        .clone()
        .acquire_static_permit(body.len() as u64)
        .await
    else {
        return;
    };
    // Cluster mode: a partition this broker does not lead is written by its leader; one it
    // leads is written here at the epoch it was routed with (the writer's fence checks it).
    // A forwarded frame is written here or refused by the partition's fence, never forwarded
    // again: views that disagree cannot bounce a frame between brokers.
    let mut leader_epoch = routed.map_or(0, |head| head.leader_epoch);
    if let (None, Some(cluster)) = (routed, crate::cluster::installed()) {
        match cluster.route(&s.topic.name, partition) {
            Ok(Route::Local { epoch }) => leader_epoch = epoch,
            Ok(Route::Forward {
                leader,
                addr,
                epoch,
            }) => {
                let answer = cluster.forward(
                    leader,
                    &addr,
                    epoch,
                    &s.topic.name,
                    partition,
                    header.flags,
                    body,
                );
                let (outbox, metrics) = (outbox.clone(), shard.metrics.clone());
                return rt::spawn_detached(async move {
                    match answer.await {
                        Ok(Ok(())) => outbox.push_empty(OpCode::ProduceResponse, sid),
                        Ok(Err(e)) => outbox.push_error(sid, forwarded_code(&e), &e.to_string()),
                        Err(_) => {
                            outbox.push_error(sid, ErrorCode::Unavailable, "forwarding stopped")
                        }
                    }
                    metrics.ack.record(read_at.elapsed());
                    drop(bytes);
                    drop(slot);
                });
            }
            Err(e) => return outbox.push_error(sid, code_of(&e), &e.to_string()),
        }
    }
    let layout = match layout {
        Decoded::Plain(l) => FrameLayout::Plain(l),
        // Checked where it is stored (the leader, in cluster mode), before it is queued.
        Decoded::Compressed(l) => match shard.check_compressed(&body, l) {
            Ok(l) => l,
            Err(e) => return outbox.push_error(sid, code_of(&e), &e.to_string()),
        },
    };
    let frame = ProduceFrame {
        body,
        layout,
        received_us: rt::now_us(),
        leader_epoch,
    };
    let pending = match shard.submit(&s.topic, partition, frame).await {
        Ok(p) => p,
        Err(e) => return outbox.push_error(sid, code_of(&e), &e.to_string()),
    };
    let outbox = outbox.clone();
    let metrics = shard.metrics.clone();
    rt::spawn_detached(async move {
        match pending.wait().await {
            Ok(_) => outbox.push_empty(OpCode::ProduceResponse, sid),
            Err(e) => outbox.push_error(sid, code_of(&e), &e.to_string()),
        }
        metrics.ack.record(read_at.elapsed());
        drop(bytes);
        drop(slot);
    });
}

/// A PRODUCE body's shape, by its header's flags: the seed's messages, or (flag `0x08`) records
/// the producer compressed (`wire::produce_compressed`).
enum Decoded {
    Plain(ProduceLayout),
    Compressed(CompressedLayout),
}

impl Decoded {
    fn decode(body: &[u8], flags: u8) -> Result<Decoded, WireError> {
        let with_timestamp = flags & Flags::WITH_TIMESTAMP != 0;
        if flags & Flags::COMPRESSED == 0 {
            return Ok(Decoded::Plain(ProduceLayout::decode(body, with_timestamp)?));
        }
        if with_timestamp {
            return Err(WireError::Malformed(
                "flag 0x01 with 0x08: a compressed PRODUCE carries its timestamps in its records"
                    .into(),
            ));
        }
        Ok(Decoded::Compressed(CompressedLayout::decode(body)?))
    }

    fn key<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        match self {
            Decoded::Plain(l) => l.view(body).key,
            Decoded::Compressed(l) => l.key(body),
        }
    }
}

/// Why a forwarded frame's head cannot be right.
#[derive(Debug, thiserror::Error)]
enum Misrouted {
    #[error("a forwarded PRODUCE names partition {named}; the topic has {partitions}")]
    NoSuchPartition { named: u32, partitions: u32 },
    #[error("a forwarded PRODUCE names partition {named}, not its key's ({keys})")]
    NotTheKeys { named: u32, keys: u32 },
}

/// The partition a forwarded frame names, if it is one of the topic's and its key's.
fn check_routed(layout: &TopicLayout, j: u32, key: &[u8]) -> Result<u32, Misrouted> {
    let partitions = layout.partitions();
    if j >= partitions {
        return Err(Misrouted::NoSuchPartition {
            named: j,
            partitions,
        });
    }
    if !key.is_empty() && layout.partition_of_key(key) != j {
        return Err(Misrouted::NotTheKeys {
            named: j,
            keys: layout.partition_of_key(key),
        });
    }
    Ok(j)
}

/// The code a forwarded frame's failure is answered with: the leader's own, else retryable.
fn forwarded_code(e: &ForwardError) -> ErrorCode {
    match e {
        ForwardError::Refused { code, .. } => {
            ErrorCode::from_u8(*code).unwrap_or(ErrorCode::Unavailable)
        }
        other => code_of(other),
    }
}
