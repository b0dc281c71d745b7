//! The data plane. A [`Shard`] owns the partitions the ring assigns to its core and is the only
//! place they are written and read from; a frame or read that arrives on another core reaches
//! it over the mesh as a typed [`msg::ShardMsg`]. Nothing here knows consumers, servers or
//! metrics gathering: control work reaches a core as a closure ([`control`]).
//!
//! - [`msg`]: the data plane's messages between shards.
//! - [`control`]: running control work on another core (`submit_to`), and per-core state.
//! - [`error`]: the data plane's errors.
//! - `catalog`: finding and creating topics (shard 0 decides), within `--max-topics`.
//! - [`delete`]: deleting a topic on every shard (fence, then bury its directory).
//! - [`tombstone`]: the on-disk side of a deletion: a topic's directory renamed away, then
//!   removed in the background (and at start, for a crash in between).
//! - [`describe`]: listing topics and describing one's partitions (the admin API).
//! - [`topics`]: persisted topic layouts.
//! - [`produce`]: handing a frame to its partition's writer, here or on its shard.
//! - [`writer`]: the group-commit writer of one partition.
//! - [`read`]: reading a partition on its owning shard, with an optional wait for new data.
//! - [`readahead`]: reading ahead of consumers that drain a backlog.
//! - [`time`]: the offset for a timestamp in a partition (reading and resetting by time).
//! - `dispatch`: serving the mesh.
//! - [`notify`]: the shard-local signal that wakes tailing readers.
//! - [`open_files`]: partitions opened on first use, idle ones closed past `--max-open-files`.
//! - [`lifecycle`]: serving → stopping, for graceful shutdown.
//! - `upkeep`: background work: retention, the free-space check, closing at shutdown.
//! - [`adaptive_level`]: the zstd level stepped down while the core is saturated
//!   (`--zstd-min-level`).

pub mod adaptive_level;
mod catalog;
pub mod control;
pub mod delete;
pub mod describe;
mod dispatch;
pub mod error;
pub mod lifecycle;
pub mod msg;
pub mod notify;
pub mod open_files;
pub mod produce;
pub mod read;
pub mod readahead;
pub mod time;
pub mod tombstone;
pub mod topics;
mod upkeep;
pub mod writer;

pub use crate::rt::fs::free_space;
pub use catalog::Found;
pub use control::CoreLocals;
pub use describe::PartitionInfo;
pub use error::{DescribeError, ProduceError, ReadError, RouteError, TopicError};
pub use produce::PendingAck;
pub use time::TimeOffset;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use thiserror::Error;

use crate::config::Config;
use crate::ring::{ShardOwnership, TopicLayout};
use crate::rt::{self, MeshPort, ShardMesh};
use crate::stats::{ShardMetrics, TopicMetrics};
use crate::storage::fs::BrokerFs;
use crate::storage::{StorageError, TailBudget};

use msg::ShardMsg;
use open_files::OpenFiles;
use writer::{PartitionWriter, ShardShared};

/// Upper bound on a chunk's uncompressed records (a single larger frame still goes alone).
/// About 2 ms of compression at level 1: big enough that one fdatasync covers many frames,
/// small enough that a chunk being compressed does not hold the shard's other connections and
/// partitions for long (measured: 1 MiB beat 256 KiB and 4 MiB).
use crate::storage::chunk::MAX_CHUNK_RAW;

