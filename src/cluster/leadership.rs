//! Write fencing at the partition: the shard that writes a partition asks its
//! [`PartitionFence`] before storing a frame and again before acknowledging it. A fence says
//! whether, at that moment, this broker holds its etcd lease ([`LeaseFence`]) and the latest
//! view names it the partition's leader at the epoch the frame was routed with (Kafka's
//! fencing by leader epoch). The watch of etcd ([`super::view`]) keeps every fence up to date
//! under the same lock that changes the view, so a fence never lags the view it came from.
//!
//! A fence is one atomic per partition, made when a shard installs the partition's writer;
//! a single host has none, and its writers never look here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::fence::LeaseFence;
use super::view::ClusterState;
use crate::error::{Classify, ErrorClass};

/// Why the shard writing a partition refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// Cut off from etcd (or paused past its session): this broker acts on no leadership.
    #[error("broker {broker} does not hold its cluster lease now; nothing was stored")]
    NoLease { broker: u32 },
    /// The view names another leader, none, or another epoch than the frame was routed with.
    #[error(
        "broker {broker} does not lead partition {partition} of '{topic}' at epoch {epoch}; \
         nothing was stored"
    )]
    NotLeader {
        broker: u32,
        topic: String,
        partition: u32,
        epoch: u64,
    },
    /// Stored, but the lease (or the leadership) was lost before the acknowledgement: the
    /// outcome is unknown to the client, which may retry (at least once).
    #[error(
        "broker {broker} lost its lease or the leadership of partition {partition} of \
         '{topic}' while writing; the messages may have been stored"
    )]
    LostWhileWriting {
        broker: u32,
        topic: String,
        partition: u32,
    },
}

impl Classify for FenceError {
    /// Retryable: the leader comes back, or the client's next try finds the new one.
    fn class(&self) -> ErrorClass {
        ErrorClass::Unavailable
    }
}

/// The fence of one partition on this broker.
#[derive(Debug)]
pub struct PartitionFence {
    topic: String,
    partition: u32,
    broker: u32,
    /// The epoch at which the view names this broker the leader; 0: it does not lead it.
    led_at: AtomicU64,
    lease: Arc<LeaseFence>,
}

impl PartitionFence {
    /// Whether a frame routed at `epoch` may be stored now.
    pub fn admit(&self, epoch: u64) -> Result<(), FenceError> {
        if !self.lease.holds_lease() {
            return Err(FenceError::NoLease {
                broker: self.broker,
            });
        }
        let led_at = self.led_at.load(Ordering::Acquire);
        if led_at == 0 || led_at != epoch {
            return Err(FenceError::NotLeader {
                broker: self.broker,
                topic: self.topic.clone(),
                partition: self.partition,
                epoch,
            });
        }
        Ok(())
    }

    /// Whether a frame routed at `epoch`, now durable, may be acknowledged: the lease and the
    /// leadership held throughout (else the client hears the outcome is unknown).
    pub fn confirm(&self, epoch: u64) -> Result<(), FenceError> {
        self.admit(epoch).map_err(|_| FenceError::LostWhileWriting {
            broker: self.broker,
            topic: self.topic.clone(),
            partition: self.partition,
        })
    }

    fn set(&self, state: &ClusterState) {
        let led_at = match state.leader_of(&self.topic, self.partition) {
            Some((leader, epoch)) if leader == self.broker => epoch,
            _ => 0,
        };
        self.led_at.store(led_at, Ordering::Release);
    }
}

/// Every partition fence of this broker, kept up to date by the watch.
#[derive(Debug)]
pub struct Leadership {
    broker: u32,
    lease: Arc<LeaseFence>,
    fences: Mutex<HashMap<(String, u32), Weak<PartitionFence>>>,
}

impl Leadership {
    pub fn new(broker: u32, lease: Arc<LeaseFence>) -> Leadership {
        Leadership {
            broker,
            lease,
            fences: Mutex::default(),
        }
    }

    /// The fence of partition `j` of `topic`, set from `state`: the caller holds the view's
    /// lock (read), so no change of the view can slip between the two.
    pub fn fence(&self, state: &ClusterState, topic: &str, j: u32) -> Arc<PartitionFence> {
        let mut fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        let key = (topic.to_string(), j);
        if let Some(f) = fences.get(&key).and_then(Weak::upgrade) {
            return f;
        }
        let fence = Arc::new(PartitionFence {
            topic: topic.to_string(),
            partition: j,
            broker: self.broker,
            led_at: AtomicU64::new(0),
            lease: self.lease.clone(),
        });
        fence.set(state);
        fences.insert(key, Arc::downgrade(&fence));
        fence
    }

    /// Brings every fence to `state`; the caller holds the view's lock (write). Fences no
    /// writer holds any more are forgotten.
    pub fn refresh(&self, state: &ClusterState) {
        let mut fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        fences.retain(|_, f| match f.upgrade() {
            Some(f) => {
                f.set(state);
                true
            }
            None => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::cluster::records::PartitionRecord;

    fn led_by(leader: u32, epoch: u64) -> ClusterState {
        let mut s = ClusterState::default();
        let record = PartitionRecord {
            replicas: vec![leader],
            leader: Some(leader),
            leader_epoch: epoch,
        };
        s.partitions
            .entry("t".into())
            .or_default()
            .insert(0, (record, 1));
        s
    }

    #[test]
    fn a_write_needs_the_lease_the_leadership_and_the_epoch_it_was_routed_with() {
        let lease = Arc::new(LeaseFence::default());
        let leadership = Leadership::new(1, lease.clone());
        let fence = leadership.fence(&led_by(1, 3), "t", 0);
        assert!(matches!(fence.admit(3), Err(FenceError::NoLease { .. })));
        lease.renew(7, Instant::now(), Duration::from_secs(60));
        assert_eq!(fence.admit(3), Ok(()));
        // Routed with a stale epoch.
        assert!(matches!(fence.admit(2), Err(FenceError::NotLeader { .. })));
        assert!(matches!(fence.admit(0), Err(FenceError::NotLeader { .. })));
        // The leadership moves: the same fence follows the view.
        leadership.refresh(&led_by(2, 4));
        let e = fence.admit(3).unwrap_err();
        assert!(e
            .to_string()
            .contains("broker 1 does not lead partition 0 of 't' at epoch 3"));
        leadership.refresh(&led_by(1, 5));
        assert_eq!(fence.admit(5), Ok(()));
        // Lost between the write and the acknowledgement: the outcome is unknown.
        lease.lose();
        let e = fence.confirm(5).unwrap_err();
        assert!(e.to_string().contains("may have been stored"), "{e}");
        assert_eq!(e.class(), ErrorClass::Unavailable);
    }

    #[test]
    fn fences_are_shared_and_forgotten_when_no_writer_holds_them() {
        let leadership = Leadership::new(1, Arc::default());
        let state = led_by(1, 1);
        let a = leadership.fence(&state, "t", 0);
        let b = leadership.fence(&state, "t", 0);
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        leadership.refresh(&state);
        assert!(leadership.fences.lock().unwrap().is_empty());
    }
}
