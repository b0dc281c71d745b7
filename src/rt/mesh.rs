//! The channel mesh between shards, addressed by shard id.
//!
//! glommio numbers mesh peers by executor id, which depends on the order the threads started;
//! [`ShardMesh`] maps shard ids onto those peer numbers so callers never see them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};

/// A mesh to be joined by every shard (clone it into each shard's thread).
pub struct ShardMesh<T: Send + 'static> {
    builder: MeshBuilder<T, Full>,
    peers: Arc<Mutex<Vec<Option<usize>>>>,
}

impl<T: Send + 'static> Clone for ShardMesh<T> {
    fn clone(&self) -> Self {
        ShardMesh {
            builder: self.builder.clone(),
            peers: self.peers.clone(),
        }
    }
}

impl<T: Send + 'static> ShardMesh<T> {
    /// A mesh of `shards` shards whose channels hold `capacity` messages each.
    pub fn new(shards: usize, capacity: usize) -> Self {
        ShardMesh {
            builder: MeshBuilder::full(shards, capacity),
            peers: Arc::new(Mutex::new(vec![None; shards])),
        }
    }

    /// Joins from shard `shard`; returns once every shard has joined.
    pub async fn join(self, shard: usize) -> Result<MeshPort<T>, MeshError> {
        let (senders, receivers) = self
            .builder
            .join()
            .await
            .map_err(|e| MeshError::Join(e.to_string()))?;
        {
            let mut peers = self.peers.lock().map_err(|_| MeshError::Poisoned)?;
            peers[shard] = Some(senders.peer_id());
        }
        // Start-up only: wait until every shard has published its peer number. The wait
        // must not block the thread: glommio delivers the mesh's cross-shard wake-ups from
        // the executor's loop, so a blocked shard could leave another one waiting forever.
        let peer_of = loop {
            let all: Option<Vec<usize>> = {
                let peers = self.peers.lock().map_err(|_| MeshError::Poisoned)?;
                peers.iter().copied().collect()
            };
            match all {
                Some(all) => break all,
                None => glommio::timer::sleep(Duration::from_millis(1)).await,
            }
        };
        Ok(MeshPort {
            senders,
            receivers,
            peer_of,
            shard,
        })
    }
}

/// Joining the mesh failed (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The runtime refused to join (its own message).
    #[error("{0}")]
    Join(String),
    /// A shard panicked while publishing its peer number.
    #[error("a shard failed while joining")]
    Poisoned,
}

/// The message could not be sent: the shard is gone (or is this shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshClosed;

/// One shard's end of the mesh.
pub struct MeshPort<T: Send + 'static> {
    senders: Senders<T>,
    receivers: Receivers<T>,
    peer_of: Vec<usize>,
    shard: usize,
}

impl<T: Send + 'static> MeshPort<T> {
    /// Sends `msg` to shard `to` (not this shard), waiting while its channel is full.
    pub async fn send_to(&self, to: usize, msg: T) -> Result<(), MeshClosed> {
        match self.peer_of.get(to) {
            Some(&peer) if to != self.shard => self
                .senders
                .send_to(peer, msg)
                .await
                .map_err(|_| MeshClosed),
            _ => Err(MeshClosed),
        }
    }

    /// The next message from shard `from`; `None` once that shard is gone.
    pub async fn recv_from(&self, from: usize) -> Option<T> {
        let peer = *self.peer_of.get(from)?;
        self.receivers.recv_from(peer).await.ok().flatten()
    }

    /// The number of shards in the mesh.
    pub fn shards(&self) -> usize {
        self.peer_of.len()
    }
}
