//! The channel mesh between shards, addressed by shard id, on bounded cross-thread channels
//! (compio has no mesh of its own): one channel for every ordered pair of shards, made up
//! front, each end taken by its shard when it joins.

use std::cell::RefCell;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_channel::mpsc::{channel, Receiver, Sender};
use futures_util::StreamExt;

/// What each shard takes when it joins: its senders to every shard, its receivers from every
/// shard (`None` once taken, and on the diagonal).
struct Ends<T> {
    senders: Vec<Option<Vec<Option<Sender<T>>>>>,
    receivers: Vec<Option<Vec<Option<Receiver<T>>>>>,
    joined: usize,
}

/// A mesh to be joined by every shard (clone it into each shard's thread).
pub struct ShardMesh<T: Send + 'static> {
    ends: Arc<Mutex<Ends<T>>>,
    shards: usize,
}

impl<T: Send + 'static> Clone for ShardMesh<T> {
    fn clone(&self) -> Self {
        ShardMesh {
            ends: self.ends.clone(),
            shards: self.shards,
        }
    }
}

impl<T: Send + 'static> ShardMesh<T> {
    /// A mesh of `shards` shards whose channels hold `capacity` messages each.
    pub fn new(shards: usize, capacity: usize) -> Self {
        let mut senders: Vec<Vec<Option<Sender<T>>>> = (0..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        let mut receivers: Vec<Vec<Option<Receiver<T>>>> = (0..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        for from in 0..shards {
            for to in 0..shards {
                if from != to {
                    // A futures channel holds `buffer` plus one message per sender.
                    let (tx, rx) = channel(capacity.saturating_sub(1));
                    senders[from][to] = Some(tx);
                    receivers[to][from] = Some(rx);
                }
            }
        }
        ShardMesh {
            ends: Arc::new(Mutex::new(Ends {
                senders: senders.into_iter().map(Some).collect(),
                receivers: receivers.into_iter().map(Some).collect(),
                joined: 0,
            })),
            shards,
        }
    }

    /// Joins from shard `shard`; returns once every shard has joined.
    pub async fn join(self, shard: usize) -> Result<MeshPort<T>, MeshError> {
        let (senders, receivers) = {
            let mut ends = self.ends.lock().map_err(|_| MeshError::Poisoned)?;
            let senders = ends.senders.get_mut(shard).and_then(Option::take);
            let receivers = ends.receivers.get_mut(shard).and_then(Option::take);
            match (senders, receivers) {
                (Some(s), Some(r)) => {
                    ends.joined += 1;
                    (s, r)
                }
                _ => return Err(MeshError::Join(format!("shard {shard} cannot join twice"))),
            }
        };
        // Start-up only: wait until every shard has joined, on the timer (never blocking the
        // thread).
        loop {
            let joined = self.ends.lock().map_err(|_| MeshError::Poisoned)?.joined;
            if joined >= self.shards {
                break;
            }
            super::sleep(Duration::from_millis(1)).await;
        }
        Ok(MeshPort {
            senders,
            receivers: receivers.into_iter().map(RefCell::new).collect(),
            shard,
        })
    }
}

/// Joining the mesh failed (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The mesh refused to join.
    #[error("{0}")]
    Join(String),
    /// A shard panicked while joining.
    #[error("a shard failed while joining")]
    Poisoned,
}

/// The message could not be sent: the shard is gone (or is this shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshClosed;

/// One shard's end of the mesh.
pub struct MeshPort<T: Send + 'static> {
    senders: Vec<Option<Sender<T>>>,
    receivers: Vec<RefCell<Option<Receiver<T>>>>,
    shard: usize,
}

impl<T: Send + 'static> MeshPort<T> {
    /// Sends `msg` to shard `to` (not this shard), waiting while its channel is full.
    pub async fn send_to(&self, to: usize, msg: T) -> Result<(), MeshClosed> {
        match self.senders.get(to) {
            // A clone per send: each sender waits for room on its own, so concurrent sends
            // from this shard's tasks never share (and lose) a wake-up.
            Some(Some(tx)) if to != self.shard => {
                let mut tx = tx.clone();
                poll_fn(|cx| tx.poll_ready(cx))
                    .await
                    .map_err(|_| MeshClosed)?;
                tx.start_send(msg).map_err(|_| MeshClosed)
            }
            _ => Err(MeshClosed),
        }
    }

    /// The next message from shard `from`; `None` once that shard is gone. One task reads
    /// from each shard.
    pub async fn recv_from(&self, from: usize) -> Option<T> {
        let rx = self.receivers.get(from)?;
        poll_fn(|cx| match rx.borrow_mut().as_mut() {
            Some(rx) => rx.poll_next_unpin(cx),
            None => std::task::Poll::Ready(None),
        })
        .await
    }

    /// The number of shards in the mesh.
    pub fn shards(&self) -> usize {
        self.senders.len()
    }
}
