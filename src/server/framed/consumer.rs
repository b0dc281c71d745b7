//! The consumer operations on framed TCP: REGISTER → READY, POLL → POLL_RESPONSE (its body is
//! exactly the seed's poll response, written with vectored I/O), COMMIT → READY,
//! GOODBYE → READY; failures are ERROR frames. A connection serves its consumer operations one
//! at a time, in order (a long poll holds the connection's later frames until it answers),
//! and has at most one poll response waiting to be written.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::connection::Outbox;
use crate::consumer::api;
use crate::consumer::poll::PollResponse;
use crate::rt;
use crate::shard::Shard;
use crate::wire::commit::CommitBody;
use crate::wire::consumer::{ConsumerIdBody, PollBody, RegisterBody};
use crate::wire::header::VERSION;
use crate::wire::{FrameHeader, OpCode};

/// Queues a POLL_RESPONSE frame (its body written as the response's parts, with vectored
/// I/O). `permit` is the connection's one poll-response slot, released once it is written.
pub fn push_poll_response(
    outbox: &Rc<Outbox>,
    sid: u16,
    resp: PollResponse,
    permit: rt::StaticPermit,
) {
    let header = FrameHeader {
        version: VERSION,
        flags: 0,
        stream_id: sid,
        opcode: OpCode::PollResponse as u8,
        body_len: resp.len as u32,
    };
    let mut parts = Vec::with_capacity(resp.parts.len() + 1);
    parts.push(Bytes::copy_from_slice(&header.encode()));
    parts.extend(resp.parts);
    outbox.push_parts(parts, permit);
}

/// Serves one consumer frame (`op` is REGISTER, POLL, COMMIT or GOODBYE).
pub async fn handle(
    shard: &Rc<Shard>,
    outbox: &Rc<Outbox>,
    poll_slot: &Rc<rt::Semaphore>,
    op: OpCode,
    sid: u16,
    body: &[u8],
) {
    let result = match op {
        OpCode::Register => match RegisterBody::decode(body) {
            Ok(b) => api::register(shard, b).await,
            Err(e) => return outbox.push_error(sid, e.code(), &e.to_string()),
        },
        OpCode::Poll => {
            let read_at = Instant::now();
            let b = match PollBody::decode(body) {
                Ok(b) => b,
                Err(e) => return outbox.push_error(sid, e.code(), &e.to_string()),
            };
            // Wait until this connection's previous poll response has been written.
            let Ok(permit) = poll_slot.clone().acquire_static_permit(1).await else {
                return;
            };
            let wait = b.max_wait_ms.map(|ms| Duration::from_millis(ms as u64));
            let polled = api::poll(shard, &b.consumer_id, wait).await;
            shard.metrics.poll.record(read_at.elapsed());
            match polled {
                Ok(resp) => return push_poll_response(outbox, sid, resp, permit),
                Err(e) => Err(e),
            }
        }
        OpCode::Commit => match CommitBody::decode(body) {
            Ok(CommitBody {
                consumer_id,
                positions: None,
            }) => api::commit(shard, &consumer_id).await,
            Ok(CommitBody {
                consumer_id,
                positions: Some(ps),
            }) => api::commit_positions(shard, &consumer_id, &ps).await,
            Err(e) => return outbox.push_error(sid, e.code(), &e.to_string()),
        },
        OpCode::Goodbye => match ConsumerIdBody::decode(body, "GOODBYE") {
            Ok(b) => api::goodbye(shard, &b.consumer_id).await,
            Err(e) => return outbox.push_error(sid, e.code(), &e.to_string()),
        },
        _ => return,
    };
    match result {
        Ok(()) => outbox.push_empty(OpCode::Ready, sid),
        Err(e) => outbox.push_error(sid, super::errors::code_of(&e), &e.to_string()),
    }
}
