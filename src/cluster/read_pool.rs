//! The connections this broker keeps to each leader for reads ([`super::remote_read`]),
//! bounded. A leader serves one FETCH per connection at a time, so a read holds a connection
//! for its whole exchange, and a long poll for its whole wait: the connections to a leader
//! are the reads in flight there, and those are bounded per leader, by kind.
//!
//! - Reads with a wait (long polls): at most `--max-remote-reads`. A read that finds every
//!   slot taken does not queue for one (a slot may be held for a minute): the caller waits
//!   here for a moment instead ([`PAUSE`]) and then reads without a wait, so its poll still
//!   gets whatever the leader has by then, and a client holding hundreds of long polls costs
//!   the leader no more connections than the bound.
//! - Reads without a wait: at most [`QUICK_READS`]. They are short, so one that finds every
//!   slot taken queues for one, for at most [`QUEUE_WITHIN`], and is then refused.
//!
//! Idle connections are kept for reuse, never more than the slots of their kind: a connection
//! is opened only by a read that holds a slot and found none idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardlog_client::mux::Mux;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reads without a wait this broker may have at one leader at once.
pub const QUICK_READS: usize = 16;
/// How long a long poll's read that finds no free slot waits here before it reads without a
/// wait (at most its own wait): the most a poll's answer is late because of the bound.
pub const PAUSE: Duration = Duration::from_millis(250);
/// How long a read without a wait queues for a slot before it is refused.
pub const QUEUE_WITHIN: Duration = Duration::from_secs(10);

/// What a read holds its connection for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A long poll: the leader waits for data before answering.
    Waiting,
    /// A read answered with what the leader has now.
    Quick,
}

/// The slots and idle connections of one kind to one leader.
struct Pool {
    slots: Arc<Semaphore>,
    idle: Vec<Mux>,
}

/// Every leader's pools, by framed address and kind.
pub struct ReadPools {
    max_waiting: usize,
    pools: Mutex<HashMap<(String, Kind), Pool>>,
}

/// A slot held: the read may use one connection of its kind to its leader until dropped.
pub struct Slot {
    key: (String, Kind),
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    pub fn kind(&self) -> Kind {
        self.key.1
    }
}

impl ReadPools {
    /// Pools allowing `max_waiting` long polls per leader (`--max-remote-reads`).
    pub fn new(max_waiting: usize) -> ReadPools {
        ReadPools {
            max_waiting: max_waiting.max(1),
            pools: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Kind), Pool>> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slots of `kind` to the leader at `addr` (made on first use).
    fn slots(&self, addr: &str, kind: Kind) -> Arc<Semaphore> {
        let n = match kind {
            Kind::Waiting => self.max_waiting,
            Kind::Quick => QUICK_READS,
        };
        self.lock()
            .entry((addr.to_string(), kind))
            .or_insert_with(|| Pool {
                slots: Arc::new(Semaphore::new(n)),
                idle: Vec::new(),
            })
            .slots
            .clone()
    }

    /// A slot for a long poll at `addr`, if one is free now.
    pub fn try_waiting(&self, addr: &str) -> Option<Slot> {
        let permit = self.slots(addr, Kind::Waiting).try_acquire_owned().ok()?;
        Some(Slot {
            key: (addr.to_string(), Kind::Waiting),
            _permit: permit,
        })
    }

    /// A slot for a read without a wait at `addr`, queueing for at most [`QUEUE_WITHIN`].
    pub async fn quick(&self, addr: &str) -> Option<Slot> {
        let slots = self.slots(addr, Kind::Quick);
        let permit = tokio::time::timeout(QUEUE_WITHIN, slots.acquire_owned())
            .await
            .ok()?
            .ok()?;
        Some(Slot {
            key: (addr.to_string(), Kind::Quick),
            _permit: permit,
        })
    }

    /// An idle connection for `slot`'s read, if one is open (closed ones are dropped).
    pub fn take_idle(&self, slot: &Slot) -> Option<Mux> {
        let mut pools = self.lock();
        let idle = &mut pools.get_mut(&slot.key)?.idle;
        while let Some(m) = idle.pop() {
            if !m.is_closed() {
                return Some(m);
            }
        }
        None
    }

    /// Keeps `mux`, which `slot`'s read used and left in a known state, for the next read.
    pub fn put_back(&self, slot: &Slot, mux: Mux) {
        if mux.is_closed() {
            return;
        }
        if let Some(pool) = self.lock().get_mut(&slot.key) {
            pool.idle.push(mux);
        }
    }

    /// Connections kept idle to `addr`, of both kinds (for tests).
    #[cfg(test)]
    fn idle(&self, addr: &str) -> usize {
        let pools = self.lock();
        [Kind::Waiting, Kind::Quick]
            .iter()
            .filter_map(|k| pools.get(&(addr.to_string(), *k)))
            .map(|p| p.idle.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_polls_are_bounded_per_leader_and_quick_reads_queue() {
        let pools = ReadPools::new(2);
        let a = pools.try_waiting("a:1").unwrap();
        let _b = pools.try_waiting("a:1").unwrap();
        assert!(pools.try_waiting("a:1").is_none());
        // Another leader has slots of its own.
        assert!(pools.try_waiting("b:1").is_some());
        drop(a);
        assert_eq!(
            pools.try_waiting("a:1").map(|s| s.kind()),
            Some(Kind::Waiting)
        );
        let quick: Vec<Slot> =
            futures_util::future::join_all((0..QUICK_READS).map(|_| pools.quick("a:1")))
                .await
                .into_iter()
                .map(Option::unwrap)
                .collect();
        // The next one queues until one is released.
        let mut next = Box::pin(pools.quick("a:1"));
        assert!(futures_lite::future::poll_once(&mut next).await.is_none());
        drop(quick);
        assert_eq!(next.await.map(|s| s.kind()), Some(Kind::Quick));
        assert_eq!(pools.idle("a:1"), 0);
    }
}
