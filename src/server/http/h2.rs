//! The HTTP/2 side of the HTTP port: h2's server on the runtime's socket (through tokio-util's
//! compat layer; h2 needs only tokio's I/O traits, not its runtime). Each stream runs in its
//! own task: gRPC calls go to [`grpc::serve`], other requests to the plain-HTTP router.
//!
//! Request bodies: the bytes a connection's streams hold (REST bodies being read, gRPC
//! messages not yet whole) are charged to the connection's budget (`--h2-connection-buffer`,
//! within the shard's `--partial-input-budget`) before h2 is told to release them; when it is
//! full they are not released, so the client's windows close and flow control stops it. A
//! connection thus holds at most its budget plus the connection window. A stream whose request
//! body stays open with no data for `--stream-idle-timeout` (time waiting for room counts: its
//! client is held back meanwhile) is answered (408, or gRPC DEADLINE_EXCEEDED) and reset,
//! which frees what it held; so streams that each hold part of a full budget cannot wait for
//! each other forever.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, Response, StatusCode};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::rt;
use crate::server::budget::{Charge, InputBudget};
use crate::server::conns::ConnGuard;
use crate::server::grpc;
use crate::shard::Shard;

use super::message::{HttpRequest, HttpResponse};
use super::router;

/// Streams one connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Streams reset by the client before we accepted them; past it the connection is closed
/// (the "rapid reset" flood).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 64;
/// Bytes of request headers a stream may send (HPACK-decoded).
const MAX_HEADER_LIST_SIZE: u32 = 16 << 10;
/// Receive windows: what a client may send before we consume (and release) it.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;
/// The largest DATA frame a client may send: 16 KiB (the protocol's default) cuts a stream
/// of 1 KiB gRPC messages into many frames, each parsed, flow-controlled and sliced apart.
const MAX_FRAME_SIZE: u32 = 256 << 10;
/// Response bytes h2 buffers per stream; sends past it wait for capacity.
const MAX_SEND_BUFFER: usize = 256 << 10;

/// Serves one HTTP/2 connection until it closes.
pub async fn serve<S>(shard: Rc<Shard>, io: S, guard: &ConnGuard)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_frame_size(MAX_FRAME_SIZE)
        .handshake::<_, Bytes>(guard.watch(io).compat());
    let budget = InputBudget::new(
        shard.config.h2_connection_buffer,
        Some(InputBudget::of_shard(&shard)),
    );
    let mut conn = match handshake.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/2 handshake failed");
            return;
        }
    };
    // Accepting also drives the connection's I/O for every stream. At shutdown: GOAWAY, then
    // keep driving the connection until its open streams end (gRPC calls that would run on,
    // like tailing Consume, are ended with UNAVAILABLE by the gRPC layer).
    let mut going_away = false;
    loop {
        let next = if going_away {
            conn.accept().await
        } else {
            let stopping = async {
                shard.lifecycle.stopped().await;
                None
            };
            match futures_lite::future::or(async { Some(conn.accept().await) }, stopping).await {
                Some(next) => next,
                None => {
                    conn.graceful_shutdown();
                    going_away = true;
                    continue;
                }
            }
        };
        let Some(next) = next else { break };
        guard.touch();
        match next {
            Ok((request, respond)) => {
                rt::spawn_detached(stream(shard.clone(), request, respond, budget.charge()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "HTTP/2 connection ended");
                break;
            }
        }
    }
}

async fn stream(
    shard: Rc<Shard>,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    charge: Charge,
) {
    if grpc::is_grpc(request.headers()) || grpc::is_service_path(request.uri().path()) {
        return grpc::serve(shard, request, respond, charge).await;
    }
    let (parts, body) = request.into_parts();
    let limits = (super::max_body(&shard), shard.config.stream_idle_timeout);
    let response = match read_body(body, limits, charge).await {
        Ok(body) => {
            let req = HttpRequest {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or("").to_string(),
                headers: parts.headers,
                body,
                params: Vec::new(),
            };
            router::route(shard, req).await
        }
        Err(r) => r,
    };
    send(respond, response).await;
}

/// Reads a plain request's body, up to `max` bytes, each DATA frame released to flow control
/// only once `charge` has room for it, and none more than `idle` apart (counting the wait
/// for room).
async fn read_body(
    mut body: RecvStream,
    (max, idle): (usize, Duration),
    mut charge: Charge,
) -> Result<Bytes, HttpResponse> {
    let mut buf = BytesMut::new();
    loop {
        // Waiting for room counts as idle, or streams holding parts of a full budget would
        // wait for each other forever.
        let next = async {
            let data = body.data().await;
            if let Some(Ok(data)) = &data {
                if buf.len() + data.len() <= max {
                    charge.grow_to((buf.len() + data.len()) as u64).await;
                }
            }
            data
        };
        let data = match rt::timeout(idle, next).await {
            Some(Some(data)) => data.map_err(|e| {
                HttpResponse::error(StatusCode::BAD_REQUEST, &format!("request body: {e}"))
            })?,
            Some(None) => break,
            None => {
                return Err(HttpResponse::error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "no request data for {} (--stream-idle-timeout)",
                        humantime::format_duration(idle)
                    ),
                ))
            }
        };
        if buf.len() + data.len() > max {
            return Err(HttpResponse::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request bodies are limited to {max} bytes"),
            ));
        }
        let _ = body.flow_control().release_capacity(data.len());
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// Sends a response. Bodies are sent slice by slice (a binary poll response: item headers and
/// stored chunk payloads, never joined), each waiting for flow-control capacity so that a slow
/// reader holds at most h2's send buffer.
async fn send(mut respond: SendResponse<Bytes>, r: HttpResponse) {
    let mut head = Response::new(());
    *head.status_mut() = r.status;
    let headers = head.headers_mut();
    if let Ok(v) = r.content_type.parse() {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    if r.status != StatusCode::NO_CONTENT {
        headers.insert(http::header::CONTENT_LENGTH, r.body.len().into());
    }
    for (name, value) in r.headers {
        if let Ok(v) = value.parse() {
            headers.insert(name, v);
        }
    }
    let parts = r.body.into_parts();
    let mut stream = match respond.send_response(head, parts.is_empty()) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "could not send an HTTP/2 response");
            return;
        }
    };
    let last = parts.len().saturating_sub(1);
    for (i, mut data) in parts.into_iter().enumerate() {
        while !data.is_empty() {
            stream.reserve_capacity(data.len());
            let cap = match std::future::poll_fn(|cx| match stream.capacity() {
                0 => stream.poll_capacity(cx),
                n => std::task::Poll::Ready(Some(Ok(n))),
            })
            .await
            {
                Some(Ok(n)) => n,
                _ => return,
            };
            let piece = data.split_to(cap.min(data.len()));
            if stream
                .send_data(piece, i == last && data.is_empty())
                .is_err()
            {
                return;
            }
        }
    }
}
