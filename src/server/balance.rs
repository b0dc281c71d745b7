//! Spreading a server's connections evenly over the shards.
//!
//! Every shard accepts on the same port (SO_REUSEPORT), and the kernel picks the shard by a
//! hash of the client's address and port. With the few connections a producer usually opens,
//! that is often lopsided: 16 connections split 10/6 over 2 shards leave one core saturated
//! and the other a third idle (measured: 578 K msgs/s against 700 K for an even split). So a
//! shard that accepts a connection while it serves more than the least-loaded shard hands the
//! socket over (DESIGN: "one acceptor handing sockets over") before reading a byte from it.
//!
//! The counts are the only state shared between shards: one atomic per shard, updated when a
//! connection is placed and when it closes. A connection moves at most once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

use crate::shard::{RouteError, Shard};

/// A connection on its way to the shard that will serve it (over the mesh).
#[derive(Debug)]
pub struct Handover {
    /// The server it was accepted by (`framed`, `http`).
    pub server: &'static str,
    pub fd: OwnedFd,
    pub placed: Placed,
}

/// Sends a connection, detached from the shard that accepted it, to shard `to`, which serves
/// it once its accept loop for that server takes it ([`Adoption::take`]).
pub async fn hand_over(shard: &Rc<Shard>, to: usize, handover: Handover) -> Result<(), RouteError> {
    shard
        .run_on(to, move |target| {
            target
                .locals
                .get_or_insert_with(Adoption::default)
                .push(handover)
        })
        .await
}

/// The connections handed over to one shard, per server, for that server's accept loop there.
/// They can arrive before the accept loop has started (another shard may accept first); they
/// wait in the channel until it takes the receiver. Kept in the shard's core-local state.
#[derive(Default)]
pub struct Adoption {
    servers: RefCell<HashMap<&'static str, Adopted>>,
}

struct Adopted {
    /// `None` once the accept loop has stopped: later arrivals are closed.
    tx: Option<UnboundedSender<Handover>>,
    rx: Option<UnboundedReceiver<Handover>>,
}

impl Adoption {
    /// This shard's adoption queues.
    pub fn of(shard: &Shard) -> Rc<Adoption> {
        shard.locals.get_or_insert_with(Adoption::default)
    }

    fn push(&self, handover: Handover) {
        let mut all = self.servers.borrow_mut();
        // After the accept loop stopped, dropping the handover closes the connection.
        if let Some(tx) = &Self::slot(&mut all, handover.server).tx {
            let _ = tx.unbounded_send(handover);
        }
    }

    /// The connections other shards hand over for `server`, for its accept loop (once).
    pub fn take(&self, server: &'static str) -> UnboundedReceiver<Handover> {
        let mut all = self.servers.borrow_mut();
        let slot = Self::slot(&mut all, server);
        slot.rx.take().unwrap_or_else(|| {
            // Taken before (a second accept loop for one server): give it a fresh channel.
            let (tx, rx) = unbounded();
            slot.tx = Some(tx);
            rx
        })
    }

    /// The accept loop of `server` stopped: connections handed over from now on are closed.
    pub fn stop(&self, server: &'static str) {
        Self::slot(&mut self.servers.borrow_mut(), server).tx = None;
    }

    fn slot<'a>(
        all: &'a mut HashMap<&'static str, Adopted>,
        server: &'static str,
    ) -> &'a mut Adopted {
        all.entry(server).or_insert_with(|| {
            let (tx, rx) = unbounded();
            Adopted {
                tx: Some(tx),
                rx: Some(rx),
            }
        })
    }
}

/// How many connections of one server each shard serves (or has been handed).
#[derive(Debug)]
pub struct ConnLoad {
    per_shard: Vec<AtomicUsize>,
}

impl ConnLoad {
    pub fn new(shards: usize) -> Arc<ConnLoad> {
        Arc::new(ConnLoad {
            per_shard: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    /// Where a connection accepted on shard `here` should be served: `here`, unless another
    /// shard serves fewer (ties stay, saving a hop). The connection is counted on the chosen
    /// shard at once, so shards accepting at the same moment see each other's choices; it is
    /// uncounted when the [`Placed`] is dropped.
    pub fn place(self: &Arc<Self>, here: usize) -> Placed {
        let load = |s: usize| self.per_shard[s].load(Ordering::Relaxed);
        let mine = load(here);
        let (least, least_load) = (0..self.per_shard.len())
            .map(|s| (s, load(s)))
            .min_by_key(|&(s, l)| (l, s != here))
            .unwrap_or((here, mine));
        let shard = if least_load < mine { least } else { here };
        self.per_shard[shard].fetch_add(1, Ordering::Relaxed);
        Placed {
            load: self.clone(),
            shard,
        }
    }

    /// Connections counted on `shard`.
    pub fn on(&self, shard: usize) -> usize {
        self.per_shard[shard].load(Ordering::Relaxed)
    }
}

/// A connection counted on a shard; dropping it (when the connection closes) uncounts it.
#[derive(Debug)]
pub struct Placed {
    load: Arc<ConnLoad>,
    shard: usize,
}

impl Placed {
    /// The shard that serves the connection.
    pub fn shard(&self) -> usize {
        self.shard
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.load.per_shard[self.shard].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_evenly_whoever_accepts_them() {
        let load = ConnLoad::new(2);
        // The kernel sends every connection to shard 0.
        let placed: Vec<Placed> = (0..16).map(|_| load.place(0)).collect();
        assert_eq!((load.on(0), load.on(1)), (8, 8));
        assert_eq!(placed.iter().filter(|p| p.shard() == 1).count(), 8);
        drop(placed);
        assert_eq!((load.on(0), load.on(1)), (0, 0));
    }

    #[test]
    fn ties_keep_the_connection_where_it_landed() {
        let load = ConnLoad::new(3);
        assert_eq!(load.place(1).shard(), 1, "all equal: stay");
        let a = load.place(1);
        assert_eq!(a.shard(), 1);
        let b = load.place(1);
        assert_ne!(b.shard(), 1, "1 against 0: move");
        let c = load.place(2);
        assert_eq!(c.shard(), 2, "shard 2 is among the least loaded");
        assert_eq!((0..3).map(|s| load.on(s)).sum::<usize>(), 3);
    }
}
