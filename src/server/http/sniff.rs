//! Telling HTTP/2 (prior knowledge) from HTTP/1.1 on one port: an HTTP/2 client opens with the
//! 24-byte connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which no HTTP/1.1 request
//! starts with. The bytes read to decide are replayed to the chosen protocol by [`Rewind`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_lite::{AsyncRead, AsyncWrite};

/// The HTTP/2 client connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// Decides from the first bytes of a connection, or `None` while they are still a prefix of
/// the HTTP/2 preface (more bytes needed).
pub fn classify(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// A socket whose first reads return `prefix` (bytes already read from it).
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Bytes, inner: S) -> Rewind<S> {
        Rewind { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_preface() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"PRI * HTTP/2"), None);
        assert_eq!(classify(PREFACE), Some(Protocol::Http2));
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Some(Protocol::Http2)
        );
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"PRX"), Some(Protocol::Http1));
        assert_eq!(classify(b"P"), None);
    }

    #[test]
    fn rewind_replays_the_prefix() {
        use futures_lite::AsyncReadExt;
        let inner = futures_lite::io::Cursor::new(b" world".to_vec());
        let mut r = Rewind::new(Bytes::from_static(b"hello"), inner);
        let mut s = String::new();
        futures_lite::future::block_on(r.read_to_string(&mut s)).unwrap();
        assert_eq!(s, "hello world");
    }
}
