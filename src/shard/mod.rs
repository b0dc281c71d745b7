//! Per-shard state. A [`Shard`] owns the partitions the ring assigns to it and is the only
//! place they are written from; a frame read on another shard reaches it over the mesh.
//!
//! - [`msg`]: what shards send each other.
//! - [`topics`]: persisted topic layouts.
//! - [`writer`]: the group-commit writer of one partition.
//! - [`read`]: reading a partition on its owning shard, with an optional wait for new data.
//! - [`notify`]: the shard-local signal that wakes tailing readers.
//! - [`lifecycle`]: serving → stopping, for graceful shutdown.
//! - `upkeep`: background work: retention, the free-space check, closing at shutdown.

pub mod lifecycle;
pub mod msg;
pub mod notify;
pub mod read;
pub mod readahead;
pub mod topics;
mod upkeep;

pub use upkeep::free_space;
pub mod writer;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_channel::oneshot;
use thiserror::Error;

use crate::config::Config;
use crate::consumer::coordinator::Coordinator;
use crate::metrics::{ShardMetrics, TopicMetrics};
use crate::ring::TopicLayout;
use crate::rt::{self, MeshPort, ShardMesh};
use crate::server::balance::Handover;
use crate::storage::LogConfig;
use crate::wire::produce::{encode_produce_body, ProduceLayout};

use msg::{ProduceAck, ProduceFrame, ShardMsg};
use writer::PartitionWriter;

/// Upper bound on a chunk's uncompressed records (a single larger frame still goes alone).
const MAX_CHUNK_RAW: usize = 1 << 20;

/// Why a frame was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProduceError {
    /// The partition's log failed (e.g. an fsync error) and refuses writes.
    #[error("storage: {0}")]
    Storage(String),
    /// The frame could not reach its partition's shard.
    #[error("routing: {0}")]
    Routing(String),
    /// The topic could not be created or loaded.
    #[error("topic: {0}")]
    Topic(String),
    /// The data filesystem is nearly full; retrying later may succeed. Nothing of the
    /// request was stored.
    #[error("{0}")]
    DiskFull(String),
    /// The broker is shutting down and takes no new writes. Nothing of the request was stored.
    #[error("the broker is shutting down")]
    ShuttingDown,
}

/// The acknowledgement of a submitted frame, still to come.
pub struct PendingAck(oneshot::Receiver<Result<ProduceAck, ProduceError>>);

impl PendingAck {
    /// Waits until the frame is durable (or failed).
    pub async fn wait(self) -> Result<ProduceAck, ProduceError> {
        self.0
            .await
            .map_err(|_| ProduceError::Routing("the partition writer went away".into()))?
    }
}

/// One topic as a shard sees it: its layout and the writers of the partitions this shard owns.
pub struct TopicState {
    pub name: String,
    pub layout: TopicLayout,
    writers: Vec<Option<Rc<PartitionWriter>>>,
    /// Round-robin cursor for keyless connections.
    keyless_cursor: Cell<usize>,
    /// This shard's counters for the topic (shared with its writers).
    pub metrics: Rc<TopicMetrics>,
}

impl TopicState {
    /// The partitions of this topic owned by the current shard.
    pub fn owned(&self) -> impl Iterator<Item = &Rc<PartitionWriter>> {
        self.writers.iter().flatten()
    }
}

/// The state of one shard.
pub struct Shard {
    pub id: usize,
    pub shards: usize,
    pub config: Rc<Config>,
    topics: RefCell<HashMap<String, Rc<TopicState>>>,
    mesh: Rc<MeshPort<ShardMsg>>,
    /// Bytes of frames read but not yet acknowledged, across the shard's connections.
    pub buffer: Rc<rt::Semaphore>,
    /// Serving or stopping (graceful shutdown).
    pub lifecycle: lifecycle::Lifecycle,
    /// Why produce requests are refused for lack of disk space, if they are.
    disk_low: RefCell<Option<String>>,
    /// The consumer-group coordinator, on shard 0 only.
    coordinator: Option<Rc<Coordinator>>,
    /// This shard's metrics (see [`crate::metrics`]).
    pub metrics: Rc<ShardMetrics>,
    /// Memory for reading ahead of consumers draining a backlog (see [`readahead`]).
    pub read_ahead: Rc<readahead::ReadAheadBudget>,
    /// Connections other shards hand over, per server, for its accept loop here.
    adopted: RefCell<HashMap<&'static str, Adopted>>,
}

