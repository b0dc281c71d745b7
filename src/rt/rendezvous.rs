//! A meeting point for every shard: each arrives, and waits until all have. Graceful shutdown
//! uses it between "my connections are drained" and "close my partitions": a shard that closed
//! its partitions early could still be sent appends forwarded by a shard that is draining.
//!
//! Waiting polls a shared counter on the shard's timer. It runs once, at shutdown, so a few
//! milliseconds of latency cost nothing, and it needs no waker that crosses threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a waiting shard looks at the counter.
const POLL: Duration = Duration::from_millis(2);

#[derive(Clone, Debug)]
pub struct Rendezvous {
    missing: Arc<AtomicUsize>,
}

impl Rendezvous {
    /// A meeting of `parties` shards.
    pub fn new(parties: usize) -> Rendezvous {
        Rendezvous {
            missing: Arc::new(AtomicUsize::new(parties)),
        }
    }

    /// Arrives (once per party) and waits until every party has. The shard keeps serving its
    /// other tasks (the mesh included) meanwhile.
    pub async fn arrive_and_wait(&self) {
        self.missing.fetch_sub(1, Ordering::AcqRel);
        while self.missing.load(Ordering::Acquire) > 0 {
            super::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn nobody_leaves_before_the_last_arrives() {
        let meeting = Rendezvous::new(2);
        let first_left = Arc::new(AtomicBool::new(false));
        let (m, left) = (meeting.clone(), first_left.clone());
        let early = std::thread::spawn(move || {
            super::super::block_on(async move {
                m.arrive_and_wait().await;
                left.store(true, Ordering::Release);
            })
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !first_left.load(Ordering::Acquire),
            "left before the second party arrived"
        );
        super::super::block_on(async move { meeting.arrive_and_wait().await });
        early.join().unwrap();
        assert!(first_left.load(Ordering::Acquire));
    }
}
