//! Reading from a TCP stream straight into a buffer's spare capacity.
//!
//! The runtime's `read` needs an initialized `&mut [u8]`, so reading into fresh buffer space
//! would first zero it: a memset of every received byte, about 2% of a shard's time under
//! produce load. [`recv_into`] instead calls `recv(2)` with `MSG_DONTWAIT` on the raw socket,
//! writing into the uninitialized spare capacity through a raw pointer (no Rust reference to
//! uninitialized bytes is made), and marks as filled only what the kernel reports. When the
//! socket has nothing (`EAGAIN`) it falls back to the runtime's ordinary `read` of a small
//! zeroed slice, which waits for readability through io_uring; the next call goes back to
//! `recv`. The caller must not read the same socket elsewhere at the same time.

use std::io;
use std::os::fd::RawFd;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt};

/// Bytes read through the runtime when the socket had nothing ready.
const WAIT_READ: usize = 4096;

/// Reads at most `max` bytes (and at most the spare capacity, which must not be zero) from
/// `socket` (whose descriptor is `fd`) onto the end of `buf`. Returns 0 at end of stream.
pub async fn recv_into<R: AsyncRead + Unpin>(
    socket: &mut R,
    fd: RawFd,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    let want = buf.capacity().saturating_sub(buf.len()).min(max);
    if want == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no room to read into",
        ));
    }
    loop {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is writable memory of at least `want` bytes owned by `buf`; recv
        // writes at most `want` bytes through the pointer and reads none.
        let n = unsafe {
            libc::recv(
                fd,
                spare.as_mut_ptr().cast::<libc::c_void>(),
                want,
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: the kernel initialized the first `n` (≤ want ≤ spare) bytes.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                let mut small = [0u8; WAIT_READ];
                let take = want.min(WAIT_READ);
                let n = socket.read(&mut small[..take]).await?;
                buf.extend_from_slice(&small[..n]);
                return Ok(n);
            }
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn reads_what_arrives_and_waits_when_empty() {
        crate::rt::block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let writer = std::thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                s.write_all(&[7u8; 10_000]).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
                s.write_all(b"late").unwrap();
            });
            let mut stream = crate::rt::TcpStream::connect(addr).await.unwrap();
            let fd = stream.as_raw_fd();
            let mut buf = BytesMut::with_capacity(64 << 10);
            while buf.len() < 10_004 {
                let n = recv_into(&mut stream, fd, &mut buf, 1 << 20).await.unwrap();
                assert!(n > 0);
            }
            assert!(buf[..10_000].iter().all(|&b| b == 7));
            assert_eq!(&buf[10_000..], b"late");
            writer.join().unwrap();
            assert_eq!(
                recv_into(&mut stream, fd, &mut buf, 1 << 20).await.unwrap(),
                0
            );
        });
    }
}
