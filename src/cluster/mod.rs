//! Cluster mode: several brokers agreeing through etcd on who is alive, which topics exist
//! with which layout, and who leads each partition at which epoch (docs/cluster.md).
//!
//! Everything here runs on a tokio runtime of its own thread ("cluster"), beside the shards
//! and never on their produce path. The shards see the cluster through [`installed`]: the
//! view of etcd's keys ([`view`]) and the lease fence ([`fence`]), which says in one atomic
//! load whether this broker may act as a leader at all. Without `--etcd-endpoints` nothing
//! here starts and [`installed`] is `None`.
//!
//! - [`identity`]: the data directory remembers its broker id.
//! - [`keys`], [`records`]: the key layout in etcd, the JSON values, a new topic's plan.
//! - [`membership`]: registration under a lease kept alive; [`fence`]: its deadline.
//! - [`controller`]: the election of one controller.
//! - [`leadership`]: the write fence of each partition (lease, leader, epoch), which the
//!   shard writing the partition asks before storing and before acknowledging.
//! - [`view`]: the watched state; [`topics`]: topic creation by compare-and-swap;
//!   [`json`]: `GET /v1/cluster`.
//! - [`catalog`]: topics opened on this broker with etcd's layout (any request naming a
//!   topic it has not opened yet), created and deleted in etcd by the admin API; [`dropped`]:
//!   shard 0 dropping the local data of topics deleted from etcd; [`stale`]: at start, the
//!   files of topics deleted (or deleted and created again) while this broker was down.
//! - [`offsets`]: consumer groups' committed offsets in etcd.
//! - [`remote_read`]: a poll's reads of partitions another broker leads (framed FETCH), over
//!   the connections of [`read_pool`], bounded per leader.
//! - [`admin_proxy`]: admin requests another broker answers (a group's coordinator).
//! - [`group_link`]: which broker coordinates a consumer group, and passing the group's
//!   operations to it (framed GROUP).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

use crate::config::Config;
use crate::error::{Classify, ErrorClass};
use crate::storage::fs::BrokerFs;

pub mod admin_proxy;
pub mod catalog;
pub mod controller;
pub mod dropped;
pub mod fence;
pub mod forward;
pub mod group_link;
pub mod identity;
pub mod json;
pub mod keys;
pub mod leadership;
pub mod membership;
pub mod offsets;
pub mod read_pool;
pub mod records;
pub mod remote_read;
pub mod session;
pub mod stale;
pub mod topics;
pub mod view;

use fence::LeaseFence;
use forward::{ForwardError, Forwarder};
use keys::Keys;
use leadership::{Leadership, PartitionFence};
use records::{BrokerRecord, PlanError};
use topics::TopicFound;
use view::{ClusterState, SharedState};

/// Replicas per partition in this version (replication comes next).
pub const REPLICATION_FACTOR: u32 = 1;

/// This broker's part in its cluster.
pub struct Cluster {
    pub name: String,
    pub broker: u32,
    pub fence: Arc<LeaseFence>,
    state: SharedState,
    client: Client,
    keys: Keys,
    runtime: tokio::runtime::Handle,
    ranges_per_shard: u32,
    forwarder: Forwarder,
    remote_reads: remote_read::RemoteReads,
    group_links: group_link::GroupLinks,
    /// Bounds the HTTP requests this broker has at other brokers ([`admin_proxy`]).
    peer_requests: admin_proxy::PeerRequests,
    /// Names of topics deleted from etcd, until shard 0 takes the receiver ([`dropped`]).
    deleted: Mutex<Option<futures_channel::mpsc::UnboundedReceiver<String>>>,
    leadership: Arc<Leadership>,
}

/// Where a write to a partition goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This broker leads it (at `epoch`) and holds its lease: write here.
    Local { epoch: u64 },
    /// Broker `leader` leads it at `epoch`: forward to its framed address.
    Forward {
        leader: u32,
        addr: String,
        epoch: u64,
    },
}

static INSTALLED: OnceLock<Arc<Cluster>> = OnceLock::new();

