//! The data half of a poll, on the shard serving the client: read the planned partitions from
//! their owning shards, a few at a time, until the poll's byte budget is spent, wait for new
//! data if asked (long poll), and assemble the response from the chunks exactly as stored. A
//! long poll ends early, with what it has, when the serving shard stops (graceful shutdown).
//!
//! A read returns at least one whole chunk, however small its share of the budget, and a cold
//! chunk (read from disk) is allocated whole: reading every partition at once could hold
//! `partitions × chunk size` for one poll. So reads are issued in order, at most
//! [`PARALLEL_READS`] at a time, and no new one starts once the bytes returned reach the budget.
//! The partitions left unread record nothing and are read by a later poll; the starting
//! partition rotates from poll to poll so that partitions early in the plan do not starve the
//! others. A read that fails is left out while the others bring records; a poll that brings
//! none answers with the error.
//!
//! In cluster mode a partition another broker leads is read there ([`read_partition`]): a
//! FETCH to its leader, whose stored chunks come back as they are and go into this poll's
//! response unchanged.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, FuturesUnordered, StreamExt};

use super::group::ReadTarget;
use super::poll::{PollAssembler, PollResponse, Positions};
use super::ConsumerError;
use crate::cluster::remote_read::{RemoteRead, RemoteReadError};
use crate::cluster::Route;
use crate::rt;
use crate::shard::msg::ReadResult;
use crate::shard::{ReadError, Shard, TopicState};
use crate::wire::fetch::FetchFrom;
use crate::wire::ErrorCode;

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

/// Reads the planned partitions and assembles the response. Returns it with the positions its
/// items take their partitions to.
pub async fn fetch(
    shard: &Rc<Shard>,
    targets: Vec<ReadTarget>,
    max_bytes: usize,
    wait: Option<Duration>,
) -> Result<(PollResponse, Positions), ConsumerError> {
    if targets.is_empty() {
        if let Some(w) = wait {
            // Nothing assigned: wait anyway, so a long-polling client does not spin (but not
            // past the start of a graceful shutdown).
            futures_lite::future::or(rt::sleep(w), shard.lifecycle.stopped()).await;
        }
        return Ok((PollAssembler::new(max_bytes).finish(), Positions::default()));
    }
    let per_partition = (max_bytes / targets.len()).max(1);
    let first = next_start(targets.len());
    let (mut fetched, mut first_error) =
        read_within_budget(shard, &targets, first, per_partition, max_bytes).await;
    if fetched.is_empty() {
        if let Some(e) = first_error.take() {
            return Err(e);
        }
    }
    let nothing = |fetched: &[Fetched]| fetched.iter().all(|f| f.result.chunks.is_empty());
    if let Some(w) =
        wait.filter(|w| nothing(&fetched) && !w.is_zero() && !shard.lifecycle.is_stopping())
    {
        long_poll(shard, &mut fetched, per_partition, w).await?;
    }
    // A partition that cannot be read must not go unnoticed behind the others: when the poll
    // brings nothing else (after its long wait, which paces a client that polls again), the
    // read error is the answer.
    if let Some(e) = first_error.filter(|_| nothing(&fetched)) {
        return Err(e);
    }
    for f in &mut fetched {
        trim_first_chunk(shard, f);
    }
    Ok(assemble(&fetched, max_bytes))
}

/// A read returns whole chunks, the first of which may begin before the read's position: a
/// committed position inside a chunk (a commit of explicit positions). Its records before the
/// position were processed; the consumer must not get them again, so that chunk alone is
/// decompressed and compressed again without them (a millisecond or so, once per such
/// commit; positions from whole polls are chunk boundaries and never come here). A chunk
/// that cannot be trimmed is sent whole (the records are the consumer's at least once).
fn trim_first_chunk(shard: &Shard, f: &mut Fetched) {
    let Some(first) = f.result.chunks.first() else {
        return;
    };
    if first.start_offset >= f.from || first.end_offset() <= f.from {
        return;
    }
    let (level, max_frame) = (shard.config.zstd_level, shard.config.max_frame_bytes());
    match crate::storage::chunk::trim_front(first, f.from, level, max_frame) {
        Ok(trimmed) => f.result.chunks[0] = trimmed,
        Err(e) => tracing::warn!(topic = %f.topic.name, partition = f.partition, error = %e,
            "could not trim a chunk to the committed position; sending it whole"),
    }
}

/// Reads in flight at once for one poll. Each may return a whole chunk larger than the budget
/// (a cold read allocates it), so this bounds a poll's memory to about this many chunks beyond
/// its budget; reads served from memory are quick, so the bound costs the hot path little.
pub(crate) const PARALLEL_READS: usize = 4;

