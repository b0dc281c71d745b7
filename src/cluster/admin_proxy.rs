//! Admin requests answered by another broker: a consumer group's description and offset reset
//! come from the group's coordinator, and the list of groups from every broker. The request
//! is passed on over the other broker's HTTP port, with `here=true` added so that it is
//! answered there and never passed on again (views that disagree cannot bounce it).
//!
//! Each such request is a connection of its own to the other broker (the admin client's
//! exchange), and so is each partition offset a coordinator asks of a leader
//! ([`Cluster::offsets_at_leader`]). [`PeerRequests`] bounds how many this broker has at other
//! brokers at once (`--max-peer-requests`): more wait their turn, in order, for at most
//! [`QUEUE_WITHIN`], and are then refused.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use shardlog_client::{Admin, ClientError};

use super::Cluster;
use crate::error::{Classify, ErrorClass};

/// How long the other broker may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// How long a request waits for its turn before it is refused.
pub const QUEUE_WITHIN: Duration = Duration::from_secs(10);

/// Every peer request slot was taken for [`QUEUE_WITHIN`].
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{max} requests of this broker already wait at other brokers (--max-peer-requests) and \
     none finished within {QUEUE_WITHIN:?}; retry"
)]
pub struct PeerBusy {
    pub max: usize,
}

/// The slots of the HTTP requests this broker may have at other brokers at once.
#[derive(Clone)]
pub struct PeerRequests {
    max: usize,
    slots: Arc<tokio::sync::Semaphore>,
}

impl PeerRequests {
    pub fn new(max: usize) -> PeerRequests {
        let max = max.max(1);
        PeerRequests {
            max,
            slots: Arc::new(tokio::sync::Semaphore::new(max)),
        }
    }

    /// Runs `exchange` in a slot, once one is free (on the cluster thread's runtime).
    pub async fn run<T>(&self, exchange: impl Future<Output = T>) -> Result<T, PeerBusy> {
        let busy = PeerBusy { max: self.max };
        let _slot = tokio::time::timeout(QUEUE_WITHIN, self.slots.acquire())
            .await
            .map_err(|_| busy.clone())?
            .map_err(|_| busy)?;
        Ok(exchange.await)
    }
}

/// Why another broker could not answer an admin request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProxyError {
    #[error("broker {0} is not up")]
    Down(u32),
    #[error("asking broker {broker} at {addr}: {source}")]
    Link {
        broker: u32,
        addr: String,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Busy(#[from] PeerBusy),
    #[error("the cluster thread stopped")]
    Stopped,
}

impl Classify for ProxyError {
    fn class(&self) -> ErrorClass {
        match self {
            ProxyError::Busy(_) => ErrorClass::LimitReached,
            _ => ErrorClass::Unavailable,
        }
    }
}

/// `target` (a path and its query string, as received) with `here=true` added.
pub fn answered_there(path: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{path}?here=true")
    } else {
        format!("{path}?{query}&here=true")
    }
}

impl Cluster {
    /// Sends `method target` with `body` to broker `broker`'s HTTP port and returns its status
    /// and body as they came.
    pub async fn admin_at(
        &self,
        broker: u32,
        method: &'static str,
        target: String,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ProxyError> {
        let addr = self
            .state()
            .live
            .get(&broker)
            .map(|b| b.http.clone())
            .ok_or(ProxyError::Down(broker))?;
        let admin = Admin::new(addr.clone()).with_timeout(ANSWER_WITHIN);
        let peers = self.peer_requests.clone();
        let work = async move { peers.run(admin.raw(method, &target, &body)).await };
        self.on_cluster_thread(work)
            .await
            .ok_or(ProxyError::Stopped)??
            .map_err(|source| ProxyError::Link {
                broker,
                addr,
                source,
            })
    }

    /// The ids of the brokers up now, this one included.
    pub fn live_ids(&self) -> Vec<u32> {
        self.state().live.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn peer_requests_wait_their_turn() {
        let peers = PeerRequests::new(1);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let peers = peers.clone();
            async move { peers.run(rx).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(peers.slots.available_permits(), 0);
        let mut second = Box::pin(peers.run(async { 2 }));
        assert!(futures_lite::future::poll_once(&mut second).await.is_none());
        tx.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        assert_eq!(second.await.unwrap(), 2);
    }

    #[test]
    fn here_is_added_to_the_query() {
        assert_eq!(answered_there("/v1/groups/g", ""), "/v1/groups/g?here=true");
        assert_eq!(
            answered_there("/v1/groups/g/reset", "topic=t&to=latest"),
            "/v1/groups/g/reset?topic=t&to=latest&here=true"
        );
    }
}