/// The connections handed over to this shard for one server. They can arrive before the
/// server's accept loop here has started (another shard may accept first); they wait in the
/// channel until it takes the receiver.
struct Adopted {
    /// `None` once the accept loop has stopped: later arrivals are closed.
    tx: Option<futures_channel::mpsc::UnboundedSender<Handover>>,
    rx: Option<futures_channel::mpsc::UnboundedReceiver<Handover>>,
}

impl Shard {
    /// Builds the shard, opens (and recovers) the partitions it owns, and starts serving the
    /// mesh. Listeners are started by the caller.
    pub async fn start(
        id: usize,
        config: Rc<Config>,
        mesh: ShardMesh<ShardMsg>,
    ) -> Result<Rc<Shard>, String> {
        let mesh = Rc::new(mesh.join(id).await?);
        let coordinator = if id == 0 {
            Some(Rc::new(Coordinator::load(&config)?))
        } else {
            None
        };
        let shard = Rc::new(Shard {
            id,
            shards: config.shards,
            buffer: Rc::new(rt::Semaphore::new(config.shard_buffer_bytes)),
            config,
            topics: RefCell::new(HashMap::new()),
            mesh: mesh.clone(),
            lifecycle: Default::default(),
            disk_low: RefCell::new(None),
            coordinator,
            metrics: Rc::default(),
            read_ahead: readahead::ReadAheadBudget::new(readahead::SHARD_BUDGET),
            adopted: RefCell::new(HashMap::new()),
        });
        for (name, layout) in topics::load_all(&shard.config.data_dir)? {
            let state = shard.install_topic(&name, layout);
            for w in state.owned() {
                w.open()
                    .await
                    .map_err(|e| format!("topic '{name}' partition {}: {e}", w.partition))?;
            }
        }
        shard.clone().serve_mesh();
        if let Some(c) = &shard.coordinator {
            c.start(&shard);
        }
        rt::spawn_detached(shard.clone().retention_loop());
        rt::spawn_detached(shard.clone().disk_space_loop());
        Ok(shard)
    }

    /// The storage settings of a partition, whose topic has `owned` partitions on this shard.
    fn log_config(&self, owned: usize) -> LogConfig {
        LogConfig {
            // The shard's hot-tail budget is shared by a topic's partitions on the shard.
            tail_bytes: match self.config.hot_tail_bytes {
                0 => 0,
                b => (b / owned.max(1)).max(1 << 20),
            },
            ..self.config.log_config()
        }
    }

    /// Records a topic's layout on this shard and creates writers for the partitions it owns.
    fn install_topic(&self, name: &str, layout: TopicLayout) -> Rc<TopicState> {
        if let Some(t) = self.topics.borrow().get(name) {
            return t.clone();
        }
        let dir = topics::topic_dir(&self.config.data_dir, name);
        // About 2 ms of compression at level 1: big enough that one fdatasync covers many
        // frames, small enough that a chunk being compressed does not hold the shard's other
        // connections and partitions for long (measured: 1 MiB beat 256 KiB and 4 MiB).
        let max_chunk_raw = MAX_CHUNK_RAW;
        let owned = layout.owned_by(self.id, self.shards).count();
        let metrics = Rc::new(TopicMetrics::default());
        let writers = (0..layout.partitions())
            .map(|j| {
                (layout.owner(j, self.shards) == self.id).then(|| {
                    let pdir = dir.join(layout.partition_id(j).dir_name());
                    Rc::new(PartitionWriter::new(
                        j,
                        pdir,
                        self.log_config(owned),
                        max_chunk_raw,
                        metrics.clone(),
                        self.metrics.clone(),
                    ))
                })
            })
            .collect();
        let state = Rc::new(TopicState {
            name: name.to_string(),
            layout,
            writers,
            keyless_cursor: Cell::new(self.id),
            metrics,
        });
        self.topics
            .borrow_mut()
            .insert(name.to_string(), state.clone());
        state
    }

