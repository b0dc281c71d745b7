//! A single-threaded counting semaphore with first-come-first-served waiters: the shard's
//! backpressure (bytes buffered, frames in flight) and the connections' wake-up signals.
//! compio has none, so this is the glommio semaphore's interface, written here: `acquire`
//! takes units for good, `signal` gives units back, permits give theirs back when dropped,
//! and `close` fails every waiter.
//!
//! A waiter at the head of the queue holds back the ones behind it, even smaller ones that
//! would fit: a large request (a big frame's bytes) is never starved by a stream of small ones.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The semaphore was closed: no units will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the semaphore is closed")]
pub struct SemaphoreClosed;

/// A counting semaphore of one shard (not `Send`).
#[derive(Debug, Default)]
pub struct Semaphore {
    state: RefCell<State>,
}

#[derive(Debug, Default)]
struct State {
    available: u64,
    closed: bool,
    waiters: VecDeque<Rc<Waiter>>,
}

#[derive(Debug)]
struct Waiter {
    units: u64,
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Semaphore {
    /// A semaphore holding `units` units.
    pub fn new(units: u64) -> Semaphore {
        Semaphore {
            state: RefCell::new(State {
                available: units,
                ..State::default()
            }),
        }
    }

    /// Units available now.
    pub fn available(&self) -> u64 {
        self.state.borrow().available
    }

    /// Takes `units` if they are available and nobody waits ahead.
    pub fn try_acquire(&self, units: u64) -> Result<bool, SemaphoreClosed> {
        let mut st = self.state.borrow_mut();
        if st.closed {
            return Err(SemaphoreClosed);
        }
        if st.waiters.is_empty() && st.available >= units {
            st.available -= units;
            return Ok(true);
        }
        Ok(false)
    }

    /// Waits for `units` and takes them for good (give them back with [`Semaphore::signal`]).
    pub async fn acquire(&self, units: u64) -> Result<(), SemaphoreClosed> {
        if self.try_acquire(units)? {
            return Ok(());
        }
        let waiter = Rc::new(Waiter {
            units,
            granted: Cell::new(false),
            waker: RefCell::new(None),
        });
        self.state.borrow_mut().waiters.push_back(waiter.clone());
        Wait {
            sem: self,
            waiter,
            done: false,
        }
        .await
    }

    /// Waits for `units`, held until the permit is dropped.
    pub async fn acquire_permit(&self, units: u64) -> Result<Permit<'_>, SemaphoreClosed> {
        self.acquire(units).await?;
        Ok(Permit { sem: self, units })
    }

    /// Waits for `units`, held until the permit (which keeps the semaphore) is dropped.
    pub async fn acquire_static_permit(
        self: &Rc<Self>,
        units: u64,
    ) -> Result<StaticPermit, SemaphoreClosed> {
        self.acquire(units).await?;
        Ok(StaticPermit {
            sem: self.clone(),
            units,
        })
    }

    /// Gives `units` to the semaphore and wakes the waiters they now satisfy, in order.
    pub fn signal(&self, units: u64) {
        let mut st = self.state.borrow_mut();
        st.available = st.available.saturating_add(units);
        while st.waiters.front().is_some_and(|w| w.units <= st.available) {
            let Some(front) = st.waiters.pop_front() else {
                break;
            };
            st.available -= front.units;
            front.granted.set(true);
            let waker = front.waker.borrow_mut().take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Fails every waiter, now and later.
    pub fn close(&self) {
        let mut st = self.state.borrow_mut();
        st.closed = true;
        for w in st.waiters.drain(..) {
            if let Some(w) = w.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }
}

/// A queued [`Semaphore::acquire`]; dropped before it is granted, it leaves the queue, and
/// dropped after, it gives the units back.
struct Wait<'a> {
    sem: &'a Semaphore,
    waiter: Rc<Waiter>,
    done: bool,
}

impl Future for Wait<'_> {
    type Output = Result<(), SemaphoreClosed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.waiter.granted.get() {
            self.done = true;
            return Poll::Ready(Ok(()));
        }
        if self.sem.state.borrow().closed {
            self.done = true;
            return Poll::Ready(Err(SemaphoreClosed));
        }
        *self.waiter.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.waiter.granted.get() {
            self.sem.signal(self.waiter.units);
            return;
        }
        let mut st = self.sem.state.borrow_mut();
        st.waiters.retain(|w| !Rc::ptr_eq(w, &self.waiter));
        drop(st);
        // The head may have been holding back waiters that now fit.
        self.sem.signal(0);
    }
}

/// Units held until dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    units: u64,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.sem.signal(self.units);
    }
}

/// Units held until dropped; keeps its semaphore alive.
#[derive(Debug)]
pub struct StaticPermit {
    sem: Rc<Semaphore>,
    units: u64,
}

impl Drop for StaticPermit {
    fn drop(&mut self) {
        self.sem.signal(self.units);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_are_served_in_order_and_close_fails_them() {
        crate::rt::block_on(async {
            let sem = Rc::new(Semaphore::new(2));
            let big = {
                let sem = sem.clone();
                crate::rt::spawn(async move { sem.acquire_static_permit(3).await.is_ok() })
            };
            crate::rt::sleep(std::time::Duration::from_millis(5)).await;
            // The big request waits at the head: a small one that would fit waits behind it.
            assert_eq!(sem.try_acquire(1), Ok(false));
            sem.signal(1);
            assert!(big.await);
            assert_eq!(sem.available(), 3);
            let held = sem.acquire_permit(3).await.unwrap();
            let blocked = {
                let sem = sem.clone();
                crate::rt::spawn(async move { sem.acquire(1).await })
            };
            crate::rt::sleep(std::time::Duration::from_millis(5)).await;
            sem.close();
            assert_eq!(blocked.await, Err(SemaphoreClosed));
            drop(held);
            assert_eq!(sem.try_acquire(1), Err(SemaphoreClosed));
        });
    }
}
