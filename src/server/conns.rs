//! The open connections of one server on one shard: the per-shard connection limit, idle
//! timeouts, and waiting for connections to finish at graceful shutdown (each connection
//! watches the shard's lifecycle itself and stops reading when it stops).
//!
//! What counts as activity depends on the protocol: a request read (framed, HTTP/1.1), or on
//! HTTP/2 any bytes moving either way on the socket ([`ConnGuard::watch`]), so that streams
//! carrying data are never cut.
//!
//! An idle connection is closed by `shutdown(2)` (`SHUT_RDWR`) on its socket; its own task
//! sees the end of the stream and does the rest, so nothing here touches its buffers.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};

use crate::rt;
use crate::shard::notify::LocalNotify;

/// The connections of one server on one shard.
pub struct Connections {
    name: &'static str,
    max: usize,
    idle_timeout: Option<Duration>,
    next_id: Cell<u64>,
    open: RefCell<HashMap<u64, Rc<Entry>>>,
    closed: LocalNotify,
}

struct Entry {
    fd: RawFd,
    last_active: Cell<Instant>,
}

/// Registration of one open connection; dropping it unregisters the connection.
pub struct ConnGuard {
    id: u64,
    entry: Rc<Entry>,
    registry: Rc<Connections>,
}

impl ConnGuard {
    /// Records activity (a request read), which keeps the idle timeout away.
    pub fn touch(&self) {
        self.entry.last_active.set(Instant::now());
    }

    /// Wraps the connection's socket so that every byte read or written counts as activity.
    /// HTTP/2 uses it: a stream that is receiving (a Produce stream) or sending (a Consume
    /// tailing the log) keeps its connection alive, not only a new stream.
    pub fn watch<S>(&self, io: S) -> Watched<S> {
        Watched {
            inner: io,
            entry: self.entry.clone(),
        }
    }
}

/// A socket whose reads and writes record activity on its connection ([`ConnGuard::watch`]).
pub struct Watched<S> {
    inner: S,
    entry: Rc<Entry>,
}

impl<S> Watched<S> {
    /// Records activity when a read or write moved bytes.
    fn saw(&self, r: &Poll<io::Result<usize>>) {
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) {
            self.entry.last_active.set(Instant::now());
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.saw(&r);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.saw(&r);
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.registry.open.borrow_mut().remove(&self.id);
        self.registry.closed.notify();
    }
}

impl Connections {
    pub fn new(name: &'static str, max: usize, idle_timeout: Option<Duration>) -> Rc<Connections> {
        Rc::new(Connections {
            name,
            max,
            idle_timeout,
            next_id: Cell::new(0),
            open: RefCell::new(HashMap::new()),
            closed: LocalNotify::default(),
        })
    }

    /// Registers a connection, or `None` when the shard already has its maximum.
    pub fn register(self: &Rc<Self>, fd: RawFd) -> Option<ConnGuard> {
        let mut open = self.open.borrow_mut();
        if open.len() >= self.max {
            return None;
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let entry = Rc::new(Entry {
            fd,
            last_active: Cell::new(Instant::now()),
        });
        open.insert(id, entry.clone());
        Some(ConnGuard {
            id,
            entry,
            registry: self.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.open.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The server's name (`framed`, `http`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Waits until every connection has closed, at most `timeout`. Returns whether they did.
    pub async fn wait_all_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_empty() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            futures_lite::future::or(self.closed.notified(), rt::sleep(left)).await;
        }
        true
    }

    /// Closes connections idle for longer than the idle timeout, until the registry is
    /// dropped by everyone else. Run it as a task next to the accept loop.
    pub async fn reap_idle(self: Rc<Self>) {
        let Some(timeout) = self.idle_timeout else {
            return;
        };
        let period = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            rt::sleep(period).await;
            let now = Instant::now();
            for e in self.open.borrow().values() {
                if now.duration_since(e.last_active.get()) > timeout {
                    tracing::debug!(server = self.name, "closing an idle connection");
                    // SAFETY: shutdown(2) on a descriptor the connection still owns (it
                    // unregisters before closing it); it does not close or free anything.
                    unsafe { libc::shutdown(e.fd, libc::SHUT_RDWR) };
                    e.last_active.set(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_and_unregister() {
        let c = Connections::new("test", 2, None);
        let a = c.register(-1).unwrap();
        let _b = c.register(-1).unwrap();
        assert!(c.register(-1).is_none());
        drop(a);
        assert_eq!(c.len(), 1);
        assert!(c.register(-1).is_some());
    }

    #[test]
    fn wait_all_closed_times_out_or_returns() {
        crate::rt::block_on(async {
            let c = Connections::new("test", 8, None);
            let g = c.register(-1).unwrap();
            assert!(!c.wait_all_closed(Duration::from_millis(20)).await);
            let c2 = c.clone();
            let waiter =
                crate::rt::spawn(async move { c2.wait_all_closed(Duration::from_secs(5)).await });
            crate::rt::sleep(Duration::from_millis(10)).await;
            drop(g);
            assert!(waiter.await);
        });
    }
}
