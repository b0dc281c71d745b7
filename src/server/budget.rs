//! Budgets for partial input: bytes the broker holds for requests it has not finished
//! reading — framed frames in progress, HTTP/1.1 request bodies, HTTP/2 request bodies and
//! partial gRPC messages. Each shard has one (`--partial-input-budget`), shared by all its
//! connections; each HTTP/2 connection has its own (`--h2-connection-buffer`) whose charges
//! also count against the shard's.
//!
//! A connection holds a [`Charge`] and raises it before it reads more of a request it has
//! begun. When the budget is full the raise waits, so the connection stops reading (TCP, or
//! HTTP/2 flow control, then stops the client) instead of allocating; it goes on when other
//! requests complete or their connections are dropped (by the request, frame or stream
//! deadlines, which keep running meanwhile). A charge alone in its budget may always grow, so
//! one request larger than the budget cannot wait forever.
//!
//! Everything is shard-local (`Rc`/`Cell`): a charge costs two additions and no atomics.

use std::cell::Cell;
use std::rc::Rc;

use crate::shard::notify::LocalNotify;
use crate::shard::Shard;

/// A budget of bytes of partial input.
pub struct InputBudget {
    limit: u64,
    used: Cell<u64>,
    /// Signalled when charges drop while someone waits.
    freed: LocalNotify,
    /// A budget every charge of this one also counts against (the shard's, for a connection's).
    parent: Option<Rc<InputBudget>>,
}

/// The shard's budget, found among its per-core state by type.
struct ShardBudget(Rc<InputBudget>);

impl InputBudget {
    pub fn new(limit: u64, parent: Option<Rc<InputBudget>>) -> Rc<InputBudget> {
        Rc::new(InputBudget {
            limit,
            used: Cell::new(0),
            freed: LocalNotify::default(),
            parent,
        })
    }

    /// This shard's budget (`--partial-input-budget`), created on first use.
    pub fn of_shard(shard: &Shard) -> Rc<InputBudget> {
        let limit = shard.config.partial_input_budget;
        shard
            .locals
            .get_or_insert_with(|| ShardBudget(InputBudget::new(limit, None)))
            .0
            .clone()
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.get()
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// A charge of zero bytes against this budget.
    pub fn charge(self: &Rc<Self>) -> Charge {
        Charge {
            budget: self.clone(),
            held: 0,
        }
    }

    /// Whether a charge holding `held` bytes may hold `want`, here and in the parent.
    fn fits(&self, held: u64, want: u64) -> bool {
        let others = self.used.get() - held;
        (others == 0 || others + want <= self.limit)
            && self.parent.as_ref().is_none_or(|p| p.fits(held, want))
    }

    fn add(&self, bytes: u64) {
        self.used.set(self.used.get() + bytes);
        if let Some(p) = &self.parent {
            p.add(bytes);
        }
    }

    fn sub(&self, bytes: u64) {
        self.used.set(self.used.get() - bytes);
        if self.freed.waiting() > 0 {
            self.freed.notify();
        }
        if let Some(p) = &self.parent {
            p.sub(bytes);
        }
    }

    /// Resolves at the next release here or in the parent.
    async fn freed(&self) {
        match &self.parent {
            Some(p) => futures_lite::future::or(self.freed.notified(), p.freed.notified()).await,
            None => self.freed.notified().await,
        }
    }
}

/// The bytes one request (or connection) holds against a budget; released when dropped.
pub struct Charge {
    budget: Rc<InputBudget>,
    held: u64,
}

impl Charge {
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Raises the charge to `bytes`, waiting while the budget (or its parent) has no room.
    /// A smaller `bytes` is left alone.
    pub async fn grow_to(&mut self, bytes: u64) {
        while bytes > self.held {
            if self.budget.fits(self.held, bytes) {
                self.set(bytes);
                return;
            }
            self.budget.freed().await;
        }
    }

    /// Sets the charge to `bytes` at once, even past the limit: for bytes already read.
    pub fn set(&mut self, bytes: u64) {
        if bytes > self.held {
            self.budget.add(bytes - self.held);
        } else if bytes < self.held {
            self.budget.sub(self.held - bytes);
        }
        self.held = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::poll_once;

    #[test]
    fn a_full_budget_makes_charges_wait_until_others_release() {
        crate::rt::block_on(async {
            let b = InputBudget::new(100, None);
            let mut a = b.charge();
            let mut c = b.charge();
            a.grow_to(60).await;
            c.grow_to(40).await;
            assert_eq!(b.used(), 100);
            {
                let mut grow = std::pin::pin!(c.grow_to(50));
                assert!(poll_once(grow.as_mut()).await.is_none(), "full: waits");
                a.set(10);
                assert!(poll_once(grow.as_mut()).await.is_some(), "room again");
            }
            assert_eq!(c.held(), 50);
            assert_eq!(b.used(), 60);
            drop(a);
            drop(c);
            assert_eq!(b.used(), 0);
        });
    }

    #[test]
    fn a_lone_charge_may_exceed_the_limit() {
        crate::rt::block_on(async {
            let b = InputBudget::new(100, None);
            let mut a = b.charge();
            a.grow_to(500).await;
            assert_eq!(b.used(), 500);
            let mut c = b.charge();
            let mut grow = std::pin::pin!(c.grow_to(1));
            assert!(poll_once(grow.as_mut()).await.is_none());
            drop(a);
            assert!(poll_once(grow.as_mut()).await.is_some());
        });
    }

    #[test]
    fn charges_count_against_the_parent_too() {
        crate::rt::block_on(async {
            let shard = InputBudget::new(100, None);
            let conn1 = InputBudget::new(80, Some(shard.clone()));
            let conn2 = InputBudget::new(80, Some(shard.clone()));
            let mut a = conn1.charge();
            a.grow_to(70).await;
            let mut c = conn2.charge();
            let mut grow = std::pin::pin!(c.grow_to(40));
            assert!(
                poll_once(grow.as_mut()).await.is_none(),
                "the shard is full"
            );
            a.set(50);
            assert!(poll_once(grow.as_mut()).await.is_some());
            assert_eq!((shard.used(), conn1.used(), conn2.used()), (90, 50, 40));
        });
    }
}
