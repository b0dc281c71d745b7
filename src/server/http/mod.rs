//! The HTTP port (`--http-listen`): HTTP/2 with prior knowledge (gRPC, and the REST routes)
//! and HTTP/1.1 (curl, Prometheus) on one socket, told apart by the first bytes of the
//! connection. Like the framed port, every shard binds it (SO_REUSEPORT) and serves the
//! connections the kernel hands it.
//!
//! - [`sniff`]: the HTTP/2 preface check, and replaying the bytes read for it.
//! - [`h1`]: HTTP/1.1 connections (httparse), keep-alive, limits, timeouts.
//! - [`h2`]: HTTP/2 connections (the h2 crate); gRPC streams go to [`crate::server::grpc`].
//! - [`router`]: the plain-HTTP routes, shared by both versions.
//! - [`rest`]: PolarStreams' consumer and producer endpoints.

pub mod errors;
pub mod h1;
pub mod h2;
pub mod message;
pub mod rest;
pub mod router;
pub mod sniff;

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::AsyncReadExt;

use std::os::fd::AsRawFd;

use crate::rt::{self, TcpListener, TcpStream};
use crate::server::conns::ConnGuard;
use crate::server::listener::{self, ListenError, Server};
use crate::shard::Shard;

use sniff::{classify, Protocol, Rewind};

/// Largest plain-HTTP request body (both versions), unless `--max-frame-size` is larger.
pub const MAX_BODY: usize = 1 << 20;

/// The request body limit on this broker: [`MAX_BODY`], or `--max-frame-size` when larger so
/// that a REST produce can carry as much as a framed PRODUCE.
pub fn max_body(shard: &Shard) -> usize {
    MAX_BODY.max(shard.config.max_frame_size as usize)
}

/// How long a new connection may take to send its first bytes.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the HTTP listener on this shard.
pub fn bind(shard: &Shard) -> Result<TcpListener, ListenError> {
    listener::bind(shard.config.http_listen, "http-listen")
}

/// The HTTP port, for [`crate::server::listener::accept_loop`]. At shutdown HTTP/1.1
/// connections close after their current request, HTTP/2 ones after a GOAWAY and their open
/// streams.
pub const SERVER: Server = Server {
    name: "http",
    serve: |shard, stream, guard| Box::pin(async move { serve(shard, stream, &guard).await }),
    refuse: |stream, max| Box::pin(h1::refuse(stream, max)),
};

/// Serves one connection in the protocol its first bytes announce.
async fn serve(shard: Rc<Shard>, mut stream: TcpStream, guard: &ConnGuard) {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(4096);
    let protocol = loop {
        if let Some(p) = classify(&buf) {
            break p;
        }
        let mut chunk = [0u8; 1024];
        match rt::timeout(SNIFF_TIMEOUT, stream.read(&mut chunk)).await {
            Some(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    match protocol {
        Protocol::Http2 => h2::serve(shard, Rewind::new(buf.freeze(), stream), guard).await,
        Protocol::Http1 => {
            let fd = stream.as_raw_fd();
            h1::serve(shard, stream, Some(fd), buf, guard).await
        }
    }
}
