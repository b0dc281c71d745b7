//! The accept loop every server runs on every shard: registers each connection (refusing
//! those over `--max-connections`), closes idle ones, stops accepting when the shard stops,
//! and then waits — at most `--shutdown-timeout` — for the open connections to finish.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use crate::rt::{self, TcpListener, TcpStream};
use crate::shard::Shard;

use super::conns::{ConnGuard, Connections};

/// A future a server runs for one connection.
pub type ConnFuture = Pin<Box<dyn Future<Output = ()>>>;

/// How one protocol serves its connections.
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
pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, server: Server) {
    let conns = Connections::new(
        server.name,
        shard.config.max_connections,
        shard.config.idle_timeout,
    );
    shard.metrics.track_connections(&conns);
    let reaper = rt::spawn(conns.clone().reap_idle());
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.lifecycle.stopped().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => match conns.register(stream.as_raw_fd()) {
                Some(guard) => rt::spawn_detached((server.serve)(shard.clone(), stream, guard)),
                None => (server.refuse)(stream, conns.max()).await,
            },
            Some(Err(e)) => {
                tracing::warn!(server = server.name, error = %e, "accept failed");
                rt::sleep(Duration::from_millis(10)).await;
            }
        }
    }
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
