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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Where one batch of a slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its first attempt is queued or handed over, the answer not yet known.
    First,
    /// It failed and waits to be sent again.
    Failed,
    /// It was sent again after a failure (handed to a connection); answer not yet known.
    Resent,
}

/// A slot's batches that are not finished, by dispatch number.
#[derive(Default)]
pub(crate) struct SlotOrder {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    next: u64,
    open: BTreeMap<u64, Phase>,
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
        s.open.insert(seq, Phase::First);
        Ticket {
            order: self.clone(),
            seq,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, seq: u64, phase: Phase) {
        if let Some(p) = self.lock().open.get_mut(&seq) {
            *p = phase;
        }
        self.changed.notify_waiters();
    }

    /// Waits until `ready` holds for the phases of the batches before `seq`.
    async fn wait_for(&self, seq: u64, ready: impl Fn(Phase) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change between the check and the await wakes us.
            notified.as_mut().enable();
            if self.lock().open.range(..seq).all(|(_, p)| ready(*p)) {
                return;
            }
            notified.await;
        }
    }
}

impl Ticket {
    /// Waits until this batch may be handed to a connection: `retry` says whether it failed
    /// before (see the module's rules).
    pub(crate) async fn turn(&self, retry: bool) {
        if retry {
            self.order.wait_for(self.seq, |p| p == Phase::Resent).await
        } else {
            self.order.wait_for(self.seq, |p| p != Phase::Failed).await
        }
    }

    /// The batch was handed to a connection; `retry` as for [`Ticket::turn`].
    pub(crate) fn handed_over(&self, retry: bool) {
        self.order
            .set(self.seq, if retry { Phase::Resent } else { Phase::First });
    }

    /// The batch failed and will be sent again.
    pub(crate) fn failed(&self) {
        self.order.set(self.seq, Phase::Failed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.order.lock().open.remove(&self.seq);
        self.order.changed.notify_waiters();
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
        assert!(order.lock().open.is_empty(), "finished batches leave");
    }
}
