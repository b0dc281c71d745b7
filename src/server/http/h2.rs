//! The HTTP/2 side of the HTTP port: h2's server on the runtime's socket (through tokio-util's
//! compat layer; h2 needs only tokio's I/O traits, not its runtime). Each stream runs in its
//! own task: gRPC calls go to [`grpc::serve`], other requests to the plain-HTTP router.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, Response, StatusCode};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::rt;
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
                rt::spawn_detached(stream(shard.clone(), request, respond));
            }
            Err(e) => {
                tracing::debug!(error = %e, "HTTP/2 connection ended");
                break;
            }
        }
    }
}

async fn stream(shard: Rc<Shard>, request: Request<RecvStream>, respond: SendResponse<Bytes>) {
    if grpc::is_grpc(request.headers()) || grpc::is_service_path(request.uri().path()) {
        return grpc::serve(shard, request, respond).await;
    }
    let (parts, body) = request.into_parts();
    let response = match read_body(body, super::max_body(&shard)).await {
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

/// Reads a plain request's body, up to `max` bytes.
async fn read_body(mut body: RecvStream, max: usize) -> Result<Bytes, HttpResponse> {
    let mut buf = BytesMut::new();
    while let Some(data) = body.data().await {
        let data = data.map_err(|e| {
            HttpResponse::error(StatusCode::BAD_REQUEST, &format!("request body: {e}"))
        })?;
        let _ = body.flow_control().release_capacity(data.len());
        if buf.len() + data.len() > max {
            return Err(HttpResponse::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request bodies are limited to {max} bytes"),
            ));
        }
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