thread_local! {
    /// Polls served by this shard (thread) so far: picks each poll's first partition.
    static POLLS: Cell<u64> = const { Cell::new(0) };
}

/// The index of the planned partition this poll reads first, among `n`: the shard's poll
/// count, scrambled (splitmix64), so that each partition comes first equally often even when
/// several consumers' polls interleave on one shard (a plain counter shared by two
/// alternating consumers would give each only every other start, and partitions behind a
/// big chunk would never be read).
fn next_start(n: usize) -> usize {
    let k = POLLS.with(|c| {
        let k = c.get();
        c.set(k.wrapping_add(1));
        k
    });
    let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % n.max(1) as u64) as usize
}

/// Reads `targets` starting with index `first` and wrapping around, each asking for `ask`
/// bytes, at most [`PARALLEL_READS`] at a time, in that order; starts no new read once the
/// bytes returned reach `budget`. Returns the reads that succeeded, in issue order (partitions
/// not read are left out and keep their position), and the first error.
async fn read_within_budget(
    shard: &Rc<Shard>,
    targets: &[ReadTarget],
    first: usize,
    ask: usize,
    budget: usize,
) -> (Vec<Fetched>, Option<ConsumerError>) {
    let n = targets.len();
    let mut order = (0..n).map(|i| &targets[(first + i) % n]);
    let mut in_flight = FuturesOrdered::new();
    let mut fetched = Vec::new();
    let mut first_error = None;
    let mut returned = 0usize;
    loop {
        while in_flight.len() < PARALLEL_READS && returned < budget {
            let Some(t) = order.next() else { break };
            in_flight.push_back(async move { (t, fetch_one(shard, t, ask).await) });
        }
        let Some((t, r)) = in_flight.next().await else {
            break;
        };
        match r {
            Ok(f) => {
                returned =
                    returned.saturating_add(f.result.chunks.iter().map(|c| c.payload.len()).sum());
                fetched.push(f);
            }
            Err(e) => {
                tracing::warn!(topic = t.topic, partition = t.partition, error = %e, "poll read failed");
                first_error.get_or_insert(e);
            }
        }
    }
    (fetched, first_error)
}

