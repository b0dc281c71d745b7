//! Serving the mesh: one receive loop per peer, each message handled without waiting (work
//! that waits is spawned), so one slow request never holds the others.

use std::rc::Rc;

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
            partition,
            frame,
            reply,
        } => {
            let state = shard.install_topic(&topic, layout);
            match state.writer(partition, shard.id) {
                Ok(w) => w.submit(frame, reply),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
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
            let state = shard.install_topic(&topic, layout);
            let writer = state.writer(partition, shard.id).cloned();
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
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(result);
            });
        }
        ShardMsg::GetOrCreateTopic {
            topic,
            create,
            reply,
        } => {
            let _ = reply.send(shard.ensure_topic(&topic, create));
        }
        ShardMsg::Run(task) => task(shard),
    }
}