/// The cluster this process is a broker of, if it runs in cluster mode.
pub fn installed() -> Option<&'static Arc<Cluster>> {
    INSTALLED.get()
}

/// In cluster mode: checks the data directory's broker id, connects to etcd, registers, and
/// installs the [`Cluster`] for the shards to see. A single host does nothing.
pub fn start_if_configured(config: &Config, fs: &BrokerFs) -> Result<(), ClusterError> {
    let Some(id) = config.broker_id.filter(|_| config.is_cluster()) else {
        return Ok(());
    };
    // Before the shards run: a short-lived executor on this thread, as for the data dir.
    let (id_fs, dir) = (fs.clone(), config.data_dir.clone());
    crate::rt::block_on(async move { identity::claim(&id_fs, &dir, id).await })?;
    let cluster = Cluster::start(config, id)?;
    // Files of topics deleted (or deleted and created again) while this broker was down.
    cluster.drop_stale_topics(fs, &config.data_dir)?;
    let _ = INSTALLED.set(cluster);
    Ok(())
}

/// On a graceful shutdown: gives up this broker's lease, so the cluster sees it down (and
/// elects another controller) at once rather than after `--session-timeout`. Waits at most
/// two seconds for etcd; a single host does nothing.
pub fn leave() {
    let Some(cluster) = installed() else { return };
    let Some(lease) = cluster.fence.lease() else {
        return;
    };
    cluster.fence.retire();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut client = cluster.client.clone();
    cluster.runtime.spawn(async move {
        let _ = tx.send(client.lease_revoke(lease).await);
    });
    match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(Ok(_)) => tracing::info!(broker = cluster.broker, "left the cluster"),
        Ok(Err(e)) => tracing::warn!("could not give up the etcd lease: {e}"),
        Err(_) => tracing::warn!("etcd did not answer the lease revoke in time"),
    }
}

/// How the first registration is going, for a start-up that waits for it.
#[derive(Debug, Default)]
pub struct Progress {
    registered: AtomicBool,
    problem: Mutex<Option<String>>,
}

impl Progress {
    pub fn registered(&self) {
        self.registered.store(true, Ordering::Release);
    }

