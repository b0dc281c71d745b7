//! The controller election: the broker that creates `controller` under its lease is the
//! controller until that lease ends (it died, paused, or lost etcd); every broker keeps trying
//! to create the key, so another takes over within a poll of the old lease expiring. The
//! controller's epoch is the key's create revision, which only grows.
//!
//! Topic layouts are created by whichever broker is asked, with a compare-and-swap (see
//! `topics.rs`); the controller's duties (moving leaders, reassigning the partitions of a
//! broker that is gone) come with replication.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};

use super::fence::LeaseFence;
use super::keys::Keys;
use super::records::ControllerRecord;

/// Campaigns for the controller key every `poll`, forever.
pub async fn campaign(
    mut client: Client,
    keys: Keys,
    broker: u32,
    fence: Arc<LeaseFence>,
    poll: Duration,
) {
    let key = keys.controller();
    let record = serde_json::to_vec(&ControllerRecord { broker }).unwrap_or_default();
    loop {
        if let Some(lease) = fence.lease() {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    record.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            match client.txn(txn).await {
                Ok(r) if r.succeeded() => {
                    tracing::info!(broker, "this broker is the controller")
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("controller campaign: {e}"),
            }
        }
        tokio::time::sleep(poll).await;
    }
}