    /// The topic's state, creating the topic (through shard 0) if it does not exist yet.
    pub async fn topic(&self, name: &str) -> Result<Rc<TopicState>, ProduceError> {
        if let Some(t) = self.topics.borrow().get(name) {
            return Ok(t.clone());
        }
        let layout = if self.id == 0 {
            self.create_topic(name)?
        } else {
            let (tx, rx) = oneshot::channel();
            let msg = ShardMsg::GetOrCreateTopic {
                topic: name.to_string(),
                reply: tx,
            };
            self.mesh
                .send_to(0, msg)
                .await
                .map_err(|_| ProduceError::Routing("shard 0 is not reachable".into()))?;
            rx.await
                .map_err(|_| ProduceError::Routing("shard 0 dropped the request".into()))?
                .map_err(ProduceError::Topic)?
        };
        Ok(self.install_topic(name, layout))
    }

    /// The topic's state if this shard knows it (shard 0 knows every existing topic).
    pub fn known_topic(&self, name: &str) -> Option<Rc<TopicState>> {
        self.topics.borrow().get(name).cloned()
    }

    /// The connections other shards hand over for `server`, for its accept loop (once).
    pub fn take_adopted(
        &self,
        server: &'static str,
    ) -> futures_channel::mpsc::UnboundedReceiver<Handover> {
        let mut all = self.adopted.borrow_mut();
        let slot = Self::adopted_slot(&mut all, server);
        slot.rx.take().unwrap_or_else(|| {
            // Taken before (a second accept loop for one server): give it a fresh channel.
            let (tx, rx) = futures_channel::mpsc::unbounded();
            slot.tx = Some(tx);
            rx
        })
    }

    /// The accept loop of `server` stopped: connections handed over from now on are closed.
    pub fn stop_adopting(&self, server: &'static str) {
        Self::adopted_slot(&mut self.adopted.borrow_mut(), server).tx = None;
    }