/// Waits up to `wait` for any partition to get data past where it was read; fills in the
/// reads that found some. Stops waiting when the serving shard stops (the reads themselves also
/// end when their owning shards stop); the reads still empty then stay as they were. A topic
/// deleted meanwhile ends the wait with its error.
async fn long_poll(
    shard: &Rc<Shard>,
    fetched: &mut [Fetched],
    max_bytes: usize,
    wait: Duration,
) -> Result<(), ConsumerError> {
    let mut waits: FuturesUnordered<_> = fetched
        .iter()
        .enumerate()
        .map(|(i, f)| async move {
            let r =
                read_partition(shard, &f.topic, f.partition, f.from, max_bytes, Some(wait)).await;
            (i, r)
        })
        .collect();
    let mut got = Vec::new();
    let mut deleted = None;
    let collect = async {
        while let Some((i, r)) = waits.next().await {
            if let Err(e @ ReadError::Topic(_)) = r {
                deleted = Some(e);
                break;
            }
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
    if let Some(e) = deleted {
        return Err(e.into());
    }
    for (i, r) in got {
        fetched[i].result = r;
    }
    Ok(())
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
    // Never created here: a topic deleted since the plan was made stays deleted.
    let topic = shard.existing_topic(&t.topic).await?;
    let mut from = t.offset.unwrap_or(0).max(0);
    for _ in 0..3 {
        match read_partition(shard, &topic, t.partition, from, max_bytes, None).await {
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

/// Reads partition `j` of `topic` from offset `from`, at its leader ([`read_at_leader`]).
async fn read_partition(
    shard: &Rc<Shard>,
    topic: &TopicState,
    j: u32,
    from: i64,
    max_bytes: usize,
    wait: Option<Duration>,
) -> Result<ReadResult, ReadError> {
    let from = FetchFrom::Offset(from);
    read_at_leader(shard, topic, j, from, max_bytes, wait).await
}

/// Reads partition `j` of `topic` from `from` (an offset, or the first record at or after a
/// time): on its owning shard here, or, in cluster mode, at the broker etcd names its leader
/// (refused, retryably, when that broker is down or this one does not hold its lease). A
/// poll's reads and a FETCH without [`crate::wire::Flags::AT_THIS_BROKER`] come here.
pub async fn read_at_leader(
    shard: &Rc<Shard>,
    topic: &TopicState,
    j: u32,
    from: FetchFrom,
    max_bytes: usize,
    wait: Option<Duration>,
) -> Result<ReadResult, ReadError> {
    read_routed(shard, topic, j, from, max_bytes, wait, true).await
}

/// Reads partition `j` of `topic` from `from` in this broker's own log, never forwarded. In
/// cluster mode only while this broker leads it ([`ReadError::NotLeader`] otherwise): a
/// partition is served only by its leader.
pub async fn read_here(
    shard: &Rc<Shard>,
    topic: &TopicState,
    j: u32,
    from: FetchFrom,
    max_bytes: usize,
    wait: Option<Duration>,
) -> Result<ReadResult, ReadError> {
    read_routed(shard, topic, j, from, max_bytes, wait, false).await
}

/// The one routing decision of a read: local when this broker leads the partition (or on a
/// single host); otherwise at the leader when `forward`, else refused.
async fn read_routed(
    shard: &Rc<Shard>,
    topic: &TopicState,
    j: u32,
    from: FetchFrom,
    max_bytes: usize,
    wait: Option<Duration>,
    forward: bool,
) -> Result<ReadResult, ReadError> {
    // A partition the layout does not have is not found, wherever it would be read.
    topic.check_partition(j)?;
    if let Some(cluster) = crate::cluster::installed() {
        if let Route::Forward { leader, addr, .. } = cluster.route(&topic.name, j)? {
            if !forward {
                return Err(ReadError::NotLeader {
                    broker: cluster.broker,
                    topic: topic.name.clone(),
                    partition: j,
                    leader,
                });
            }
            let read = RemoteRead {
                leader,
                addr,
                topic: topic.name.clone(),
                partition: j,
                from,
                max_bytes,
                wait,
            };
            let requested = match from {
                FetchFrom::Offset(o) => o,
                FetchFrom::Time(_) => 0,
            };
            return cluster
                .read_remote(read)
                .await
                .map_err(|e| out_of_range(e, requested));
        }
    }
    read_local(shard, topic, j, from, max_bytes, wait).await
}

/// Reads partition `j` of `topic` from `from` on its owning shard of this broker.
async fn read_local(
    shard: &Rc<Shard>,
    topic: &TopicState,
    j: u32,
    from: FetchFrom,
    max_bytes: usize,
    wait: Option<Duration>,
) -> Result<ReadResult, ReadError> {
    let offset = match from {
        FetchFrom::Offset(o) => o,
        FetchFrom::Time(t_us) => shard.offset_for_time(topic, j, t_us).await?.offset,
    };
    shard.read(topic, j, offset, max_bytes, wait).await
}

/// A leader's OUT_OF_RANGE, as a local read reports it (its message ends with the earliest
/// offset still available), so the poll moves up to it as it does locally.
fn out_of_range(e: RemoteReadError, requested: i64) -> ReadError {
    if let RemoteReadError::Refused { code, message, .. } = &e {
        let earliest = message.rsplit(' ').next().and_then(|n| n.parse().ok());
        if let (Some(ErrorCode::OutOfRange), Some(earliest)) = (ErrorCode::from_u8(*code), earliest)
        {
            return ReadError::OutOfRange {
                requested,
                earliest,
            };
        }
    }
    ReadError::Remote(e)
}

/// Builds the response in plan order and notes the positions its items reach.
fn assemble(fetched: &[Fetched], max_bytes: usize) -> (PollResponse, Positions) {
    let mut asm = PollAssembler::new(max_bytes);
    let mut positions = Positions::default();
    for f in fetched {
        let id = f.topic.layout.partition_id(f.partition);
        positions.partition((f.topic.name.clone(), f.partition), f.from, f.planned);
        let mut position = f.from;
        let mut bytes = 0;
        for chunk in &f.result.chunks {
            if !asm.try_push(&f.topic.name, id, chunk) {
                break;
            }
            position = chunk.start_offset + chunk.record_count as i64;
            positions.item(position);
            bytes += chunk.payload.len() as u64;
        }
        // Messages from where the read started (a first chunk may begin before it).
        let messages = (position - f.from).max(0) as u64;
        f.topic.metrics.polled(messages, bytes);
    }
    (asm.finish(), positions)
}

#[cfg(test)]
mod tests {
    use super::next_start;

    #[test]
    fn every_partition_comes_first_even_when_polls_alternate() {
        // Two consumers alternating on one shard: each sees every other start.
        let n = 40;
        let mut firsts = [std::collections::HashSet::new(), Default::default()];
        for i in 0..4000 {
            firsts[i % 2].insert(next_start(n));
        }
        assert_eq!(firsts[0].len(), n);
        assert_eq!(firsts[1].len(), n);
        assert_eq!(next_start(0), 0);
        assert_eq!(next_start(1), 0);
    }
}
