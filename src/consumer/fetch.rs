//! The data half of a poll, on the shard serving the client: read every planned partition
//! from its owning shard in parallel, wait for new data if asked (long poll), and assemble the
//! response from the chunks exactly as stored. A long poll ends early, with what it has, when
//! the serving shard stops (graceful shutdown).

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::assign::PartitionKey;
use super::group::ReadTarget;
use super::poll::{PollAssembler, PollResponse};
use super::ConsumerError;
use crate::rt;
use crate::shard::msg::ReadResult;
use crate::shard::{ReadError, Shard, TopicState};

/// One partition's read.
struct Fetched {
    topic: Rc<TopicState>,
    partition: u32,
    /// The committed offset the plan gave (`None`: earliest).
    planned: Option<i64>,
    /// Where the read actually started: the plan's offset clamped into the log's range.
    from: i64,
    result: ReadResult,
}

/// Reads the planned partitions and assembles the response. Returns it with the position to
/// record for each partition whose position moved.
pub async fn fetch(
    shard: &Rc<Shard>,
    targets: Vec<ReadTarget>,
    max_bytes: usize,
    wait: Option<Duration>,
) -> Result<(PollResponse, Vec<(PartitionKey, i64)>), ConsumerError> {
    if targets.is_empty() {
        if let Some(w) = wait {
            // Nothing assigned: wait anyway, so a long-polling client does not spin (but not
            // past the start of a graceful shutdown).
            futures_lite::future::or(rt::sleep(w), shard.lifecycle.stopped()).await;
        }
        return Ok((PollAssembler::new(max_bytes).finish(), Vec::new()));
    }
    let per_partition = (max_bytes / targets.len()).max(1);
    let first = join_all(targets.iter().map(|t| fetch_one(shard, t, per_partition))).await;
    let mut fetched = Vec::with_capacity(first.len());
    let mut first_error = None;
    for (t, r) in targets.iter().zip(first) {
        match r {
            Ok(f) => fetched.push(f),
            Err(e) => {
                tracing::warn!(topic = t.topic, partition = t.partition, error = %e, "poll read failed");
                first_error.get_or_insert(e);
            }
        }
    }
    if let (true, Some(e)) = (fetched.is_empty(), first_error) {
        return Err(e);
    }
    let nothing = fetched.iter().all(|f| f.result.chunks.is_empty());
    if let Some(w) = wait.filter(|w| nothing && !w.is_zero() && !shard.lifecycle.is_stopping()) {
        long_poll(shard, &mut fetched, per_partition, w).await;
    }
    Ok(assemble(&fetched, max_bytes))
}

/// Waits up to `wait` for any partition to get data past where it was read; fills in the
/// reads that found some. Stops waiting when the serving shard stops (the reads themselves also
/// end when their owning shards stop); the reads still empty then stay as they were.
async fn long_poll(shard: &Rc<Shard>, fetched: &mut [Fetched], max_bytes: usize, wait: Duration) {
    let mut waits: FuturesUnordered<_> = fetched
        .iter()
        .enumerate()
        .map(|(i, f)| async move {
            let r = shard
                .read(&f.topic, f.partition, f.from, max_bytes, Some(wait))
                .await;
            (i, r)
        })
        .collect();
    let mut got = Vec::new();
    let collect = async {
        while let Some((i, r)) = waits.next().await {
            if let Ok(r) = r.filter_data() {
                got.push((i, r));
                // Take whatever else is ready right now, then answer.
                while let Some(Some((i, r))) = futures_lite::future::poll_once(waits.next()).await {
                    if let Ok(r) = r.filter_data() {
                        got.push((i, r));
                    }
                }
                break;
            }
        }
    };
    futures_lite::future::or(collect, shard.lifecycle.stopped()).await;
    drop(waits);
    for (i, r) in got {
        fetched[i].result = r;
    }
}

trait FilterData {
    fn filter_data(self) -> Result<ReadResult, ()>;
}

impl FilterData for Result<ReadResult, ReadError> {
    /// A read that returned chunks.
    fn filter_data(self) -> Result<ReadResult, ()> {
        match self {
            Ok(r) if !r.chunks.is_empty() => Ok(r),
            _ => Err(()),
        }
    }
}

/// Reads one planned partition without waiting. An offset before the log's start (retention)
/// moves up to the start; one past its end moves down to the end.
async fn fetch_one(
    shard: &Rc<Shard>,
    t: &ReadTarget,
    max_bytes: usize,
) -> Result<Fetched, ConsumerError> {
    let topic = shard.topic(&t.topic).await?;
    let mut from = t.offset.unwrap_or(0).max(0);
    for _ in 0..3 {
        match shard.read(&topic, t.partition, from, max_bytes, None).await {
            Ok(result) => {
                return Ok(Fetched {
                    from: from.min(result.end_offset),
                    topic,
                    partition: t.partition,
                    planned: t.offset,
                    result,
                })
            }
            Err(ReadError::OutOfRange { earliest, .. }) => from = earliest,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ConsumerError::StartMoving {
        topic: t.topic.clone(),
        partition: t.partition,
    })
}

/// Builds the response in plan order and computes the new positions.
fn assemble(fetched: &[Fetched], max_bytes: usize) -> (PollResponse, Vec<(PartitionKey, i64)>) {
    let mut asm = PollAssembler::new(max_bytes);
    let mut positions = Vec::new();
    for f in fetched {
        let id = f.topic.layout.partition_id(f.partition);
        let mut position = f.from;
        let mut bytes = 0;
        for chunk in &f.result.chunks {
            if !asm.try_push(&f.topic.name, id, chunk) {
                break;
            }
            position = chunk.start_offset + chunk.record_count as i64;
            bytes += chunk.payload.len() as u64;
        }
        // Messages from where the read started (a first chunk may begin before it).
        let messages = (position - f.from).max(0) as u64;
        f.topic.metrics.polled(messages, bytes);
        if Some(position) != f.planned {
            positions.push(((f.topic.name.clone(), f.partition), position));
        }
    }
    (asm.finish(), positions)
}