    fn adopted_slot<'a>(
        all: &'a mut HashMap<&'static str, Adopted>,
        server: &'static str,
    ) -> &'a mut Adopted {
        all.entry(server).or_insert_with(|| {
            let (tx, rx) = futures_channel::mpsc::unbounded();
            Adopted {
                tx: Some(tx),
                rx: Some(rx),
            }
        })
    }

    /// The consumer-group coordinator, if this is shard 0.
    pub fn coordinator(&self) -> Option<&Rc<Coordinator>> {
        self.coordinator.as_ref()
    }

    /// Sends a message to another shard over the mesh.
    pub async fn send_to(&self, peer: usize, msg: ShardMsg) -> Result<(), String> {
        self.mesh
            .send_to(peer, msg)
            .await
            .map_err(|_| format!("shard {peer} is not reachable"))
    }

    /// Shard 0 only: the layout of `name`, persisting a new one if needed.
    fn create_topic(&self, name: &str) -> Result<TopicLayout, ProduceError> {
        if let Some(t) = self.topics.borrow().get(name) {
            return Ok(t.layout);
        }
        let layout = TopicLayout::new(self.shards as u32, self.config.ranges_per_shard);
        topics::persist(&self.config.data_dir, name, &layout).map_err(ProduceError::Topic)?;
        tracing::info!(
            topic = name,
            partitions = layout.partitions(),
            "topic created"
        );
        self.install_topic(name, layout);
        Ok(layout)
    }

    /// The partition a keyless connection writes to: one owned by this shard (no cross-core
    /// hop), chosen round-robin so connections spread over the shard's partitions.
    pub fn keyless_partition(&self, topic: &TopicState) -> u32 {
        let owned: Vec<u32> = topic.owned().map(|w| w.partition).collect();
        let c = topic.keyless_cursor.get();
        topic.keyless_cursor.set(c.wrapping_add(1));
        if owned.is_empty() {
            // More shards than partitions: this shard owns none of the topic.
            (c % topic.layout.partitions() as usize) as u32
        } else {
            owned[c % owned.len()]
        }
    }

    /// Hands a frame to partition `j` of `topic`, locally or on the owning shard, and returns
    /// the receiver of its acknowledgement (sent once the frame is durable). Frames submitted
    /// one after another reach their partition in that order, which keeps each key in order.
    pub async fn submit(
        &self,
        topic: &TopicState,
        j: u32,
        frame: ProduceFrame,
    ) -> Result<PendingAck, ProduceError> {
        self.check_writable()?;
        let (tx, rx) = oneshot::channel();
        let owner = topic.layout.owner(j, self.shards);
        if owner == self.id {
            let writer = topic.writers[j as usize]
                .as_ref()
                .ok_or_else(|| ProduceError::Routing(format!("partition {j} has no writer")))?;
            writer.submit(frame, tx);
        } else {
            let msg = ShardMsg::Produce {
                topic: topic.name.clone(),
                layout: topic.layout,
                partition: j,
                frame,
                reply: tx,
            };
            self.mesh
                .send_to(owner, msg)
                .await
                .map_err(|_| ProduceError::Routing(format!("shard {owner} is not reachable")))?;
        }
        Ok(PendingAck(rx))
    }

    /// For interfaces that receive messages rather than frames (gRPC, REST): encodes them as
    /// one PRODUCE body — exactly what a framed client would send, so one frame is one chunk's
    /// worth of atomicity — takes its size from the shard's buffer budget (the one framed
    /// connections draw from, so every interface slows down together when acknowledgements
    /// lag) and submits it to partition `j`. Hold the returned permit until the ack arrives.
    pub async fn submit_messages<'m>(
        &self,
        topic: &TopicState,
        j: u32,
        timestamp: Option<i64>,
        key: &[u8],
        messages: impl IntoIterator<Item = &'m [u8]>,
        body_len: usize,
    ) -> Result<(PendingAck, rt::StaticPermit), ProduceError> {
        let mut body = Vec::with_capacity(body_len);
        encode_produce_body(timestamp, key, messages, &mut body);
        let layout = ProduceLayout::parse(&body, timestamp.is_some())
            .map_err(|e| ProduceError::Routing(format!("cannot frame the messages: {e}")))?;
        let budget = (body.len() as u64).min(self.config.shard_buffer_bytes);
        let permit = self
            .buffer
            .clone()
            .acquire_static_permit(budget)
            .await
            .map_err(|_| ProduceError::ShuttingDown)?;
        let frame = ProduceFrame {
            body: Bytes::from(body),
            layout,
            received_us: now_us(),
        };
        Ok((self.submit(topic, j, frame).await?, permit))
    }

    fn serve_mesh(self: Rc<Self>) {
        for peer in 0..self.shards {
            if peer == self.id {
                continue;
            }
            let shard = self.clone();
            rt::spawn_detached(async move {
                while let Some(msg) = shard.mesh.recv_from(peer).await {
                    shard.handle(msg);
                }
            });
        }
    }

    fn handle(self: &Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Produce {
                topic,
                layout,
                partition,
                frame,
                reply,
            } => {
                let state = self.install_topic(&topic, layout);
                match state
                    .writers
                    .get(partition as usize)
                    .and_then(|w| w.as_ref())
                {
                    Some(w) => w.submit(frame, reply),
                    None => {
                        let _ = reply.send(Err(ProduceError::Routing(format!(
                            "shard {} does not own partition {partition} of '{topic}'",
                            self.id
                        ))));
                    }
                }
            }
            ShardMsg::Read {
                topic,
                layout,
                partition,
                offset,
                max_bytes,
                wait,
                reply,
            } => {
                let state = self.install_topic(&topic, layout);
                let writer = state
                    .writers
                    .get(partition as usize)
                    .and_then(|w| w.clone());
                let (id, budget) = (self.id, self.read_ahead.clone());
                rt::spawn_detached(async move {
                    let result = match writer {
                        Some(w) => read::read_local(&w, &budget, offset, max_bytes, wait).await,
                        None => Err(read::ReadError::Routing(format!(
                            "shard {id} does not own partition {partition} of '{topic}'"
                        ))),
                    };
                    let _ = reply.send(result);
                });
            }
            ShardMsg::Consumer(req) => match &self.coordinator {
                Some(c) => rt::spawn_detached(c.clone().handle(self.clone(), req)),
                None => tracing::error!(
                    shard = self.id,
                    "consumer request sent to a shard without the coordinator"
                ),
            },
            ShardMsg::GetOrCreateTopic { topic, reply } => {
                let _ = reply.send(self.create_topic(&topic).map_err(|e| e.to_string()));
            }
            ShardMsg::Adopt(handover) => {
                let mut all = self.adopted.borrow_mut();
                // After the accept loop stopped, dropping the handover closes the connection.
                if let Some(tx) = &Self::adopted_slot(&mut all, handover.server).tx {
                    let _ = tx.unbounded_send(handover);
                }
            }
            ShardMsg::Metrics { reply } => {
                let shard = self.clone();
                rt::spawn_detached(async move {
                    let _ = reply.send(crate::metrics::local_snapshot(&shard).await);
                });
            }
        }
    }
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
