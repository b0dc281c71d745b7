//! TCP sockets on compio, with the readiness-based `futures-io` interface the servers are
//! written against (`AsyncRead`/`AsyncWrite`, `split`, h2 through `tokio_util::compat`).
//!
//! compio's own sockets take owned buffers (completion-based I/O), which the servers' borrowed
//! `&mut [u8]` reads cannot lend. So the sockets here are non-blocking std sockets in compio's
//! [`PollFd`]: a read or write is tried at once, and only when the kernel says `EAGAIN` does
//! the task wait, on an io_uring poll of the descriptor.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use compio::runtime::fd::PollFd;
use futures_lite::{AsyncRead, AsyncWrite};

/// A connected TCP socket of the current shard.
#[derive(Debug)]
pub struct TcpStream(PollFd<std::net::TcpStream>);

impl TcpStream {
    fn wrap(socket: std::net::TcpStream) -> io::Result<TcpStream> {
        socket.set_nonblocking(true)?;
        Ok(TcpStream(PollFd::new(socket)?))
    }

    /// Connects to `addr`. The connection is made by a blocking `connect` on the runtime's
    /// blocking pool (tests and tools connect; the broker only accepts).
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = super::spawn_blocking(move || std::net::TcpStream::connect(addr)).await?;
        TcpStream::wrap(socket)
    }

    /// Sends small writes at once (no Nagle delay).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.0.set_nodelay(on)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl FromRawFd for TcpStream {
    /// # Safety
    /// `fd` must be a connected TCP socket that the caller owns; ownership moves here.
    unsafe fn from_raw_fd(fd: RawFd) -> TcpStream {
        // SAFETY: as the caller promises.
        let socket = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        let _ = socket.set_nonblocking(true);
        // PollFd::new only wraps the descriptor (it cannot fail on Unix).
        match PollFd::new(socket) {
            Ok(p) => TcpStream(p),
            Err(e) => unreachable!("PollFd::new failed: {e}"),
        }
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts the write side down (the peer reads end of stream); the descriptor closes when
    /// the stream is dropped.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.shutdown(Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// A listening TCP socket of the current shard.
#[derive(Debug)]
pub struct TcpListener(PollFd<std::net::TcpListener>);

impl TcpListener {
    /// The next connection.
    pub async fn accept(&self) -> io::Result<TcpStream> {
        let (socket, _) =
            std::future::poll_fn(|cx| self.0.poll_accept_with(cx, |l| l.accept())).await?;
        TcpStream::wrap(socket)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl FromRawFd for TcpListener {
    /// # Safety
    /// `fd` must be a listening TCP socket that the caller owns; ownership moves here.
    unsafe fn from_raw_fd(fd: RawFd) -> TcpListener {
        // SAFETY: as the caller promises.
        let socket = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        let _ = socket.set_nonblocking(true);
        match PollFd::new(socket) {
            Ok(p) => TcpListener(p),
            Err(e) => unreachable!("PollFd::new failed: {e}"),
        }
    }
}
