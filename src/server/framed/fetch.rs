//! FETCH → POLL_RESPONSE: one partition from an offset, without a consumer group (a reader
//! that keeps its own position). The topic must exist: a read never creates one. The answer
//! is a poll response of the stored chunks from the one holding `offset`, at most
//! `min(max bytes, --max-poll-bytes)` of payloads (at least one chunk if there is any); an
//! offset before the partition's first (removed by retention) is OUT_OF_RANGE, a partition
//! index past the topic's is NOT_FOUND.
//!
//! With header flag 0x02 (`Flags::BY_TIME`) the offset field is a timestamp (μs): the owning
//! shard's time index gives the first offset at or after it, and the read goes on from there
//! (the first chunk may start before it; a reader skips the records older than the time).
//!
//! In cluster mode the partition is read at its leader (over a broker-to-broker FETCH, the
//! leader's chunks passed on as they are), unless header flag 0x04 (`Flags::AT_THIS_BROKER`)
//! asks for this broker's own log: what brokers send each other, so a read is never forwarded
//! twice.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::connection::Outbox;
use super::consumer::push_poll_response;
use crate::consumer::api;
use crate::consumer::fetch::{read_at_leader, read_here};
use crate::consumer::poll::PollAssembler;
use crate::rt;
use crate::shard::Shard;
use crate::wire::fetch::FetchBody;
use crate::wire::Flags;

/// Serves one FETCH frame.
pub async fn handle(
    shard: &Rc<Shard>,
    outbox: &Rc<Outbox>,
    poll_slot: &Rc<rt::Semaphore>,
    sid: u16,
    flags: u8,
    body: &[u8],
) {
    let started = Instant::now();
    let req = match FetchBody::decode(body, flags) {
        Ok(b) => b,
        Err(e) => return outbox.push_error(sid, e.code(), &e.to_string()),
    };
    let topic = match shard.existing_topic(&req.topic).await {
        Ok(t) => t,
        Err(e) => return outbox.push_error(sid, super::errors::code_of(&e), &e.to_string()),
    };
    // Wait until this connection's previous poll response has been written.
    let Ok(permit) = poll_slot.clone().acquire_static_permit(1).await else {
        return;
    };
    let max_bytes = (req.max_bytes as usize).clamp(1, shard.config.max_poll_bytes);
    // At most what a POLL may wait.
    let wait = req
        .max_wait_ms
        .map(|ms| Duration::from_millis(ms.into()).min(api::MAX_POLL_WAIT));
    let (j, from) = (req.partition, req.from);
    let read = if flags & Flags::AT_THIS_BROKER != 0 {
        read_here(shard, &topic, j, from, max_bytes, wait).await
    } else {
        read_at_leader(shard, &topic, j, from, max_bytes, wait).await
    };
    shard.metrics.poll.record(started.elapsed());
    let read = match read {
        Ok(r) => r,
        Err(e) => return outbox.push_error(sid, super::errors::code_of(&e), &e.to_string()),
    };
    let id = topic.layout.partition_id(req.partition);
    let mut asm = PollAssembler::new(max_bytes);
    for chunk in &read.chunks {
        if !asm.try_push(&topic.name, id, chunk) {
            break;
        }
    }
    push_poll_response(outbox, sid, asm.finish(), permit);
}
