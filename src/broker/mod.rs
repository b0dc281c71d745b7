//! Starts a broker from a [`Config`]: one pinned shard per CPU, each opening the partitions it
//! owns and listening on the HTTP and framed ports.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;

use futures_channel::oneshot;
use std::time::{Duration, Instant};

use crate::config::{Config, CpuPlacement};
use crate::consumer::{self, coordinator::COORDINATOR_SHARD, Coordinator};
use crate::rt;
use crate::rt::pool::{self, RuntimeError};
use crate::server::balance::ConnLoad;
use crate::server::listener::{self, ListenError};
use crate::server::{framed, http};
use crate::shard::msg::ShardMsg;
use crate::shard::{OpenError, Shard};
use crate::storage::fs::{BrokerFs, FileSystem};
use crate::storage::StorageError;

mod data_dir;
pub mod limits;
mod panic;
mod port;

pub use data_dir::{lock_data_dir, LOCK_FILE};
use port::wait_for_port;

/// Messages a mesh channel between two shards holds before a sender waits.
const MESH_CAPACITY: usize = 1024;

/// Runs the broker until every shard stops (today: until the process is killed). Returns an
/// error line when it cannot start.
pub fn run(config: Config) -> Result<(), StartError> {
    panic::exit_on_panic();
    crate::failpoint::init_from_env()?;
    pool::preflight()?;
    if let Some(limit) = limits::raise_nofile() {
        if let Some(why) = limits::open_files_warning(config.shards, config.max_open_files, limit) {
            tracing::warn!("{why}");
        }
    }
    let fs = BrokerFs::real(config.durability);
    // Start-up, before the shards run: a short-lived executor on this thread.
    let (create, dir) = (fs.clone(), config.data_dir.clone());
    rt::block_on(async move { create.create_dir_all(&dir).await }).map_err(|source| {
        StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        }
    })?;
    // Held until `run` returns; the kernel drops the flock when the process dies in any way.
    let _lock = lock_data_dir(&fs, &config.data_dir)?;
    wait_for_port(config.framed_listen, "framed-listen")?;
    wait_for_port(config.http_listen, "http-listen")?;
    // Cluster mode only: the data directory's broker id, etcd, registration.
    crate::cluster::start_if_configured(&config, &fs)?;
    let cpus = cpu_list(&config.cpus, "--cpus")?;
    let helper_cpus = cpu_list(&config.io_worker_cpus, "--io-worker-cpus")?;
    tracing::info!(?config, ?cpus, ?helper_cpus, "starting shardlog");
    if !cpus.is_empty() && config.shards > cpus.len() {
        tracing::warn!(
            shards = config.shards,
            cpus = cpus.len(),
            "--shards is more than the CPUs this process may run on: shards will share cores \
             and each runs slower than one shard per core would"
        );
    }
    let mesh = rt::ShardMesh::<ShardMsg>::new(config.shards, MESH_CAPACITY);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, StartError>>();
    let mut threads = Vec::with_capacity(config.shards);
    let mut stops = Vec::with_capacity(config.shards);
    let framed_load = ConnLoad::new(config.shards);
    let http_load = ConnLoad::new(config.shards);
    // Shutdown: no shard closes its partitions until every shard's connections are drained,
    // since a draining connection may still forward appends to any shard.
    let drained = rt::Rendezvous::new(config.shards);
    for id in 0..config.shards {
        let (framed_load, http_load) = (framed_load.clone(), http_load.clone());
        let setup = pool::ShardSetup {
            cpu: (!cpus.is_empty()).then(|| cpus[id % cpus.len()]),
            helper_cpus: helper_cpus.clone(),
            stall_report: config.stall_report,
        };
        let (config, mesh, ready) = (config.clone(), mesh.clone(), ready_tx.clone());
        let fs = fs.clone();
        let drained = drained.clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        stops.push(stop_tx);
        let spin = config.spin_before_park;
        threads.push(pool::spawn_shard(id, setup, spin, move || async move {
            let shard = match start_core(id, Rc::new(config), fs, mesh).await {
                Ok(s) => s,
                Err(source) => {
                    let _ = ready.send(Err(StartError::Core { shard: id, source }));
                    return;
                }
            };
            // HTTP first: once the framed port answers, the HTTP port is listening too.
            let listeners = http::bind(&shard).and_then(|h| Ok((h, framed::bind(&shard)?)));
            let (http_listener, framed_listener) = match listeners {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready.send(Err(e.into()));
                    return;
                }
            };
            // One line per shard, so a start-up that stalls says which shard it waits for.
            tracing::info!(shard = id, "shard listening");
            let _ = ready.send(Ok(id));
            let stopper = async {
                // A dropped sender (the broker is going away) also means stop.
                let _ = stop_rx.await;
                shard.lifecycle.stop();
            };
            let servers = futures_lite::future::zip(
                listener::accept_loop(shard.clone(), framed_listener, framed::SERVER, framed_load),
                listener::accept_loop(shard.clone(), http_listener, http::SERVER, http_load),
            );
            futures_lite::future::zip(servers, stopper).await;
            drained.arrive_and_wait().await;
            shard.close().await;
            consumer::api::flush(&shard).await;
        })?);
    }
    drop(ready_tx);
    wait_until_ready(&ready_rx, &mut threads, config.shards)?;
    tracing::info!(
        shards = config.shards,
        framed = %config.framed_listen,
        http = %config.http_listen,
        data_dir = %config.data_dir.display(),
        "shardlog ready"
    );
    watch_signals(stops, config.shutdown_timeout)?;
    for t in threads {
        t.join()?;
    }
    crate::cluster::leave();
    tracing::info!("shutdown complete");
    Ok(())
}

