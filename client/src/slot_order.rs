//! [`SlotOrder`]: keeps a connection slot's batches in the order they were dispatched when
//! some of them have to be sent again.
//!
//! First attempts already take turns on the slot's line (see `TopicConns::order`). What breaks
//! order is a failure: when a broker restarts, every frame in flight on the slot fails at once,
//! and each batch retries from its own task after its own backoff — so without a rule the
//! batches of one key would be re-sent in whatever order their timers fire, and batches
//! dispatched during the outage would overtake them. The rules, for the batch numbered `n`:
//!
//! - a **retry** of `n` is handed to a connection only when every earlier batch of the slot
//!   has been answered, given up, or itself re-sent since it failed (an earlier first attempt
//!   still in flight is waited for: it went out on the same connection, so it either succeeds
//!   or fails too, and then goes first);
//! - a **first attempt** of `n` is handed over only when no earlier batch of the slot is waiting
//!   to be re-sent.
//!
//! So frames of one slot reach the broker in dispatch order across any number of connection
//! losses. What no client rule can order is a frame the broker refused on its own while a later
//! one on the same connection was stored; that batch lands later (delivery is at-least-once).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

/// A slot's batches that are not finished, by dispatch number.
///
/// Only the batches that can still hold others back are kept: those not yet re-sent since
/// their last failure (`not_resent`: in their first attempt, or failed) and, of those, the
/// failed ones. Each rule is then one look at the smallest number in a set, and a change wakes
/// only the batch it may let go: the first not re-sent (the next retry in order) and the one
/// first attempt waiting (first attempts wait holding the slot's line, so there is at most one).
#[derive(Default)]
pub(crate) struct SlotOrder {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    not_resent: BTreeSet<u64>,
    failed: BTreeSet<u64>,
    /// Wakers of the batches waiting for their turn, by number.
    waiting: HashMap<u64, Waker>,
    /// The first attempt waiting for its turn, if any.
    first_waiting: Option<u64>,
}

impl State {
    fn may_go(&self, seq: u64, retry: bool) -> bool {
        let before = if retry {
            &self.not_resent
        } else {
            &self.failed
        };
        before.first().is_none_or(|&m| m >= seq)
    }

    /// Wakes the waiting batches a change may have let go (at most two).
    fn wake(&self) {
        let first = self.first_waiting.filter(|&n| self.may_go(n, false));
        for n in self.not_resent.first().copied().into_iter().chain(first) {
            if let Some(w) = self.waiting.get(&n) {
                w.wake_by_ref();
            }
        }
    }
}

/// One batch's place in its slot's order; leaving (dropping it) lets later batches by.
pub(crate) struct Ticket {
    order: Arc<SlotOrder>,
    seq: u64,
}

impl SlotOrder {
    /// Numbers a batch as it is dispatched (synchronously, so numbers follow dispatch order).
    pub(crate) fn enter(self: &Arc<Self>) -> Ticket {
        let mut s = self.lock();
        let seq = s.next;
        s.next += 1;
        s.not_resent.insert(seq);
        Ticket {
            order: self.clone(),
            seq,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Ticket {
    /// Waits until this batch may be handed to a connection: `retry` says whether it failed
    /// before (see the module's rules).
    pub(crate) async fn turn(&self, retry: bool) {
        std::future::poll_fn(|cx| {
            let mut s = self.order.lock();
            if s.may_go(self.seq, retry) {
                s.waiting.remove(&self.seq);
                if s.first_waiting == Some(self.seq) {
                    s.first_waiting = None;
                }
                return Poll::Ready(());
            }
            s.waiting.insert(self.seq, cx.waker().clone());
            if !retry {
                s.first_waiting = Some(self.seq);
            }
            Poll::Pending
        })
        .await
    }

    /// The batch was handed to a connection; `retry` as for [`Ticket::turn`].
    pub(crate) fn handed_over(&self, retry: bool) {
        if retry {
            let mut s = self.order.lock();
            s.not_resent.remove(&self.seq);
            s.failed.remove(&self.seq);
            s.wake();
        }
    }

    /// The batch failed and will be sent again.
    pub(crate) fn failed(&self) {
        let mut s = self.order.lock();
        s.not_resent.insert(self.seq);
        s.failed.insert(self.seq);
        s.wake();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.order.lock();
        s.not_resent.remove(&self.seq);
        s.failed.remove(&self.seq);
        s.waiting.remove(&self.seq);
        if s.first_waiting == Some(self.seq) {
            s.first_waiting = None;
        }
        s.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Polls `fut` once: whether it finished without waiting.
    fn ready_now(fut: impl std::future::Future<Output = ()>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        fut.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn first_attempts_pipeline_until_one_fails() {
        let order = Arc::new(SlotOrder::default());
        let (a, b, c) = (order.enter(), order.enter(), order.enter());
        assert!(ready_now(a.turn(false)));
        assert!(
            ready_now(b.turn(false)),
            "an earlier frame in flight does not hold a later one"
        );
        a.failed();
        assert!(
            !ready_now(c.turn(false)),
            "a failed earlier batch goes first"
        );
        a.handed_over(true);
        assert!(ready_now(c.turn(false)));
    }

    #[test]
    fn retries_go_in_dispatch_order() {
        let order = Arc::new(SlotOrder::default());
        let (a, b, c) = (order.enter(), order.enter(), order.enter());
        c.failed();
        assert!(
            !ready_now(c.turn(true)),
            "a and b are still in flight on the lost connection"
        );
        b.failed();
        assert!(!ready_now(c.turn(true)));
        assert!(
            !ready_now(b.turn(true)),
            "a may still fail and must go first"
        );
        drop(a); // answered
        assert!(ready_now(b.turn(true)));
        assert!(!ready_now(c.turn(true)), "b has not been re-sent yet");
        b.handed_over(true);
        assert!(ready_now(c.turn(true)));
    }

    #[tokio::test]
    async fn a_waiting_retry_wakes_when_the_earlier_one_is_resent() {
        let order = Arc::new(SlotOrder::default());
        let (a, b) = (order.enter(), order.enter());
        a.failed();
        b.failed();
        let waiting = tokio::spawn(async move {
            b.turn(true).await;
            b
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        a.handed_over(true);
        let b = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("task");
        drop(b);
        drop(a);
        let s = order.lock();
        assert!(
            s.not_resent.is_empty() && s.failed.is_empty() && s.waiting.is_empty(),
            "finished batches leave"
        );
    }

    /// A thousand batches failed at once (a lost connection) retry from their own tasks in any
    /// order of their timers; they are re-sent in dispatch order all the same.
    #[tokio::test]
    async fn many_failed_batches_are_resent_in_dispatch_order() {
        let order = Arc::new(SlotOrder::default());
        let tickets: Vec<Ticket> = (0..1000).map(|_| order.enter()).collect();
        for t in &tickets {
            t.failed();
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Spawned newest first, so the tasks ask for their turn in the reverse order.
        for t in tickets.into_iter().rev() {
            let tx = tx.clone();
            tokio::spawn(async move {
                t.turn(true).await;
                tx.send(t.seq).unwrap();
                t.handed_over(true);
            });
        }
        drop(tx);
        let mut sent = Vec::new();
        while let Some(seq) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("no batch left waiting")
        {
            sent.push(seq);
        }
        assert_eq!(sent, (0..1000).collect::<Vec<_>>());
    }
}
