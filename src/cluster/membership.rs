//! Membership: this broker's registration `brokers/{id}` under an etcd lease it keeps alive.
//! While etcd answers the keep-alives the [`LeaseFence`] deadline moves on; when etcd says the
//! lease is gone, or it cannot be renewed before it may have expired, the broker counts itself
//! out, takes a new lease and registers again (waiting, if an earlier lease of this id still
//! holds the key, until it expires: a broker that restarted within its session, or another
//! process started with the same id).

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use super::fence::LeaseFence;
use super::keys::Keys;
use super::records::BrokerRecord;
use super::Progress;

/// What the membership task needs.
pub struct Membership {
    pub client: Client,
    pub keys: Keys,
    pub me: BrokerRecord,
    /// The lease's time to live (`--session-timeout`, whole seconds).
    pub ttl: Duration,
    pub fence: Arc<LeaseFence>,
    pub progress: Arc<Progress>,
}

impl Membership {
    /// Keeps this broker registered, forever.
    pub async fn run(mut self) {
        let mut previous: Option<i64> = None;
        while !self.fence.is_retired() {
            let result = self.session(&mut previous).await;
            self.fence.lose();
            match result {
                Ok(()) => tracing::warn!(
                    broker = self.me.id,
                    "lost the etcd lease: not acting as a leader until registered again"
                ),
                Err(e) => {
                    self.progress.problem(format!("etcd: {e}"));
                    tracing::warn!(broker = self.me.id, "etcd session: {e}");
                }
            }
            tokio::time::sleep(self.ttl / 6).await;
        }
    }

    /// One lease: take it, register under it, keep it alive until it is lost (`Ok`) or etcd
    /// fails (`Err`).
    async fn session(&mut self, previous: &mut Option<i64>) -> Result<(), etcd_client::Error> {
        if let Some(old) = *previous {
            // Ours, and already given up (the fence is down): let the key go at once rather
            // than wait out its TTL. Kept until etcd has dropped it: after an etcd restart the
            // lease is back with a fresh TTL, and the first tries fail while etcd is away.
            match self.client.lease_revoke(old).await {
                Ok(_) => *previous = None,
                Err(e) if is_lease_not_found(&e) => *previous = None,
                Err(e) => return Err(e),
            }
        }
        self.wait_until_unregistered().await?;
        let sent = Instant::now();
        let grant = self
            .client
            .lease_grant(self.ttl.as_secs().max(1) as i64, None)
            .await?;
        let id = grant.id();
        *previous = Some(id);
        let record = serde_json::to_vec(&self.me).unwrap_or_default();
        let live = self.keys.live(self.me.id);
        let txn = Txn::new()
            .when([Compare::create_revision(live.clone(), CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(live, record.clone(), Some(PutOptions::new().with_lease(id))),
                TxnOp::put(self.keys.known(self.me.id), record, None),
            ]);
        if !self.client.txn(txn).await?.succeeded() {
            // Taken between our look and our write: start over.
            return Ok(());
        }
        self.fence
            .renew(id, sent, Duration::from_secs(grant.ttl().max(0) as u64));
        self.progress.registered();
        tracing::info!(broker = self.me.id, lease = id, "registered in etcd");
        self.keep_alive(id).await
    }

    /// Waits while `brokers/{id}` is held (by an earlier lease of this id).
    async fn wait_until_unregistered(&mut self) -> Result<(), etcd_client::Error> {
        let key = self.keys.live(self.me.id);
        let mut warned = false;
        loop {
            let held = self
                .client
                .get(key.clone(), Some(GetOptions::new().with_count_only()))
                .await?
                .count()
                > 0;
            if !held {
                return Ok(());
            }
            if !warned {
                warned = true;
                let why = format!(
                    "broker id {} is registered under another lease: waiting for it to expire \
                     (an earlier run of this broker, or another broker started with the same id)",
                    self.me.id
                );
                tracing::warn!("{why}");
                self.progress.problem(why);
            }
            tokio::time::sleep(self.ttl / 6).await;
        }
    }

    /// Renews lease `id` every third of its TTL until it is lost or cannot be renewed in time.
    async fn keep_alive(&mut self, id: i64) -> Result<(), etcd_client::Error> {
        let every = self.ttl / 3;
        loop {
            let opened = self.client.lease_keep_alive(id).await;
            let (mut keeper, mut answers) = match opened {
                Ok(pair) => pair,
                Err(e) if self.fence.holds_lease() => {
                    tracing::debug!("keep-alive stream: {e}; retrying");
                    tokio::time::sleep(every / 4).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            loop {
                let sent = Instant::now();
                let asked = keeper.keep_alive().await;
                let answer = match asked {
                    Ok(()) => tokio::time::timeout(every, answers.message()).await,
                    Err(e) => Ok(Err(e)),
                };
                match answer {
                    Ok(Ok(Some(a))) if a.ttl() > 0 => {
                        self.fence
                            .renew(id, sent, Duration::from_secs(a.ttl() as u64));
                    }
                    // etcd no longer has the lease.
                    Ok(Ok(Some(_))) => return Ok(()),
                    Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                        if !self.fence.holds_lease() {
                            return Ok(());
                        }
                        // Open a new stream on the same lease while it still holds.
                        break;
                    }
                }
                tokio::time::sleep(every.saturating_sub(sent.elapsed())).await;
            }
        }
    }
}

/// etcd's answer for a lease it does not have (expired, or revoked already).
fn is_lease_not_found(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(status) if status.message().contains("lease not found"))
}
