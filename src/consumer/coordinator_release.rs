//! Cluster mode: a coordinator lets go of the groups another broker has coordinated at any
//! moment since it last looked. Their state here may be stale (members that moved on,
//! committed offsets older than etcd's), so it is dropped — members without committing what
//! their last polls returned, offsets not yet written without writing them (every
//! acknowledged COMMIT is already in etcd) — and a group that comes back here is read from
//! etcd afresh when a consumer registers in it.
//!
//! It looks at the start of every group operation and on the expiry timer, through the
//! view's log of live-broker sets (`cluster::view::LiveLog`), so a group that moved away and
//! back between two looks is dropped too.

use super::Coordinator;
use crate::cluster::group_link::coordinator_of;

impl Coordinator {
    /// Drops the groups that were not this broker's at some moment since the last look.
    pub fn release_moved(&self) {
        let Some(cluster) = crate::cluster::installed() else {
            return;
        };
        let (generation, sets) = cluster.live_since(self.released.get());
        if generation == self.released.get() {
            return;
        }
        self.released.set(generation);
        let me = cluster.broker;
        let ours = |group: &str| match &sets {
            Some(sets) => sets
                .iter()
                .all(|live| coordinator_of(group, live.iter().copied()) == Some(me)),
            // Changes were missed: keep nothing that may be stale.
            None => false,
        };
        let names: Vec<String> = self
            .state
            .borrow()
            .names()
            .into_iter()
            .map(|(g, _)| g)
            .filter(|g| !ours(g))
            .collect();
        if names.is_empty() {
            return;
        }
        let drop = |g: &str| names.iter().any(|n| n == g);
        let dropped = self.state.borrow_mut().drop_members_of(&drop);
        for g in &names {
            let running = self.persisting.borrow().get(g).is_some_and(|p| p.running);
            // A write in flight retires the group when it lands (it has no member now).
            if !running {
                self.persisting.borrow_mut().remove(g);
                self.state.borrow_mut().forget_if_idle(g);
            }
        }
        self.persisted.notify();
        tracing::info!(groups = ?names, consumers = dropped.len(),
            "another broker coordinates these consumer groups now; dropped them here");
    }
}
