//! A small gRPC server layer over `h2` (no tonic): the HTTP/2 side of the HTTP port hands it
//! every request whose `content-type` starts with `application/grpc`, and every request for a
//! path of one of its services (which then gets HTTP 415).
//!
//! A call is routed by `:path` (`/package.Service/Method`) to one of the handlers below and
//! runs in its own task, watched by two things that end it early: the `grpc-timeout` deadline
//! (DEADLINE_EXCEEDED) and a client reset of the stream (the handler future is dropped, which
//! stops its work). Every call ends with `grpc-status` / `grpc-message`: as trailers, or as a
//! trailers-only response when it fails before sending anything. Only the `identity` message
//! encoding is supported.
//!
//! - [`call`]: request messages in, response messages and status out, with flow control.
//! - [`status`]: status codes and the mapping of the lower layers' errors.
//! - [`log_service`]: the log service (`atomix.log.LogService`: Produce, Consume).
//! - [`health`]: health checks (`grpc.health.v1.Health`).
//! - [`reflection`]: server reflection (`grpc.reflection.v1` and `v1alpha`).
//!
//! At shutdown the HTTP/2 side sends GOAWAY and [`serve`] ends calls still running with
//! UNAVAILABLE.

pub mod call;
pub mod health;
pub mod log_service;
pub mod reflection;
pub mod status;

use std::rc::Rc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, Method as HttpMethod, Request, StatusCode};

use crate::rt;
use crate::server::budget::Charge;
use crate::shard::Shard;
use crate::wire::grpc::parse_timeout;

use call::{Requests, Responder};
use status::Status;

/// The services served, by full name (listed by reflection, known to health checks).
pub const SERVICES: &[&str] = &[
    "atomix.log.LogService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The methods served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Produce,
    Consume,
    HealthCheck,
    HealthWatch,
    Reflection,
}

impl Method {
    /// The method a `:path` names, if served.
    pub fn from_path(path: &str) -> Option<Method> {
        Some(match path {
            "/atomix.log.LogService/Produce" => Method::Produce,
            "/atomix.log.LogService/Consume" => Method::Consume,
            "/grpc.health.v1.Health/Check" => Method::HealthCheck,
            "/grpc.health.v1.Health/Watch" => Method::HealthWatch,
            // The two reflection versions have wire-identical messages.
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => {
                Method::Reflection
            }
            _ => return None,
        })
    }
}

/// Whether a request's `content-type` makes it a gRPC call.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Whether `path` belongs to one of the gRPC services (so a non-gRPC request for it is
/// answered 415 rather than 404).
pub fn is_service_path(path: &str) -> bool {
    SERVICES.iter().any(|s| {
        path.strip_prefix('/')
            .and_then(|p| p.strip_prefix(s))
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// What a handler knows about its call.
pub struct CallCtx {
    pub shard: Rc<Shard>,
    /// The request headers (the call's metadata).
    pub metadata: HeaderMap,
}

/// Serves one gRPC call (one HTTP/2 stream) to its end; `charge` holds the request bytes it
/// buffers against its connection's budget.
pub async fn serve(
    shard: Rc<Shard>,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    charge: Charge,
) {
    let max = shard.config.grpc_max_message_size;
    let (parts, body) = request.into_parts();
    let responder = Responder::new(respond, max);
    if !is_grpc(&parts.headers) {
        return responder.reject_http(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "gRPC requests need content-type application/grpc (or application/grpc+proto)",
        );
    }
    if parts.method != HttpMethod::POST {
        return responder.reject_http(
            StatusCode::METHOD_NOT_ALLOWED,
            "gRPC calls are POST requests",
        );
    }
    let path = parts.uri.path().to_string();
    let outcome = match prepare(&path, &parts.headers) {
        Err(status) => Err(status),
        Ok((method, deadline)) => {
            let ctx = CallCtx {
                shard,
                metadata: parts.headers,
            };
            let idle = ctx.shard.config.stream_idle_timeout;
            let mut requests = Requests::new(body, max, charge, idle);
            let work = dispatch(method, &ctx, &mut requests, &responder);
            let watched = futures_lite::future::or(work, async {
                responder.cancelled().await;
                Err(Status::cancelled())
            });
            let shard = ctx.shard.clone();
            let watched = futures_lite::future::or(watched, async move {
                shard.lifecycle.stopped().await;
                Err(Status::new(
                    status::Code::Unavailable,
                    "the server is shutting down",
                ))
            });
            match deadline {
                Some(d) => rt::timeout(d, watched)
                    .await
                    .unwrap_or_else(|| Err(Status::deadline_exceeded())),
                None => watched.await,
            }
        }
    };
    match outcome {
        Ok(()) => responder.finish(&Status::ok()),
        Err(status) => {
            tracing::debug!(%path, %status, "gRPC call failed");
            responder.finish(&status);
        }
    }
}

/// Checks what must be right before a call starts: a known method, a supported encoding, a
/// well-formed deadline.
fn prepare(
    path: &str,
    headers: &HeaderMap,
) -> Result<(Method, Option<std::time::Duration>), Status> {
    let method = Method::from_path(path)
        .ok_or_else(|| Status::unimplemented(format!("unknown method {path}")))?;
    if let Some(enc) = headers.get("grpc-encoding") {
        if enc.as_bytes() != b"identity" {
            return Err(Status::unimplemented(format!(
                "message encoding '{}' is not supported; this server accepts only identity",
                String::from_utf8_lossy(enc.as_bytes())
            )));
        }
    }
    let deadline = match headers.get("grpc-timeout") {
        Some(v) => Some(parse_timeout(v.as_bytes()).map_err(Status::from)?),
        None => None,
    };
    Ok((method, deadline))
}

async fn dispatch(
    method: Method,
    ctx: &CallCtx,
    requests: &mut Requests,
    responder: &Responder,
) -> Result<(), Status> {
    match method {
        Method::Produce => log_service::produce(ctx, requests, responder).await,
        Method::Consume => log_service::consume(ctx, requests, responder).await,
        Method::HealthCheck => health::check(ctx, requests, responder).await,
        Method::HealthWatch => health::watch(ctx, requests, responder).await,
        Method::Reflection => reflection::serve(requests, responder).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Method::from_path("/atomix.log.LogService/Produce"),
            Some(Method::Produce)
        );
        assert_eq!(Method::from_path("/atomix.log.LogService/Nope"), None);
        assert!(is_service_path("/atomix.log.LogService/Nope"));
        assert!(!is_service_path("/atomix.log.LogServiceX/Produce"));
        assert!(!is_service_path("/status"));
    }
}
