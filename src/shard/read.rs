//! Reading a partition: served by the shard that owns it, from storage (which returns chunks
//! exactly as stored, compressed), optionally waiting for new data like a long poll.

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_lite::future;

use crate::ring::ShardOwnership;
use crate::rt;
use crate::storage::StoredChunk;

use super::error::{ReadError, RouteError};
use super::lifecycle::Lifecycle;
use super::msg::{ReadResult, ShardMsg};
use super::readahead::ReadAheadBudget;
use super::writer::PartitionWriter;
use super::{Shard, TopicState};

impl Shard {
    /// Reads partition `j` of `topic` from `offset`, at most about `max_bytes` of chunks (at
    /// least one chunk when any is there). With `wait`, a read at the end waits up to that long
    /// for new data; an offset past the end also waits. The wait ends early, with what there is,
    /// when the owning shard stops (graceful shutdown).
    pub async fn read(
        &self,
        topic: &TopicState,
        j: u32,
        offset: i64,
        max_bytes: usize,
        wait: Option<Duration>,
    ) -> Result<ReadResult, ReadError> {
        topic.check_partition(j)?;
        let owner = topic.layout.owner(j, self.shards);
        if owner == self.id {
            let writer = topic.writer(j, self.id)?;
            return read_local(
                writer,
                &self.read_ahead,
                &self.lifecycle,
                offset,
                max_bytes,
                wait,
            )
            .await;
        }
        let (tx, rx) = oneshot::channel();
        let msg = ShardMsg::Read {
            topic: topic.name.clone(),
            layout: topic.layout,
            incarnation: topic.incarnation,
            partition: j,
            offset,
            max_bytes,
            wait,
            reply: tx,
        };
        self.mesh
            .send_to(owner, msg)
            .await
            .map_err(|_| RouteError::Unreachable(owner))?;
        rx.await.map_err(|_| RouteError::Dropped(owner))?
    }

    /// The available range `[start, end)` of partition `j`, asked of its owning shard.
    pub async fn bounds(&self, topic: &TopicState, j: u32) -> Result<(i64, i64), ReadError> {
        let r = self.read(topic, j, i64::MAX, 1, None).await?;
        Ok((r.start_offset, r.end_offset))
    }
}

/// Serves a read on the owning shard. A read waiting when `lifecycle` (the owning shard's) flips
/// to stopping stops waiting and answers with what there is (usually nothing).
pub(super) async fn read_local(
    writer: &Rc<PartitionWriter>,
    budget: &Rc<ReadAheadBudget>,
    lifecycle: &Lifecycle,
    offset: i64,
    max_bytes: usize,
    wait: Option<Duration>,
) -> Result<ReadResult, ReadError> {
    writer.check_not_deleted()?;
    let log = writer
        .open()
        .await
        .map_err(|e| match writer.check_not_deleted() {
            Err(deleted) => ReadError::from(deleted),
            Ok(()) => ReadError::Storage(e),
        })?;
    let deadline = wait.map(|w| Instant::now() + w);
    // Only a wait that began while serving ends at the stop: a read that starts while stopping
    // waits as asked, so a caller that reads in a loop (a gRPC tail) cannot spin on instant
    // empty answers; its own shutdown handling ends it.
    let ends_at_stop = !lifecycle.is_stopping();
    let stopped = || async move {
        if ends_at_stop {
            lifecycle.stopped().await
        } else {
            future::pending().await
        }
    };
    loop {
        // Take the notification before checking, so an append in between is not missed.
        let appended = writer.appended.notified();
        // Deleted while waiting for new data (the deletion wakes this wait).
        writer.check_not_deleted()?;
        let (start_offset, end_offset) = (log.start_offset(), log.next_offset());
        if offset < start_offset {
            return Err(ReadError::OutOfRange {
                requested: offset,
                earliest: start_offset,
            });
        }
        if offset < end_offset {
            let chunks = match writer.read_ahead.take(offset, max_bytes).await {
                Some(chunks) => chunks,
                None => log.read(offset, max_bytes).await?,
            };
            // Read the next ranges now (if they are on disk), so the disk works while this
            // answer travels and the next poll comes in.
            if let Some(next) = chunks.last().map(StoredChunk::end_offset) {
                writer.read_ahead.follow(&log, next, max_bytes, budget);
            }
            return Ok(ReadResult {
                chunks,
                start_offset,
                end_offset,
            });
        }
        let remaining = deadline
            .and_then(|d| d.checked_duration_since(Instant::now()))
            .filter(|_| !(ends_at_stop && lifecycle.is_stopping()));
        let Some(remaining) = remaining.filter(|r| !r.is_zero()) else {
            return Ok(ReadResult {
                chunks: Vec::new(),
                start_offset,
                end_offset,
            });
        };
        future::or(appended, future::or(rt::sleep(remaining), stopped())).await;
    }
}
