//! Starts a broker from a [`Config`]: one pinned shard per CPU, each opening the partitions it
//! owns and listening on the HTTP and framed ports.

use std::rc::Rc;
use std::sync::mpsc;

use crate::config::Config;
use crate::rt::{self, pool};
use crate::server::{framed, http};
use crate::shard::msg::ShardMsg;
use crate::shard::Shard;

/// Messages a mesh channel between two shards holds before a sender waits.
const MESH_CAPACITY: usize = 1024;

/// Runs the broker until every shard stops (today: until the process is killed). Returns an
/// error line when it cannot start.
pub fn run(config: Config) -> Result<(), String> {
    pool::preflight()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create --data-dir {}: {e}",
            config.data_dir.display()
        )
    })?;
    let cpus = pool::allowed_cpus();
    tracing::info!(?config, ?cpus, "starting shardlog");
    let mesh = rt::mesh::<ShardMsg>(config.shards, MESH_CAPACITY);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();
    let mut threads = Vec::with_capacity(config.shards);
    for id in 0..config.shards {
        let cpu = (!cpus.is_empty()).then(|| cpus[id % cpus.len()]);
        let (config, mesh, ready) = (config.clone(), mesh.clone(), ready_tx.clone());
        threads.push(pool::spawn_shard(id, cpu, move || async move {
            let config = Rc::new(config);
            let shard = match Shard::start(id, config, mesh).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(format!("shard {id}: {e}")));
                    return;
                }
            };
            // HTTP first: once the framed port answers, the HTTP port is listening too.
            let listeners = http::bind(&shard).and_then(|h| Ok((h, framed::bind(&shard)?)));
            let (http_listener, framed_listener) = match listeners {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(id));
            rt::spawn_detached(http::accept_loop(shard.clone(), http_listener));
            framed::accept_loop(shard, framed_listener).await;
        })?);
    }
    drop(ready_tx);
    for _ in 0..config.shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                // A shard thread ended without a word: its executor could not start.
                for t in threads {
                    t.join()?;
                }
                return Err("a shard stopped during start-up".into());
            }
        }
    }
    tracing::info!(
        shards = config.shards,
        framed = %config.framed_listen,
        http = %config.http_listen,
        data_dir = %config.data_dir.display(),
        "shardlog ready"
    );
    for t in threads {
        t.join()?;
    }
    Ok(())
}
