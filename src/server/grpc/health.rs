//! `grpc.health.v1.Health`: `Check` answers at once; `Watch` sends the current status, then
//! holds the stream open (a later change of status, e.g. at shutdown, would be sent on it)
//! until the client cancels or its deadline passes.
//!
//! The empty service name means the whole server; each served service answers by its full
//! name; any other name is NOT_FOUND for `Check` and SERVICE_UNKNOWN for `Watch`.

use prost::Message;

use crate::proto::health::health_check_response::ServingStatus;
use crate::proto::health::{HealthCheckRequest, HealthCheckResponse};

use super::call::{Requests, Responder};
use super::status::{Code, Status};
use super::{CallCtx, SERVICES};

/// The status of `service`, or `None` when it is not served here. A shard that accepts calls
/// is serving: it starts listening only once its partitions are open.
fn status_of(_ctx: &CallCtx, service: &str) -> Option<ServingStatus> {
    (service.is_empty() || SERVICES.contains(&service)).then_some(ServingStatus::Serving)
}

pub async fn check(
    ctx: &CallCtx,
    requests: &mut Requests,
    responder: &Responder,
) -> Result<(), Status> {
    let req = HealthCheckRequest::decode(requests.single().await?)?;
    let status = status_of(ctx, &req.service)
        .ok_or_else(|| Status::new(Code::NotFound, format!("unknown service '{}'", req.service)))?;
    responder
        .send(&HealthCheckResponse {
            status: status as i32,
        })
        .await
}

pub async fn watch(
    ctx: &CallCtx,
    requests: &mut Requests,
    responder: &Responder,
) -> Result<(), Status> {
    let req = HealthCheckRequest::decode(requests.single().await?)?;
    let status = status_of(ctx, &req.service).unwrap_or(ServingStatus::ServiceUnknown);
    responder
        .send(&HealthCheckResponse {
            status: status as i32,
        })
        .await?;
    // Nothing changes a shard's status yet: wait for the client to go away.
    std::future::pending::<()>().await;
    Ok(())
}