/// Why a shard could not start.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error("cannot join the shard mesh: {0}")]
    Mesh(#[from] rt::MeshError),
    #[error(transparent)]
    Layouts(StorageError),
    #[error(transparent)]
    Topic(#[from] TopicError),
}

/// One topic as a shard sees it: its layout and the writers of the partitions this shard owns.
pub struct TopicState {
    pub name: String,
    pub layout: TopicLayout,
    /// Which life of the name this is: shard 0 numbers each topic it creates (topics found on
    /// disk at start are 0), so a request for a deleted topic still travelling between shards
    /// is told apart from one for a topic created again under the same name.
    pub incarnation: u64,
    writers: Vec<Option<Rc<PartitionWriter>>>,
    /// Round-robin cursor for keyless connections.
    keyless_cursor: Cell<usize>,
    /// This shard's counters for the topic (shared with its writers).
    pub metrics: Rc<TopicMetrics>,
}

impl TopicState {
    /// Partition `j` exists in this topic's layout (a read names it from outside).
    pub fn check_partition(&self, j: u32) -> Result<(), error::ReadError> {
        let partitions = self.layout.partitions();
        if j >= partitions {
            return Err(error::ReadError::NoSuchPartition {
                partition: j,
                partitions,
            });
        }
        Ok(())
    }

    /// The partitions of this topic owned by the current shard.
    pub fn owned(&self) -> impl Iterator<Item = &Rc<PartitionWriter>> {
        self.writers.iter().flatten()
    }

    /// The writer of partition `j`, which shard `here` must own.
    fn writer(&self, j: u32, here: usize) -> Result<&Rc<PartitionWriter>, RouteError> {
        self.writers
            .get(j as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| RouteError::NotOwned {
                shard: here,
                topic: self.name.clone(),
                partition: j,
            })
    }
}

/// The state of one shard.
pub struct Shard {
    pub id: usize,
    pub shards: usize,
    pub config: Rc<Config>,
    topics: RefCell<HashMap<String, Rc<TopicState>>>,
    /// Per topic name deleted since start, the newest incarnation deleted: a request naming
    /// that incarnation or an older one is refused rather than bringing its state back (see
    /// [`delete`]). Shard 0 numbers incarnations in increasing order, so one entry per name
    /// is enough, however often the name is deleted and created again.
    deleted: RefCell<HashMap<String, u64>>,
    /// Shard 0 only: the incarnation the next created topic gets.
    next_incarnation: Cell<u64>,
    /// Shard 0 only: names being deleted, which cannot be created again until that is done.
    deleting: RefCell<HashSet<String>>,
    mesh: Rc<MeshPort<ShardMsg>>,
    /// Bytes of frames read but not yet acknowledged, across the shard's connections.
    pub buffer: Rc<rt::Semaphore>,
    /// Serving or stopping (graceful shutdown).
    pub lifecycle: lifecycle::Lifecycle,
    /// Why produce requests are refused for lack of disk space, if they are.
    disk_low: RefCell<Option<ProduceError>>,
    /// This shard's counters and histograms (see [`crate::stats`]).
    pub metrics: Rc<ShardMetrics>,
    /// Memory for reading ahead of consumers draining a backlog (see [`readahead`]).
    pub read_ahead: Rc<readahead::ReadAheadBudget>,
    /// The partitions' open files, bounded by `--max-open-files` (see [`open_files`]).
    pub files: Rc<OpenFiles>,
    /// The memory all the shard's hot tails share (`--hot-tail`), whatever the topic count.
    pub tail_budget: Rc<TailBudget>,
    /// Every file the shard touches goes through it (a test may put faults under it).
    pub fs: BrokerFs,
    /// Shard 0 creates one topic at a time (see `catalog::ensure_topic`).
    creating: Rc<rt::Semaphore>,
    /// The control plane's state on this core (see [`control`]).
    pub locals: CoreLocals,
}

impl Shard {
    /// Builds the shard and learns the topics on disk (their partitions are opened, and
    /// recovered, on first use). It serves nothing
    /// yet: the caller installs its control-plane state in [`Shard::locals`], then calls
    /// [`Shard::serve`]. Messages other shards send meanwhile wait in the mesh.
    pub async fn open(
        id: usize,
        config: Rc<Config>,
        fs: BrokerFs,
        mesh: ShardMesh<ShardMsg>,
    ) -> Result<Rc<Shard>, OpenError> {
        let mesh = Rc::new(mesh.join(id).await?);
        let files = OpenFiles::new(config.max_open_files);
        let tail_budget = TailBudget::new(config.hot_tail_bytes);
        let shard = Rc::new(Shard {
            id,
            shards: config.shards,
            buffer: Rc::new(rt::Semaphore::new(config.shard_buffer_bytes)),
            config,
            topics: RefCell::new(HashMap::new()),
            deleted: RefCell::new(HashMap::new()),
            next_incarnation: Cell::new(1),
            deleting: RefCell::new(HashSet::new()),
            mesh,
            lifecycle: Default::default(),
            disk_low: RefCell::new(None),
            metrics: Rc::default(),
            read_ahead: readahead::ReadAheadBudget::new(readahead::SHARD_BUDGET),
            files,
            tail_budget,
            fs,
            creating: Rc::new(rt::Semaphore::new(1)),
            locals: CoreLocals::default(),
        });
        let loaded = topics::load_all(&shard.fs, &shard.config.data_dir)
            .await
            .map_err(OpenError::Layouts)?;
        // Every shard reads the directory; one says what it skipped.
        if id == 0 {
            for i in &loaded.ignored {
                tracing::warn!(path = %i.path.display(), "ignored in --data-dir: {}", i.why);
            }
        }
        // Partitions are opened (and recovered) on first use, not here: a broker with many
        // topics starts without holding a descriptor for each (see `open_files`).
        for (name, layout) in loaded.layouts {
            shard.install_topic(&name, layout, 0)?;
        }
        Ok(shard)
    }

    /// Starts serving the mesh and the shard's background work.
    pub fn serve(self: &Rc<Self>) {
        dispatch::serve_mesh(self);
        rt::spawn_detached(self.clone().retention_loop());
        rt::spawn_detached(self.clone().disk_space_loop());
        rt::spawn_detached(self.clone().open_files_loop());
        rt::spawn_detached(self.clone().adaptive_level_loop());
        if self.id == 0 {
            // What a deletion cut short by a crash left behind.
            tombstone::remove_in_background(&self.fs, &self.config.data_dir);
        }
    }

    /// Records a topic's layout on this shard and creates writers for the partitions it owns.
    /// [`TopicError::Deleted`] when that incarnation of the topic was deleted (a request that
    /// was still on its way), or this shard holds another one.
    fn install_topic(
        &self,
        name: &str,
        layout: TopicLayout,
        incarnation: u64,
    ) -> Result<Rc<TopicState>, TopicError> {
        let deleted = || TopicError::Deleted {
            topic: name.to_string(),
        };
        if let Some(t) = self.topics.borrow().get(name) {
            return if t.incarnation == incarnation {
                Ok(t.clone())
            } else {
                Err(deleted())
            };
        }
        if self
            .deleted
            .borrow()
            .get(name)
            .is_some_and(|&newest| incarnation <= newest)
        {
            return Err(deleted());
        }
        let dir = topics::topic_dir(&self.config.data_dir, name);
        let metrics = Rc::new(TopicMetrics::default());
        let cluster = crate::cluster::installed();
        let writers = (0..layout.partitions())
            .map(|j| {
                (layout.owner(j, self.shards) == self.id).then(|| {
                    let pdir = dir.join(layout.partition_id(j).dir_name());
                    Rc::new(
                        PartitionWriter::new(
                            j,
                            pdir,
                            self.config.log_config(),
                            MAX_CHUNK_RAW,
                            metrics.clone(),
                            ShardShared {
                                metrics: self.metrics.clone(),
                                files: self.files.clone(),
                                tail_budget: self.tail_budget.clone(),
                                fs: self.fs.clone(),
                                trace_slow_acks_us: self
                                    .config
                                    .trace_slow_acks
                                    .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                                chunk_writes_in_flight: self.config.chunk_writes_in_flight,
                            },
                        )
                        .fenced(cluster.map(|c| c.partition_fence(name, j))),
                    )
                })
            })
            .collect();
        let state = Rc::new(TopicState {
            name: name.to_string(),
            layout,
            incarnation,
            writers,
            keyless_cursor: Cell::new(self.id),
            metrics,
        });
        self.topics
            .borrow_mut()
            .insert(name.to_string(), state.clone());
        Ok(state)
    }

    /// The topic's state if this shard knows it (shard 0 knows every existing topic).
    pub fn known_topic(&self, name: &str) -> Option<Rc<TopicState>> {
        self.topics.borrow().get(name).cloned()
    }

    /// How many topics this shard knows (on shard 0: every topic of the broker).
    pub fn topic_count(&self) -> usize {
        self.topics.borrow().len()
    }

    /// Every topic this shard knows, by name: work done over every topic (retention, closing
    /// at shutdown) then runs in the same order every time, so a simulated run
    /// (`storage::sim`) makes the same file operations in the same order.
    pub fn topic_states(&self) -> Vec<Rc<TopicState>> {
        let mut all: Vec<Rc<TopicState>> = self.topics.borrow().values().cloned().collect();
        all.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        all
    }
}
