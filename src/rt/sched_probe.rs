//! The scheduling delay of a shard: how long a task that became ready waited before its
//! executor polled it. The ticker ([`super::keep_awake`]) wakes itself at every tick and
//! records the wait until it is polled again, in a histogram of the shard's thread that a
//! scrape reads ([`snapshot`]). The wait covers the tasks queued ahead, the rest of a time
//! slice, and a park with runnable work (see `keep_awake`); it does not include waits on the
//! disk or the network, which happen before a task is ready.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::stats::{Histogram, HistogramSnapshot};

thread_local! {
    /// This shard thread's scheduling delays.
    static DELAY: Histogram = Histogram::default();
}

/// Makes the current task ready (wakes it) and returns when its executor polls it again;
/// records the wait in this thread's histogram.
pub async fn wake_and_measure() {
    let woke = Instant::now();
    WakeSelf { woken: false }.await;
    DELAY.with(|h| h.record(woke.elapsed()));
}

/// This thread's scheduling delays so far (empty on a thread that never measured one).
pub fn snapshot() -> HistogramSnapshot {
    DELAY.with(Histogram::snapshot)
}

/// Pending once, after waking its own task; ready when polled again.
struct WakeSelf {
    woken: bool,
}

impl Future for WakeSelf {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.woken {
            return Poll::Ready(());
        }
        self.woken = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wake_records_one_delay_on_this_thread() {
        let before = snapshot().count();
        crate::rt::block_on(async {
            for _ in 0..3 {
                wake_and_measure().await;
            }
        });
        let after = snapshot();
        assert_eq!(after.count(), before + 3);
        // Another thread has histograms of its own.
        let there = std::thread::spawn(|| snapshot().count()).join().unwrap();
        assert_eq!(there, 0);
    }
}
