//! The accept loop every server runs on every shard: registers each connection (refusing
//! those over `--max-connections`), closes idle ones, stops accepting when the shard stops,
//! and then waits — at most `--shutdown-timeout` — for the open connections to finish.
//! Connections are spread evenly over the shards ([`super::balance`]).

use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::StreamExt;

use crate::rt::{self, TcpListener, TcpStream};
use crate::shard::Shard;

use super::balance::{self, Adoption, ConnLoad, Handover, Placed};
use super::conns::{ConnGuard, Connections};

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (--{flag}): {source}")]
pub struct ListenError {
    pub addr: std::net::SocketAddr,
    /// The flag that set the address.
    pub flag: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` on this shard (every shard binds the same port; the kernel spreads
/// connections with SO_REUSEPORT).
pub fn bind(addr: std::net::SocketAddr, flag: &'static str) -> Result<TcpListener, ListenError> {
    rt::listen::listen(addr).map_err(|source| ListenError { addr, flag, source })
}

/// A future a server runs for one connection.
pub type ConnFuture = Pin<Box<dyn Future<Output = ()>>>;

/// How one protocol serves its connections.
#[derive(Clone, Copy)]
pub struct Server {
    /// For logs and metrics: `framed`, `http`.
    pub name: &'static str,
    /// Serves an accepted connection to its end (it watches the shard's lifecycle itself);
    /// the connection is unregistered when the guard is dropped.
    pub serve: fn(Rc<Shard>, TcpStream, ConnGuard) -> ConnFuture,
    /// Answers a connection over the limit (with the limit) and closes it.
    pub refuse: fn(TcpStream, usize) -> ConnFuture,
}

/// Accepts connections until the shard stops, then waits for the open ones to finish.
/// `load` counts the server's connections on every shard: a connection accepted here while
/// another shard serves fewer is handed over to it (see [`super::balance`]).
pub async fn accept_loop(
    shard: Rc<Shard>,
    listener: TcpListener,
    server: Server,
    load: Arc<ConnLoad>,
) {
    let conns = Connections::new(
        server.name,
        shard.config.max_connections,
        shard.config.idle_timeout,
    );
    let open = conns.clone();
    shard
        .metrics
        .track_connections(server.name, Rc::new(move || open.len()));
    let adoption = Adoption::of(&shard);
    let reaper = rt::spawn(conns.clone().reap_idle());
    // Handed-over connections are taken by their own task: racing them against `accept`
    // would drop an accept future that may already hold a connection.
    let adopter = rt::spawn(adopt(
        shard.clone(),
        conns.clone(),
        server,
        adoption.take(server.name),
    ));
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.lifecycle.stopped().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                let placed = load.place(shard.id);
                if placed.shard() == shard.id {
                    start(&shard, &conns, server, stream, placed).await;
                } else {
                    hand_over(&shard, server, stream, placed).await;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(server = server.name, error = %e, "accept failed");
                rt::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    adoption.stop(server.name);
    drop(adopter);
    drop(listener);
    drop(reaper);
    if !conns.wait_all_closed(shard.config.shutdown_timeout).await {
        tracing::warn!(
            server = server.name,
            open = conns.len(),
            "connections still open at the shutdown timeout"
        );
    }
}

/// Serves the connections other shards hand over, until the shard stops.
async fn adopt(
    shard: Rc<Shard>,
    conns: Rc<Connections>,
    server: Server,
    mut adopted: UnboundedReceiver<Handover>,
) {
    while let Some(h) = adopted.next().await {
        if shard.lifecycle.is_stopping() {
            break;
        }
        start(&shard, &conns, server, rt::attach_stream(h.fd), h.placed).await;
    }
}

/// Serves a connection on this shard (or refuses it over the limit); `placed` keeps it
/// counted until it closes.
async fn start(
    shard: &Rc<Shard>,
    conns: &Rc<Connections>,
    server: Server,
    stream: TcpStream,
    placed: Placed,
) {
    match conns.register(stream.as_raw_fd()) {
        Some(guard) => {
            let serve = (server.serve)(shard.clone(), stream, guard);
            rt::spawn_detached(async move {
                serve.await;
                drop(placed);
            });
        }
        None => {
            drop(placed);
            (server.refuse)(stream, conns.max()).await
        }
    }
}

/// Sends a connection, before anything was read from it, to the shard `placed` chose.
async fn hand_over(shard: &Rc<Shard>, server: Server, stream: TcpStream, placed: Placed) {
    let to = placed.shard();
    let fd = match rt::detach_stream(stream) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(server = server.name, error = %e, "cannot hand a connection over");
            return;
        }
    };
    let handover = Handover {
        server: server.name,
        fd,
        placed,
    };
    if let Err(e) = balance::hand_over(shard, to, handover).await {
        tracing::warn!(server = server.name, to, error = %e, "cannot hand a connection over");
    }
}