    /// The latest reason registration has not happened yet.
    pub fn problem(&self, why: String) {
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

impl Cluster {
    /// Starts the cluster thread and waits until this broker is registered (at most twice
    /// the session timeout and ten seconds: an earlier lease of this id may still hold).
    fn start(config: &Config, id: u32) -> Result<Arc<Cluster>, ClusterError> {
        let ttl = Duration::from_secs(config.session_timeout.as_secs_f64().ceil() as u64);
        let me = BrokerRecord {
            id,
            framed: config.advertised_framed(),
            http: config.advertised_http(),
            shards: config.shards as u32,
        };
        let keys = Keys::new(&config.cluster_name);
        let endpoints = config.etcd_endpoints.clone();
        let fence = Arc::new(LeaseFence::default());
        let state = SharedState::default();
        let leadership = Arc::new(Leadership::new(id, fence.clone()));
        let progress = Arc::new(Progress::default());
        let (deleted_tx, deleted_rx) = futures_channel::mpsc::unbounded();
        let (tx, rx) = std::sync::mpsc::channel();
        let (fence2, state2, progress2, keys2) =
            (fence.clone(), state.clone(), progress.clone(), keys.clone());
        let leadership2 = leadership.clone();
        std::thread::Builder::new()
            .name("cluster".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(ClusterError::Runtime(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let options = ConnectOptions::new()
                        .with_connect_timeout(ttl)
                        .with_timeout(ttl)
                        .with_keep_alive(ttl / 3, ttl / 3);
                    let client = match Client::connect(&endpoints, Some(options)).await {
                        Ok(c) => c,
                        Err(source) => {
                            let _ = tx.send(Err(ClusterError::Connect {
                                endpoints: endpoints.join(","),
                                source,
                            }));
                            return;
                        }
                    };
                    let membership = membership::Membership {
                        client: client.clone(),
                        keys: keys2.clone(),
                        me,
                        ttl,
                        fence: fence2.clone(),
                        progress: progress2,
                    };
                    tokio::spawn(membership.run());
                    let poll = (ttl / 4).min(Duration::from_secs(1));
                    tokio::spawn(controller::campaign(
                        client.clone(),
                        keys2.clone(),
                        id,
                        fence2,
                        poll,
                    ));
                    tokio::spawn(view::follow(
                        client.clone(),
                        keys2,
                        state2,
                        leadership2,
                        deleted_tx,
                    ));
                    let _ = tx.send(Ok((client, tokio::runtime::Handle::current())));
                    std::future::pending::<()>().await;
                });
            })
            .map_err(ClusterError::Runtime)?;
        let (client, runtime) = rx.recv().map_err(|_| ClusterError::Stopped)??;
        let within = ttl * 2 + Duration::from_secs(10);
        let deadline = Instant::now() + within;
        while !progress.registered.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                let problem = progress
                    .problem
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_else(|| "etcd did not answer".into());
                return Err(ClusterError::NotRegistered {
                    id,
                    endpoints: config.etcd_endpoints.join(","),
                    within,
                    problem,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Arc::new(Cluster {
            name: config.cluster_name.clone(),
            broker: id,
            fence,
            state,
            client,
            keys,
            runtime,
            ranges_per_shard: config.ranges_per_shard,
            forwarder: Forwarder::new(id, config.max_forward_links),
            remote_reads: remote_read::RemoteReads::new(config.max_remote_reads),
            group_links: group_link::GroupLinks::new(
                config.max_consumers,
                config.consumer_timeout,
                config.max_group_requests,
            ),
            peer_requests: admin_proxy::PeerRequests::new(config.max_peer_requests),
            deleted: Mutex::new(Some(deleted_rx)),
            leadership,
        }))
    }

    /// A copy of the current view.
    pub fn state(&self) -> ClusterState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether this broker leads partition `j` of `topic`: it holds its lease, and etcd names
    /// it the partition's leader.
    pub fn leads(&self, topic: &str, j: u32) -> bool {
        self.fence.holds_lease()
            && self
                .state
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .leader_of(topic, j)
                .is_some_and(|(leader, _)| leader == self.broker)
    }

    /// Where a write to partition `j` of `topic` goes, or why nowhere: this broker without
    /// its lease acts on no leadership; a partition whose leader is down is unavailable.
    pub fn route(&self, topic: &str, j: u32) -> Result<Route, ForwardError> {
        if !self.fence.holds_lease() {
            return Err(ForwardError::NoLease);
        }
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        match state.leader_of(topic, j) {
            None => Err(ForwardError::NoLeader {
                topic: topic.to_string(),
                partition: j,
            }),
            Some((leader, epoch)) if leader == self.broker => Ok(Route::Local { epoch }),
            Some((leader, epoch)) => match state.live.get(&leader) {
                Some(b) => Ok(Route::Forward {
                    leader,
                    addr: b.framed.clone(),
                    epoch,
                }),
                None => Err(ForwardError::LeaderDown {
                    topic: topic.to_string(),
                    partition: j,
                    leader,
                }),
            },
        }
    }

    /// The write fence of partition `j` of `topic` on this broker, for the shard that writes
    /// it (made once, when the shard installs the partition's writer).
    pub fn partition_fence(&self, topic: &str, j: u32) -> Arc<PartitionFence> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        self.leadership.fence(&state, topic, j)
    }

    /// Forwards a PRODUCE body for partition `j` of `topic` to `leader` (at framed `addr`),
    /// routed at `epoch`; the receiver gets its answer.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        leader: u32,
        addr: &str,
        epoch: u64,
        topic: &str,
        j: u32,
        flags: u8,
        body: bytes::Bytes,
    ) -> futures_channel::oneshot::Receiver<Result<(), ForwardError>> {
        let head = crate::wire::forward::ForwardedHead {
            partition: j,
            leader_epoch: epoch,
        };
        self.forwarder
            .send(&self.runtime, leader, addr, topic, flags, head, body)
    }

