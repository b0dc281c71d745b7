//! The chunk writes a partition's writer has in flight (`--chunk-writes-in-flight`), oldest
//! first. Each is one write (and fdatasync) of the log's `PlacedChunk`; they run at once and
//! may complete in any order, but come out of [`InFlightChunks::next_written`] in the order
//! they were placed, so that the writer finishes and answers them in offset order.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_util::stream::{FuturesOrdered, StreamExt};

use crate::storage::{PartitionLog, PlacedChunk, WrittenChunk};

use super::super::error::ProduceError;
use super::FrameBatch;

/// A chunk's frames and what became of its write: the written chunk and its log, for
/// `PartitionLog::finish_write`, or why it was never written.
pub(super) struct Written {
    pub batch: FrameBatch,
    pub write: Result<(Rc<PartitionLog>, WrittenChunk), ProduceError>,
}

type WriteFuture = Pin<Box<dyn Future<Output = Written>>>;

pub(super) struct InFlightChunks {
    writes: FuturesOrdered<WriteFuture>,
    /// The oldest writes, done, taken out by [`kick`](Self::kick) before the writer asked.
    done: VecDeque<Written>,
    limit: usize,
}

impl InFlightChunks {
    /// At most `limit` chunks in flight (at least 1).
    pub fn new(limit: usize) -> InFlightChunks {
        InFlightChunks {
            writes: FuturesOrdered::new(),
            done: VecDeque::new(),
            limit: limit.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.writes.len() + self.done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many more chunks may be placed now.
    pub fn free_slots(&self) -> usize {
        self.limit.saturating_sub(self.len())
    }

    /// Whether another chunk may be placed.
    pub fn has_room(&self) -> bool {
        self.len() < self.limit
    }

    /// Starts writing a placed chunk (its write is issued at the next [`kick`](Self::kick)
    /// or wait).
    pub fn push_write(&mut self, batch: FrameBatch, log: Rc<PartitionLog>, placed: PlacedChunk) {
        self.writes.push_back(Box::pin(async move {
            let written = log.write_placed(placed).await;
            Written {
                batch,
                write: Ok((log, written)),
            }
        }));
    }

    /// Queues frames that will not be written, to be answered in their turn.
    pub fn push_refused(&mut self, batch: FrameBatch, error: ProduceError) {
        self.writes.push_back(Box::pin(std::future::ready(Written {
            batch,
            write: Err(error),
        })));
    }

    /// Polls the writes once, so that the new ones are handed to the runtime (which submits
    /// them at its next I/O turn) before the writer goes on compressing.
    pub async fn kick(&mut self) {
        while let Some(Some(w)) = futures_lite::future::poll_once(self.writes.next()).await {
            self.done.push_back(w);
        }
    }

    /// The oldest chunk once its write is done; `None` when nothing is in flight. Cancel-safe:
    /// dropping the future leaves every write in flight.
    pub async fn next_written(&mut self) -> Option<Written> {
        if let Some(w) = self.done.pop_front() {
            return Some(w);
        }
        self.writes.next().await
    }
}
