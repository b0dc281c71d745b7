//! Serving the mesh: one receive loop per peer, each message handled without waiting (work
//! that waits is spawned), so one slow request never holds the others.

use std::rc::Rc;

use super::error::{ProduceError, ReadError};
use super::msg::ShardMsg;
use super::read::read_local;
use super::Shard;
use crate::rt;

/// Starts a receive loop for every other shard.
pub(super) fn serve_mesh(shard: &Rc<Shard>) {
    for peer in 0..shard.shards {
        if peer == shard.id {
            continue;
        }
        let shard = shard.clone();
        rt::spawn_detached(async move {
            while let Some(msg) = shard.mesh.recv_from(peer).await {
                handle(&shard, msg);
            }
        });
    }
}

fn handle(shard: &Rc<Shard>, msg: ShardMsg) {
    match msg {
        ShardMsg::Produce {
            topic,
            layout,
            incarnation,
            partition,
            frame,
            reply,
        } => {
            let writer = shard
                .install_topic(&topic, layout, incarnation)
                .map_err(ProduceError::from)
                .and_then(|state| Ok(state.writer(partition, shard.id)?.clone()));
            match writer {
                Ok(w) => w.submit(frame, reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        ShardMsg::Read {
            topic,
            layout,
            incarnation,
            partition,
            offset,
            max_bytes,
            wait,
            reply,
        } => {
            let writer = shard
                .install_topic(&topic, layout, incarnation)
                .map_err(ReadError::from)
                .and_then(|state| Ok(state.writer(partition, shard.id)?.clone()));
            let shard = shard.clone();
            rt::spawn_detached(async move {
                let result = match writer {
                    Ok(w) => {
                        read_local(
                            &w,
                            &shard.read_ahead,
                            &shard.lifecycle,
                            offset,
                            max_bytes,
                            wait,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            });
        }
        ShardMsg::GetOrCreateTopic {
            topic,
            create,
            cluster_revision,
            reply,
        } => {
            let shard = shard.clone();
            rt::spawn_detached(async move {
                let found = shard.ensure_topic(&topic, create, cluster_revision).await;
                let _ = reply.send(found);
            });
        }
        ShardMsg::Run(task) => task(shard),
    }
}
