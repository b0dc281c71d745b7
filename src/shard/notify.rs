//! A shard-local "something changed" signal: tasks wait for the next [`LocalNotify::notify`].
//! Used by readers tailing a partition to wake when a chunk becomes durable, by every
//! connection and call watching the shard's lifecycle, and so on. Single-threaded
//! (`Rc`/`RefCell`), so it costs no atomics on the write path.
//!
//! A waiting future holds a slot in a slab: registering, re-registering and giving up (drop)
//! are O(1), however many tasks wait. (An earlier version kept a list it searched on every
//! poll and never pruned: every gRPC call that watched the lifecycle left its waker behind,
//! so the list grew for the broker's whole life and its scan reached 7 % of the core.)

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Default)]
pub struct LocalNotify {
    generation: Cell<u64>,
    waiters: RefCell<Slab<Waker>>,
}

impl LocalNotify {
    /// Wakes every task waiting right now.
    pub fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        // Waking only schedules the task (the runtime never polls it inline), so the borrow
        // cannot be re-entered; draining keeps the slab's capacity for the next round.
        for w in self.waiters.borrow_mut().drain() {
            w.wake();
        }
    }

    /// Resolves at the next `notify` after this call.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            seen: self.generation.get(),
            slot: None,
        }
    }

    /// Tasks waiting now (for tests and metrics).
    pub fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

pub struct Notified<'a> {
    notify: &'a LocalNotify,
    seen: u64,
    /// This future's waker slot, valid while the generation is still `seen`.
    slot: Option<usize>,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.notify.generation.get() != this.seen {
            this.slot = None;
            return Poll::Ready(());
        }
        let mut waiters = this.notify.waiters.borrow_mut();
        match this.slot.and_then(|k| waiters.get_mut(k)) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => *w = cx.waker().clone(),
            None => this.slot = Some(waiters.insert(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        // After a notify the slab was emptied, and the slot may belong to someone else now.
        if let Some(k) = self.slot {
            if self.notify.generation.get() == self.seen {
                self.notify.waiters.borrow_mut().try_remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn wakes_waiters_once_notified() {
        crate::rt::block_on(async {
            let n = Rc::new(LocalNotify::default());
            let n2 = n.clone();
            let waiter = crate::rt::spawn(async move { n2.notified().await });
            crate::rt::sleep(std::time::Duration::from_millis(5)).await;
            n.notify();
            waiter.await;
            // A notification before the wait is not remembered.
            n.notify();
            assert!(futures_lite::future::poll_once(n.notified())
                .await
                .is_none());
        });
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_nothing_behind() {
        crate::rt::block_on(async {
            let n = LocalNotify::default();
            for _ in 0..1000 {
                let waited = futures_lite::future::or(
                    async {
                        n.notified().await;
                        true
                    },
                    async { false },
                );
                assert!(!waited.await);
            }
            assert_eq!(n.waiting(), 0, "dropped waiters are unregistered");
            // Polled again and again by the same task: one slot.
            let mut w = std::pin::pin!(n.notified());
            for _ in 0..10 {
                assert!(futures_lite::future::poll_once(w.as_mut()).await.is_none());
            }
            assert_eq!(n.waiting(), 1);
            n.notify();
            assert!(futures_lite::future::poll_once(w.as_mut()).await.is_some());
            assert_eq!(n.waiting(), 0);
        });
    }
}
