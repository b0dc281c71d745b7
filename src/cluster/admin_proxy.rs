//! Admin requests answered by another broker: a consumer group's description and offset reset
//! come from the group's coordinator, and the list of groups from every broker. The request
//! is passed on over the other broker's HTTP port, with `here=true` added so that it is
//! answered there and never passed on again (views that disagree cannot bounce it).

use std::time::Duration;

use shardlog_client::{Admin, ClientError};

use super::Cluster;
use crate::error::{Classify, ErrorClass};

/// How long the other broker may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

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
    #[error("the cluster thread stopped")]
    Stopped,
}

impl Classify for ProxyError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Unavailable
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
        let work = async move { admin.raw(method, &target, &body).await };
        self.on_cluster_thread(work)
            .await
            .ok_or(ProxyError::Stopped)?
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

    #[test]
    fn here_is_added_to_the_query() {
        assert_eq!(answered_there("/v1/groups/g", ""), "/v1/groups/g?here=true");
        assert_eq!(
            answered_there("/v1/groups/g/reset", "topic=t&to=latest"),
            "/v1/groups/g/reset?topic=t&to=latest&here=true"
        );
    }
}
