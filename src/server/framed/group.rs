//! GROUP on framed TCP (cluster mode): a consumer-group operation another broker passes to
//! this one as the group's coordinator (`wire::group`, `consumer::coordinated`). Only a
//! connection whose STARTUP said it is a broker's may send it. This broker answers
//! "not coordinator" when its own view names another broker for the group (the asker looks
//! again), else applies the operation on shard 0 and answers GROUP_ANSWER, or ERROR with the
//! refusal's code. Each request runs on a task of its own (bounded by the connection's
//! in-flight limit), so a commit waiting for etcd holds up no other group's operations.

use std::rc::Rc;

use bytes::Bytes;

use super::errors::code_of;
use super::Conn;
use crate::consumer::coordinated;
use crate::rt;
use crate::shard::Shard;
use crate::wire::group::{GroupAnswer, GroupRequest};
use crate::wire::{ErrorCode, OpCode};

/// Serves one GROUP frame.
pub(super) async fn handle(shard: &Rc<Shard>, conn: &Conn<'_>, sid: u16, body: Bytes) {
    let outbox = conn.outbox;
    let (Some(from), Some(cluster)) = (conn.broker.get(), crate::cluster::installed()) else {
        return outbox.push_error(
            sid,
            ErrorCode::BadRequest,
            "GROUP is an operation between brokers of a cluster; this connection's STARTUP \
             did not say it is a broker's",
        );
    };
    let request = match GroupRequest::decode(&body) {
        Ok(r) => r,
        Err(e) => return outbox.push_error(sid, e.code(), &e.to_string()),
    };
    let Ok(slot) = conn.in_flight.clone().acquire_static_permit(1).await else {
        return;
    };
    let (shard, outbox) = (shard.clone(), outbox.clone());
    rt::spawn_detached(async move {
        let answer = match cluster.group_coordinator(&request.group) {
            Ok((id, _)) if id == cluster.broker => coordinated::apply(&shard, request).await,
            Ok((id, _)) => {
                tracing::debug!(
                    from,
                    group = request.group,
                    coordinator = id,
                    "asked about a group another broker coordinates"
                );
                Ok(GroupAnswer::NotCoordinator {
                    coordinator: Some(id),
                })
            }
            Err(e) => {
                drop(slot);
                return outbox.push_error(sid, code_of(&e), &e.to_string());
            }
        };
        match answer {
            Ok(a) => {
                let mut body = Vec::new();
                a.encode(&mut body);
                outbox.push_frame(OpCode::GroupAnswer, sid, &body);
            }
            Err(e) => outbox.push_error(sid, code_of(&e), &e.to_string()),
        }
        drop(slot);
    });
}
