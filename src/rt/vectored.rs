//! Vectored writes to a TCP stream: a response made of many slices (small encoded headers and
//! chunk payloads exactly as stored) goes out in as few system calls as possible, without
//! first copying the slices into one buffer.
//!
//! glommio's `TcpStream` has no vectored write of its own (its `poll_write_vectored` is the
//! default that writes the first slice only), so [`write_all_vectored`] calls `sendmsg(2)` on
//! the raw socket with up to [`MAX_IOV`] slices per call. glommio leaves accepted sockets in
//! blocking mode and makes its own sends non-blocking with `MSG_DONTWAIT`; we do the same
//! (plus `MSG_NOSIGNAL`), which is why this is `sendmsg` rather than `writev`: `writev` on a
//! blocking socket would stall the whole shard when the peer's window is full. On `EAGAIN` we
//! hand the rest of the current slice to the runtime's ordinary `write`, which waits for
//! writability through io_uring and writes what it can; then we go back to `sendmsg`.
//!
//! The alternative, one copy of the compressed bytes into a send buffer, costs a memcpy of
//! every payload byte; which is faster depends on slice sizes and should be measured with the
//! perf harness. Correctness does not depend on the choice. The caller must not write to the
//! same socket from elsewhere while this runs (the framed server has one writer task per
//! connection).

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use bytes::Bytes;
use futures_lite::{AsyncWrite, AsyncWriteExt};

/// Slices per `sendmsg` call (Linux's `IOV_MAX`).
pub const MAX_IOV: usize = 1024;

/// How far a vectored write has got: the current slice and the offset inside it. Pure
/// bookkeeping, tested on its own.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub index: usize,
    pub offset: usize,
}

impl Cursor {
    /// A cursor at the first byte of `bufs`.
    pub fn new(bufs: &[Bytes]) -> Cursor {
        let mut c = Cursor::default();
        c.advance(bufs, 0);
        c
    }

    /// Whether every byte has been written.
    pub fn done(&self, bufs: &[Bytes]) -> bool {
        self.index >= bufs.len()
    }

    /// Moves past `n` written bytes, across slice boundaries, and past empty slices.
    pub fn advance(&mut self, bufs: &[Bytes], mut n: usize) {
        while self.index < bufs.len() {
            let left = bufs[self.index].len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.index += 1;
            self.offset = 0;
            if n == 0 {
                // Skip empty slices so `done` and `current` stay exact.
                while self.index < bufs.len() && bufs[self.index].is_empty() {
                    self.index += 1;
                }
                return;
            }
        }
    }

    /// The unwritten part of the current slice.
    pub fn current<'a>(&self, bufs: &'a [Bytes]) -> &'a [u8] {
        bufs.get(self.index)
            .map(|b| &b[self.offset..])
            .unwrap_or(&[])
    }

    /// The unwritten bytes as at most `max` slices, ready for `sendmsg`.
    pub fn slices<'a>(&self, bufs: &'a [Bytes], max: usize) -> Vec<IoSlice<'a>> {
        let mut out = Vec::with_capacity(max.min(bufs.len().saturating_sub(self.index)));
        if self.done(bufs) {
            return out;
        }
        out.push(IoSlice::new(self.current(bufs)));
        for b in &bufs[self.index + 1..] {
            if out.len() >= max {
                break;
            }
            if !b.is_empty() {
                out.push(IoSlice::new(b));
            }
        }
        out
    }
}

/// Writes every byte of `bufs`, in order, to the socket `fd`; `fallback` is the same socket's
/// async writer, used to wait when the socket is full.
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(
    fd: RawFd,
    fallback: &mut W,
    bufs: &[Bytes],
) -> io::Result<()> {
    let mut cur = Cursor::new(bufs);
    while !cur.done(bufs) {
        let iov = cur.slices(bufs, MAX_IOV);
        // SAFETY: msghdr is plain data; we fill in the iovec array, which `IoSlice` guarantees
        // to be ABI-compatible with `struct iovec` on Unix, and which outlives the call.
        let sent = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = iov.len() as _;
            libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        if sent > 0 {
            cur.advance(bufs, sent as usize);
            continue;
        }
        if sent == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                // Let the runtime wait for room, writing part of the current slice.
                let n = fallback.write(cur.current(bufs)).await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                cur.advance(bufs, n);
            }
            _ => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bufs() -> Vec<Bytes> {
        vec![
            Bytes::from_static(b""),
            Bytes::from_static(b"abc"),
            Bytes::from_static(b""),
            Bytes::from_static(b"de"),
            Bytes::from_static(b"fghi"),
            Bytes::from_static(b""),
        ]
    }

    fn rest(c: &Cursor, b: &[Bytes]) -> Vec<u8> {
        c.slices(b, usize::MAX)
            .iter()
            .flat_map(|s| s.to_vec())
            .collect()
    }

    #[test]
    fn partial_writes_cross_slice_boundaries() {
        let b = bufs();
        let all = b"abcdefghi";
        // Every way of writing the 9 bytes in two steps leaves exactly the tail.
        for first in 0..=all.len() {
            let mut c = Cursor::new(&b);
            c.advance(&b, first);
            assert_eq!(rest(&c, &b), &all[first..], "after {first}");
            assert_eq!(c.done(&b), first == all.len());
            c.advance(&b, all.len() - first);
            assert!(c.done(&b));
            assert!(c.current(&b).is_empty());
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let b = bufs();
        let mut c = Cursor::new(&b);
        let mut seen = Vec::new();
        while !c.done(&b) {
            seen.push(c.current(&b)[0]);
            c.advance(&b, 1);
        }
        assert_eq!(seen, b"abcdefghi");
    }

    #[test]
    fn slices_respect_the_limit_and_skip_empties() {
        let b = bufs();
        let mut c = Cursor::new(&b);
        assert_eq!(c.slices(&b, 2).len(), 2);
        assert_eq!(c.slices(&b, 100).len(), 3);
        c.advance(&b, 4);
        let s = c.slices(&b, 100);
        assert_eq!(&*s[0], b"e");
        assert_eq!(&*s[1], b"fghi");
        let empty: Vec<Bytes> = vec![Bytes::new(), Bytes::new()];
        assert!(Cursor::new(&empty).done(&empty));
    }

    #[test]
    fn writes_to_a_real_socket_including_a_full_one() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // 8 MiB in many slices: more than the socket buffers hold, so EAGAIN happens.
        let slices: Vec<Bytes> = (0..2048u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; 4096 + (i as usize % 7)]))
            .collect();
        let expected: Vec<u8> = slices.iter().flat_map(|s| s.to_vec()).collect();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        crate::rt::block_on(async move {
            let mut stream = crate::rt::TcpStream::connect(addr).await.unwrap();
            let fd = stream.as_raw_fd();
            write_all_vectored(fd, &mut stream, &slices).await.unwrap();
            stream.close().await.unwrap();
        });
        assert!(reader.join().unwrap() == expected);
    }
}