    /// Whether this broker's view has `topic` with all its `partitions` records.
    pub fn sees_topic(&self, topic: &str, partitions: u32) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.topics.contains_key(topic)
            && state
                .partitions
                .get(topic)
                .is_some_and(|p| p.len() as u32 == partitions)
    }

    /// The body of `GET /v1/cluster`.
    pub fn json(&self) -> String {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        json::render(&self.name, self.broker, self.fence.holds_lease(), &state)
    }

    /// Runs `work` on the cluster thread's runtime (where the etcd client and the links to
    /// other brokers live) and waits for its output from any runtime; `None` when the cluster
    /// thread has stopped.
    pub(crate) async fn on_cluster_thread<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.await.ok()
    }

    /// Finds `name` in etcd (never creates it).
    pub async fn find_topic(&self, name: &str) -> Result<TopicFound, ClusterError> {
        let work = topics::find_topic(self.client.clone(), self.keys.clone(), name.to_string());
        self.on_cluster_thread(work)
            .await
            .ok_or(ClusterError::Stopped)?
    }

    /// Creates `name` in etcd (or finds it). Callable from any runtime: the work runs on the
    /// cluster thread.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: Option<u32>,
    ) -> Result<TopicFound, ClusterError> {
        let work = topics::create_topic(
            self.client.clone(),
            self.keys.clone(),
            name.to_string(),
            partitions,
            self.ranges_per_shard,
            REPLICATION_FACTOR,
        );
        self.on_cluster_thread(work)
            .await
            .ok_or(ClusterError::Stopped)?
    }
}

/// What goes wrong in cluster mode.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("cannot connect to etcd at {endpoints}: {source}")]
    Connect {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error(
        "could not register broker id {id} in etcd at {endpoints} within {within:?}: {problem}"
    )]
    NotRegistered {
        id: u32,
        endpoints: String,
        within: Duration,
        problem: String,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("topic '{0}' does not exist in the cluster")]
    TopicNotFound(String),
    #[error("topic '{0}' changed while it was being created")]
    Raced(String),
    #[error("topic '{0}' is not in this broker's view of the cluster yet")]
    NotVisible(String),
    /// Opening the topic on this broker failed (its own error, its own class).
    #[error(transparent)]
    Topic(Box<crate::shard::error::TopicError>),
    #[error(
        "topic '{0}' exists on this broker with another layout than the cluster's (it was \
         created before the broker joined the cluster, or deleted and created again since)"
    )]
    LayoutDiffers(String),
    #[error("etcd key {key} holds a value this broker cannot read: {reason}")]
    BadRecord { key: String, reason: String },
    #[error(
        "--data-dir {} belongs to broker {recorded}, not --broker-id {given}: start it with \
         --broker-id {recorded}, or give broker {given} a directory of its own",
        data_dir.display()
    )]
    WrongBrokerId {
        data_dir: PathBuf,
        recorded: u32,
        given: u32,
    },
    #[error("cannot {op} {}: {source}", path.display())]
    IdFile {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{} does not hold a broker id (it holds {text:?}); it is not shardlog's", path.display())]
    IdFileCorrupt { path: PathBuf, text: String },
    #[error("cannot start the cluster thread: {0}")]
    Runtime(std::io::Error),
    #[error("the cluster thread stopped")]
    Stopped,
    #[error(
        "dropping the files of topics deleted from the cluster while this broker was down: {0}"
    )]
    StaleTopics(crate::storage::StorageError),
}

impl Classify for ClusterError {
    fn class(&self) -> ErrorClass {
        match self {
            ClusterError::Plan(PlanError::BadPartitions { .. }) => ErrorClass::Invalid,
            ClusterError::BadRecord { .. } => ErrorClass::Internal,
            ClusterError::TopicNotFound(_) => ErrorClass::NotFound,
            ClusterError::LayoutDiffers(_) => ErrorClass::Invalid,
            ClusterError::Topic(e) => e.class(),
            _ => ErrorClass::Unavailable,
        }
    }
}
