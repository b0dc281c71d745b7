//! Routing by the cluster's map: [`ClusterMap`] is `GET /v1/cluster` of a broker in cluster
//! mode (which broker leads each partition, and where every broker listens), and `Routes`
//! (private) is what a producer with an admin address uses to send each keyed batch straight
//! to its partition's leader and spread keyless batches over the brokers that are up.
//!
//! The map is a hint, never a promise: a broker that gets a frame for a partition it does not
//! lead forwards it to the leader, so a stale map costs a hop, not a wrong answer. The map is
//! asked for when a topic is first routed and again (at most once per [`MIN_REFRESH`]) after
//! a retryable failure or when a topic or partition is missing from it. A single host answers
//! 404: the producer then never asks again and sends everything to its configured brokers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::admin::Admin;
use crate::ClientError;

/// The least time between two requests for the map.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);

/// A cluster's brokers and every topic's partition leaders, as one broker sees them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterMap {
    /// The cluster's name (its etcd key prefix).
    pub cluster: String,
    /// The broker that answered.
    pub broker: u32,
    /// The etcd revision the answering broker's view is at.
    pub revision: i64,
    pub brokers: Vec<ClusterBroker>,
    pub topics: Vec<ClusterTopic>,
}

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterBroker {
    pub id: u32,
    /// `up` while its etcd lease holds, `down` after.
    pub state: String,
    /// Its framed-protocol address (`host:port`).
    pub framed: String,
    /// Its HTTP address (`host:port`).
    pub http: String,
    pub shards: u32,
}

impl ClusterBroker {
    pub fn is_up(&self) -> bool {
        self.state == "up"
    }
}

/// One topic's partitions and their leaders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterTopic {
    pub name: String,
    pub partitions: Vec<ClusterPartition>,
}

/// One partition: its index in the layout, its leader (none assigned: `None`) and the leader's
/// epoch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterPartition {
    pub partition: u32,
    pub leader: Option<u32>,
    pub leader_epoch: u64,
}

impl ClusterMap {
    /// The framed address of the broker leading `topic`'s `partition`, if the map has one and
    /// that broker is up.
    pub fn leader_framed(&self, topic: &str, partition: u32) -> Option<&str> {
        let leader = self
            .topics
            .iter()
            .find(|t| t.name == topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)?
            .leader?;
        self.brokers
            .iter()
            .find(|b| b.id == leader && b.is_up())
            .map(|b| b.framed.as_str())
    }

    /// The framed addresses of the brokers that are up, by broker id.
    pub fn up_framed(&self) -> Vec<&str> {
        let mut up: Vec<&ClusterBroker> = self.brokers.iter().filter(|b| b.is_up()).collect();
        up.sort_by_key(|b| b.id);
        up.into_iter().map(|b| b.framed.as_str()).collect()
    }
}

