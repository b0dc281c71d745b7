//! Whether this broker may act as a leader now: it holds an etcd lease that cannot have
//! expired yet. The membership task renews the deadline after each keep-alive etcd answers;
//! anything that acts on leadership checks [`LeaseFence::holds_lease`], one atomic load and a
//! clock read, so a broker that was paused or cut off from etcd stops by itself once its
//! lease may be gone, even if the task that would notice is not running.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The lease deadline, shared by the membership task (writer) and everyone who checks.
#[derive(Debug, Default)]
pub struct LeaseFence {
    /// Nanoseconds after [`epoch`] until which the lease surely holds; 0: no lease.
    valid_until: AtomicU64,
    /// The lease's etcd id (0: none), for keys written under it.
    lease: AtomicI64,
    /// The broker is leaving the cluster: no lease is taken or renewed any more.
    retired: AtomicBool,
}

/// The monotonic instant deadlines are counted from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_at(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

impl LeaseFence {
    /// Whether the lease surely still holds.
    pub fn holds_lease(&self) -> bool {
        nanos_at(Instant::now()) < self.valid_until.load(Ordering::Acquire)
    }

    /// The lease `id` holds until `sent + ttl`: etcd counts its TTL from when it received the
    /// request, which was after `sent`, so this never outlasts etcd's view.
    pub fn renew(&self, id: i64, sent: Instant, ttl: Duration) {
        if self.is_retired() {
            return;
        }
        self.lease.store(id, Ordering::Release);
        self.valid_until
            .store(nanos_at(sent + ttl).max(1), Ordering::Release);
    }

    /// The lease is gone (etcd said so, or a new one is being taken).
    pub fn lose(&self) {
        self.valid_until.store(0, Ordering::Release);
        self.lease.store(0, Ordering::Release);
    }

    /// For good: the broker is shutting down.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.lose();
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// The lease's id while it holds.
    pub fn lease(&self) -> Option<i64> {
        let id = self.lease.load(Ordering::Acquire);
        (id != 0 && self.holds_lease()).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_until_its_deadline() {
        let f = LeaseFence::default();
        assert!(!f.holds_lease());
        f.renew(9, Instant::now(), Duration::from_secs(60));
        assert!(f.holds_lease());
        assert_eq!(f.lease(), Some(9));
        f.renew(
            9,
            Instant::now() - Duration::from_secs(2),
            Duration::from_secs(1),
        );
        assert!(!f.holds_lease());
        assert_eq!(f.lease(), None);
        f.renew(9, Instant::now(), Duration::from_secs(60));
        f.lose();
        assert!(!f.holds_lease());
        f.retire();
        f.renew(9, Instant::now(), Duration::from_secs(60));
        assert!(!f.holds_lease());
    }
}
