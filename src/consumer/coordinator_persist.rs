//! Saving groups' offsets files, coalesced per group, and forgetting groups once saved.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Coordinator;
use crate::consumer::offsets::{self, GroupOffsets};
use crate::consumer::ConsumerError;
use crate::rt;

impl Coordinator {
    /// Makes `group`'s committed offsets durable, returning once a write that includes every
    /// change made so far (this one if `changed`, and any still being saved in the background,
    /// such as a poll's commit of its predecessor) has reached the disk.
    ///
    /// Writes are coalesced per group: while one is in flight, later callers wait for it and
    /// then one of them writes a snapshot that covers all of them, so N consumers polling at
    /// once cost about two file writes, not N in a row. One write per group at a time, so a
    /// later snapshot never lands before an earlier one.
    pub(super) async fn persist_if(&self, changed: bool, group: &str) -> Result<(), ConsumerError> {
        if group.is_empty() {
            return Ok(());
        }
        let want = if changed {
            self.request_persist(group)
        } else {
            self.persisting
                .borrow()
                .get(group)
                .map_or(0, |p| p.requested)
        };
        self.wait_persisted(group, want).await
    }

    /// Saves `group`'s offsets without making the caller wait; a failure is logged (the next
    /// COMMIT or GOODBYE reports it to its client, since it retries the write).
    pub(super) fn persist_in_background(self: &Rc<Self>, group: String) {
        if group.is_empty() {
            return;
        }
        let want = self.request_persist(&group);
        let me = self.clone();
        rt::spawn_detached(async move {
            if let Err(e) = me.wait_persisted(&group, want).await {
                tracing::error!(group, error = %e, "cannot save a poll's committed offsets");
            }
        });
    }

    /// Waits until every change requested so far is on disk, for every group (shutdown).
    pub async fn flush(&self) {
        let pending: Vec<(String, u64)> = self
            .persisting
            .borrow()
            .iter()
            .filter(|(_, p)| p.requested > p.done)
            .map(|(g, p)| (g.clone(), p.requested))
            .collect();
        for (group, want) in pending {
            if let Err(e) = self.wait_persisted(&group, want).await {
                tracing::error!(group, error = %e, "cannot save committed offsets at shutdown");
            }
        }
    }

    /// Records that `group` changed; returns the ticket a write must cover.
    pub(super) fn request_persist(&self, group: &str) -> u64 {
        let mut all = self.persisting.borrow_mut();
        let p = all.entry(group.to_string()).or_default();
        p.requested += 1;
        p.requested
    }

    /// Returns once a write covering ticket `want` of `group` is on disk, writing one if none
    /// is in flight.
    pub(super) async fn wait_persisted(&self, group: &str, want: u64) -> Result<(), ConsumerError> {
        loop {
            let wake = self.persisted.notified();
            let start = {
                let mut all = self.persisting.borrow_mut();
                if !all.contains_key(group) && !self.state.borrow().has_group(group) {
                    // Forgotten, which happens only once everything asked of it was saved.
                    return Ok(());
                }
                let p = all.entry(group.to_string()).or_default();
                if p.done >= want {
                    return Ok(());
                }
                (!p.running).then(|| {
                    p.running = true;
                    p.requested
                })
            };
            let Some(mut covers) = start else {
                wake.await;
                continue;
            };
            if let Some(pause) = self.pace(group) {
                // Commits made while waiting go into this write.
                rt::sleep(pause).await;
                covers = self
                    .persisting
                    .borrow()
                    .get(group)
                    .map_or(covers, |p| p.requested);
            }
            let Some(snapshot) = self.state.borrow().committed(group).cloned() else {
                // Never written empty: a group leaves memory only once saved.
                self.persisting.borrow_mut().remove(group);
                self.persisted.notify();
                return Ok(());
            };
            let saved = self.save_group(group, snapshot).await;
            {
                let mut all = self.persisting.borrow_mut();
                let p = all.entry(group.to_string()).or_default();
                p.running = false;
                if saved.is_ok() {
                    p.done = p.done.max(covers);
                }
            }
            self.persisted.notify();
            if saved.is_ok() {
                self.retire(group);
            }
            return saved;
        }
    }

    /// Cluster mode: how long a write of `group`'s offsets that starts now must wait so that
    /// etcd sees at most one per `--offsets-interval`; records the write's start.
    pub(super) fn pace(&self, group: &str) -> Option<Duration> {
        let interval = self.etcd_interval?;
        let now = Instant::now();
        let mut all = self.persisting.borrow_mut();
        let p = all.entry(group.to_string()).or_default();
        let due = p.last.map_or(now, |last| last + interval).max(now);
        p.last = Some(due);
        (due > now).then(|| due - now)
    }

    /// A group's committed offsets from where they are kept: etcd in cluster mode, else its
    /// offsets file.
    pub(super) async fn load_group(&self, group: &str) -> Result<GroupOffsets, ConsumerError> {
        match crate::cluster::installed().filter(|_| self.etcd_interval.is_some()) {
            Some(c) => c
                .load_offsets(group)
                .await
                .map_err(|e| ConsumerError::Cluster(Arc::new(e))),
            None => offsets::load_group(&self.fs, &self.dir, group)
                .await
                .map_err(|e| ConsumerError::Offsets(Arc::new(e))),
        }
    }

    /// Writes `snapshot` as `group`'s committed offsets where they are kept.
    async fn save_group(&self, group: &str, snapshot: GroupOffsets) -> Result<(), ConsumerError> {
        match crate::cluster::installed().filter(|_| self.etcd_interval.is_some()) {
            Some(c) => c
                .save_offsets(group, snapshot)
                .await
                .map_err(|e| ConsumerError::Cluster(Arc::new(e))),
            None => offsets::save(&self.fs, &self.dir, group, &snapshot)
                .await
                .map_err(|e| ConsumerError::Offsets(Arc::new(e))),
        }
    }

    /// Forgets `group` if it has no member and nothing of it waits to be saved (a save in
    /// flight retires it when it lands). Not before the offsets loaded at start were clamped:
    /// a group forgotten earlier would come back from its file unclamped.
    pub(super) fn retire(&self, group: &str) {
        if !self.verified.get() {
            return;
        }
        let pending = self
            .persisting
            .borrow()
            .get(group)
            .is_some_and(|p| p.running || p.done < p.requested);
        if !pending && self.state.borrow_mut().forget_if_idle(group) {
            self.persisting.borrow_mut().remove(group);
        }
    }
}