impl Admin {
    /// The cluster's map (`GET /v1/cluster`), or `None` from a single host (which has no
    /// cluster and answers 404).
    pub async fn cluster(&self) -> Result<Option<ClusterMap>, ClientError> {
        match self.call("GET", "/v1/cluster", b"").await {
            Ok(map) => Ok(Some(map)),
            Err(ClientError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What a producer knows of the cluster.
#[derive(Default)]
enum Known {
    /// Not asked yet (or the last ask failed: asked again after [`MIN_REFRESH`]).
    #[default]
    Nothing,
    /// A single host: never asked again.
    SingleHost,
    Map(Arc<ClusterMap>),
}

/// A producer's routes: the cluster map, asked for through the admin API and refreshed at most
/// once per [`MIN_REFRESH`].
pub(crate) struct Routes {
    admin: Option<Admin>,
    known: Mutex<(Known, Option<Instant>)>,
    /// Held while the map is asked for, so concurrent batches ask once.
    asking: tokio::sync::Mutex<()>,
}

impl Routes {
    pub fn new(admin: Option<Admin>) -> Routes {
        Routes {
            admin,
            known: Mutex::new((Known::Nothing, None)),
            asking: tokio::sync::Mutex::new(()),
        }
    }

    /// The framed address of the leader of `topic`'s `partition`, if known (asking for the
    /// map first when it may be missing or lacks the partition, within the refresh limit).
    pub async fn leader(&self, topic: &str, partition: u32) -> Option<String> {
        if let Some(map) = self.current() {
            if let Some(addr) = map.leader_framed(topic, partition) {
                return Some(addr.to_string());
            }
        }
        let map = self.refresh().await?;
        map.leader_framed(topic, partition).map(str::to_string)
    }

    /// The address keyless batch number `turn` goes to: the brokers that are up take turns.
    pub async fn keyless(&self, turn: usize) -> Option<String> {
        let map = match self.current() {
            Some(map) => map,
            None => self.refresh().await?,
        };
        let up = map.up_framed();
        (!up.is_empty()).then(|| up[turn % up.len()].to_string())
    }

    /// The map now, without asking.
    fn current(&self) -> Option<Arc<ClusterMap>> {
        match &lock(&self.known).0 {
            Known::Map(map) => Some(map.clone()),
            _ => None,
        }
    }

    /// Asks for the map again unless that was done less than [`MIN_REFRESH`] ago (or the
    /// broker is a single host), and returns the newest map known.
    pub async fn refresh(&self) -> Option<Arc<ClusterMap>> {
        let admin = self.admin.as_ref()?;
        let due = |k: &(Known, Option<Instant>)| match k {
            (Known::SingleHost, _) => false,
            (_, Some(at)) => at.elapsed() >= MIN_REFRESH,
            (_, None) => true,
        };
        if !due(&lock(&self.known)) {
            return self.current();
        }
        let _asking = self.asking.lock().await;
        if !due(&lock(&self.known)) {
            return self.current();
        }
        let answer = admin.cluster().await;
        let mut known = lock(&self.known);
        known.1 = Some(Instant::now());
        match answer {
            Ok(Some(map)) => known.0 = Known::Map(Arc::new(map)),
            Ok(None) => known.0 = Known::SingleHost,
            // Kept: an old map is better than none; asked again after MIN_REFRESH.
            Err(_) => {}
        }
        drop(known);
        self.current()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const DOC_EXAMPLE: &str = r#"{
      "cluster": "shardlog", "broker": 3, "holds_lease": true, "revision": 42,
      "controller": {"broker": 1, "epoch": 5},
      "brokers": [
        {"id": 1, "state": "up", "framed": "127.0.0.1:9214", "http": "127.0.0.1:9212", "shards": 1},
        {"id": 2, "state": "down", "framed": "127.0.0.1:9224", "http": "127.0.0.1:9222", "shards": 1}
      ],
      "topics": [{"name": "orders", "generation": 1, "token_ranges": 3,
        "ranges_per_token_range": 4, "replication_factor": 1,
        "partitions": [
          {"partition": 0, "id": "1_-9223372036854775808_0", "token_start": -9223372036854775808,
           "token_end": -7686143364045646508, "replicas": [1], "leader": 1, "leader_epoch": 1},
          {"partition": 1, "id": "x", "token_start": 0, "token_end": 1, "replicas": [2],
           "leader": 2, "leader_epoch": 3},
          {"partition": 2, "id": "y", "token_start": 2, "token_end": 3, "replicas": [],
           "leader": null, "leader_epoch": 0}
        ]}]
    }"#;

    #[test]
    fn the_documented_answer_decodes_and_routes_to_up_leaders_only() {
        let map: ClusterMap = serde_json::from_str(DOC_EXAMPLE).expect("decodes");
        assert_eq!(map.leader_framed("orders", 0), Some("127.0.0.1:9214"));
        assert_eq!(map.leader_framed("orders", 1), None, "leader 2 is down");
        assert_eq!(map.leader_framed("orders", 2), None, "no leader");
        assert_eq!(map.leader_framed("orders", 9), None);
        assert_eq!(map.leader_framed("other", 0), None);
        assert_eq!(map.up_framed(), vec!["127.0.0.1:9214"]);
    }

    /// An HTTP server answering every request with `status` and `body`, counting requests.
    async fn server(status: u16, body: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = vec![0; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (addr, asked)
    }

    #[tokio::test]
    async fn a_single_host_is_asked_once_and_routes_nothing() {
        let (addr, asked) = server(404, "404 Not Found: no cluster").await;
        let routes = Routes::new(Some(Admin::new(addr)));
        assert_eq!(routes.leader("orders", 0).await, None);
        assert_eq!(routes.keyless(0).await, None);
        assert_eq!(routes.refresh().await, None);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_cluster_map_routes_and_is_refreshed_at_most_once_a_second() {
        let (addr, asked) = server(200, DOC_EXAMPLE).await;
        let routes = Routes::new(Some(Admin::new(addr)));
        assert_eq!(
            routes.leader("orders", 0).await.as_deref(),
            Some("127.0.0.1:9214")
        );
        // Missing leaders make it ask again, but not more than once per MIN_REFRESH.
        for _ in 0..5 {
            assert_eq!(routes.leader("orders", 1).await, None);
        }
        assert_eq!(routes.keyless(7).await.as_deref(), Some("127.0.0.1:9214"));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_an_admin_address_nothing_is_routed() {
        let routes = Routes::new(None);
        assert_eq!(routes.leader("orders", 0).await, None);
        assert_eq!(routes.keyless(0).await, None);
    }
}