/// Starts one core: opens its shard (recovering the partitions it owns), installs the control
/// plane's state there (the consumer coordinator on shard 0), then serves the mesh.
pub async fn start_core(
    id: usize,
    config: Rc<Config>,
    fs: BrokerFs,
    mesh: rt::ShardMesh<ShardMsg>,
) -> Result<Rc<Shard>, CoreError> {
    let shard = Shard::open(id, config, fs, mesh).await?;
    if id == COORDINATOR_SHARD {
        Coordinator::install(&shard)
            .await
            .map_err(CoreError::Coordinator)?;
        rt::spawn_detached(crate::cluster::dropped::follow_deletions(shard.clone()));
    }
    shard.serve();
    Ok(shard)
}

/// Why the broker could not start, in one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Failpoints(#[from] crate::failpoint::FailpointError),
    #[error("cannot create --data-dir {}: {source}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--data-dir {} is in use by another shardlog ({}); stop it first or choose another directory",
        path.display(),
        holder.map_or("pid unknown".to_string(), |pid| format!("pid {pid}"))
    )]
    DataDirInUse {
        path: std::path::PathBuf,
        /// The holder's pid, as it wrote it into the lock file.
        holder: Option<u32>,
    },
    #[error("cannot lock --data-dir {} ({}): {source}", dir.display(), file.display())]
    Lock {
        dir: std::path::PathBuf,
        file: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} (--{flag}): another process is listening on port {}", addr.port())]
    PortTaken {
        addr: SocketAddr,
        flag: &'static str,
    },
    #[error("cannot listen on {addr} (--{flag}): process {pid} is listening on port {}", addr.port())]
    PortHeld {
        addr: SocketAddr,
        flag: &'static str,
        pid: u32,
    },
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("shard {shard}: {source}")]
    Core {
        shard: usize,
        #[source]
        source: CoreError,
    },
    #[error(
        "{flag} names CPU {cpu}, which this process may not run on (it may run on {allowed:?})"
    )]
    CpuNotAllowed {
        flag: &'static str,
        cpu: usize,
        allowed: Vec<usize>,
    },
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("a shard stopped during start-up")]
    ShardStopped,
    #[error("start-up did not finish within {timeout:?} ({up} of {shards} shards ready)")]
    Stuck {
        timeout: Duration,
        up: usize,
        shards: usize,
    },
    #[error("every shard stopped during start-up")]
    AllStopped,
    #[error("cannot watch for signals: {0}")]
    Signals(std::io::Error),
}

/// Why a core could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Shard(#[from] OpenError),
    #[error("consumer offsets: {0}")]
    Coordinator(StorageError),
}

/// How long start-up (recovery of every partition included) may take before it is declared
/// stuck.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// The CPUs a placement flag names, checked against those this process may run on; empty
/// for `none`.
fn cpu_list(placement: &CpuPlacement, flag: &'static str) -> Result<Vec<usize>, StartError> {
    Ok(match placement {
        CpuPlacement::All => pool::allowed_cpus(),
        CpuPlacement::None => Vec::new(),
        CpuPlacement::List(cpus) => {
            let allowed = pool::allowed_cpus();
            if let Some(&cpu) = cpus.iter().find(|c| !allowed.contains(c)) {
                return Err(StartError::CpuNotAllowed { flag, cpu, allowed });
            }
            cpus.clone()
        }
    })
}

/// Waits until every shard reports ready. A shard whose thread ends without a word (its
/// executor could not be created) stops start-up at once with its error, rather than leaving
/// the others waiting for it in the mesh forever.
fn wait_until_ready(
    ready: &mpsc::Receiver<Result<usize, StartError>>,
    threads: &mut Vec<pool::ShardThread<()>>,
    shards: usize,
) -> Result<(), StartError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut up = 0;
    while up < shards {
        match ready.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(_)) => up += 1,
            Ok(Err(e)) => return Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(i) = threads.iter().position(|t| t.is_finished()) {
                    let t = threads.swap_remove(i);
                    t.join()?;
                    return Err(StartError::ShardStopped);
                }
                if Instant::now() > deadline {
                    return Err(StartError::Stuck {
                        timeout: START_TIMEOUT,
                        up,
                        shards,
                    });
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(StartError::AllStopped),
        }
    }
    Ok(())
}

/// On the first SIGTERM or SIGINT, starts a graceful shutdown of every shard; on a second
/// one, or if the shutdown takes far longer than `--shutdown-timeout`, exits at once.
fn watch_signals(stops: Vec<oneshot::Sender<()>>, timeout: Duration) -> Result<(), StartError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).map_err(StartError::Signals)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stops = Some(stops);
            for sig in signals.forever() {
                match stops.take() {
                    Some(stops) => {
                        tracing::info!(signal = sig, "shutting down: finishing accepted requests");
                        for s in stops {
                            let _ = s.send(());
                        }
                        std::thread::spawn(move || {
                            std::thread::sleep(timeout + Duration::from_secs(15));
                            eprintln!("shardlog: shutdown did not finish in time; exiting");
                            std::process::exit(1);
                        });
                    }
                    None => {
                        eprintln!("shardlog: second signal, exiting at once");
                        std::process::exit(130);
                    }
                }
            }
        })
        .map_err(StartError::Signals)?;
    Ok(())
}
