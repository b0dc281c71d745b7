//! A shard-local "something changed" signal: tasks wait for the next [`LocalNotify::notify`].
//! Used by readers tailing a partition to wake when a chunk becomes durable. Single-threaded
//! (`Rc`/`RefCell`), so it costs no atomics on the write path.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct LocalNotify {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl LocalNotify {
    /// Wakes every task waiting right now.
    pub fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves at the next `notify` after this call.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            seen: self.generation.get(),
        }
    }
}

pub struct Notified<'a> {
    notify: &'a LocalNotify,
    seen: u64,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
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
}
