//! The two halves of a framed-TCP connection. [`FrameReader`] owns the read half and its
//! buffer and hands out whole frames; [`Outbox`] collects encoded responses from the tasks
//! that finish requests (in any order) and one writer task flushes them in batches.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::metrics::ShardMetrics;
use crate::rt::vectored::write_all_vectored;
use crate::rt::StaticPermit;
use crate::wire::error::encode_error_body;
use crate::wire::frame::{encode_frame, encode_frame_with, OpCode};
use crate::wire::header::HEADER_LEN;
use crate::wire::{ErrorCode, FrameHeader, WireError};

/// How much we ask the socket for at once.
const READ_CHUNK: usize = 256 << 10;

/// What ended a read.
#[derive(Debug)]
pub enum ReadError {
    /// The byte stream is broken; `stream_id` is the best guess of the offending frame's.
    Wire {
        stream_id: u16,
        error: WireError,
    },
    Io(io::Error),
}

/// Reads whole frames from a socket. The body of each frame is a slice of the read buffer
/// (no copy) that can be handed to another shard.
pub struct FrameReader<R> {
    socket: R,
    /// The socket's descriptor, for reads into uninitialized buffer space.
    fd: RawFd,
    buf: BytesMut,
    max_body: u32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(socket: R, fd: RawFd, max_body: u32) -> Self {
        FrameReader {
            socket,
            fd,
            buf: BytesMut::with_capacity(READ_CHUNK),
            max_body,
        }
    }

    /// The next frame, or `None` on a clean end of stream between frames.
    pub async fn read_frame(&mut self) -> Result<Option<(FrameHeader, Bytes)>, ReadError> {
        loop {
            match FrameHeader::parse(&self.buf, self.max_body) {
                Ok(Some(header)) => {
                    let total = HEADER_LEN + header.body_len as usize;
                    if self.buf.len() >= total {
                        let mut frame = self.buf.split_to(total);
                        let body = frame.split_off(HEADER_LEN).freeze();
                        return Ok(Some((header, body)));
                    }
                    self.buf.reserve(total - self.buf.len());
                }
                Ok(None) => {}
                Err(error) => {
                    let stream_id = if self.buf.len() >= 4 {
                        u16::from_be_bytes([self.buf[2], self.buf[3]])
                    } else {
                        0
                    };
                    return Err(ReadError::Wire { stream_id, error });
                }
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed inside a frame ({} bytes pending)",
                            self.buf.len()
                        ),
                    )))
                };
            }
        }
    }

    /// Reads and discards everything until the peer closes (or an error).
    pub async fn drain(&mut self) {
        loop {
            self.buf.clear();
            if self.buf.capacity() < 4096 {
                self.buf.reserve(READ_CHUNK);
            }
            match self.fill().await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    async fn fill(&mut self) -> Result<usize, ReadError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_CHUNK);
        }
        crate::rt::recv::recv_into(&mut self.socket, self.fd, &mut self.buf, READ_CHUNK)
            .await
            .map_err(ReadError::Io)
    }
}

/// Encoded responses waiting to be written, shared by the tasks of one connection. Small
/// frames are encoded into one buffer; a poll response, made of many slices, is queued as
/// slices (after the small frames before it) and written with one vectored write.
pub struct Outbox {
    pending: RefCell<Vec<u8>>,
    /// Slices queued ahead of `pending`'s bytes (empty unless a poll response is queued).
    slices: RefCell<Vec<Bytes>>,
    /// Permits released once the slices queued with them are written.
    permits: RefCell<Vec<StaticPermit>>,
    signal: crate::rt::Semaphore,
    closed: Cell<bool>,
    /// The client, for logging its protocol errors.
    peer: Option<std::net::SocketAddr>,
    /// Counts every response queued, by result.
    metrics: Rc<ShardMetrics>,
}

impl Outbox {
    /// An outbox for the client at `peer` that counts its responses in `metrics`.
    pub fn new(peer: Option<std::net::SocketAddr>, metrics: Rc<ShardMetrics>) -> Self {
        Outbox {
            peer,
            pending: RefCell::new(Vec::with_capacity(4096)),
            slices: RefCell::new(Vec::new()),
            permits: RefCell::new(Vec::new()),
            signal: crate::rt::Semaphore::new(0),
            closed: Cell::new(false),
            metrics,
        }
    }
}

impl Outbox {
    fn wake(&self) {
        if self.signal.available() == 0 {
            self.signal.signal(1);
        }
    }

    /// Queues an empty-bodied response (READY, PRODUCE_RESPONSE).
    pub fn push_empty(&self, op: OpCode, stream_id: u16) {
        encode_frame(&mut self.pending.borrow_mut(), op, 0, stream_id, &[]);
        self.metrics.frame_ok();
        self.wake();
    }

    /// Queues an ERROR response.
    pub fn push_error(&self, stream_id: u16, code: ErrorCode, message: &str) {
        if matches!(code, ErrorCode::BadRequest | ErrorCode::Protocol) {
            crate::server::errlog::client_error("framed", self.peer, &message);
        }
        encode_frame_with(
            &mut self.pending.borrow_mut(),
            OpCode::Error,
            0,
            stream_id,
            |dst| encode_error_body(code, message, dst),
        );
        self.metrics.frame_error(code);
        self.wake();
    }

    /// Queues a response given as slices (a POLL_RESPONSE frame, header first); `permit` is
    /// released once they are written.
    pub fn push_parts(&self, parts: Vec<Bytes>, permit: StaticPermit) {
        let mut slices = self.slices.borrow_mut();
        let mut pending = self.pending.borrow_mut();
        if !pending.is_empty() {
            slices.push(Bytes::from(std::mem::take(&mut *pending)));
        }
        slices.extend(parts);
        self.permits.borrow_mut().push(permit);
        drop((slices, pending));
        self.metrics.frame_ok();
        self.wake();
    }

    /// Asks the writer to flush what is queued and stop.
    pub fn close(&self) {
        self.closed.set(true);
        self.wake();
    }

    /// The writer task: flushes queued responses until closed. `fd` is `socket`'s descriptor,
    /// for vectored writes.
    pub async fn write_loop<W: AsyncWrite + Unpin>(
        &self,
        mut socket: W,
        fd: RawFd,
    ) -> io::Result<()> {
        let mut out = Vec::with_capacity(4096);
        loop {
            if self.signal.acquire(1).await.is_err() {
                return Ok(());
            }
            let mut slices = std::mem::take(&mut *self.slices.borrow_mut());
            let permits = std::mem::take(&mut *self.permits.borrow_mut());
            std::mem::swap(&mut out, &mut self.pending.borrow_mut());
            if !slices.is_empty() {
                if !out.is_empty() {
                    slices.push(Bytes::copy_from_slice(&out));
                    out.clear();
                }
                write_all_vectored(fd, &mut socket, &slices).await?;
            } else if !out.is_empty() {
                socket.write_all(&out).await?;
                out.clear();
            }
            drop(permits);
            if self.closed.get()
                && self.pending.borrow().is_empty()
                && self.slices.borrow().is_empty()
            {
                socket.flush().await?;
                return Ok(());
            }
        }
    }
}
