//! The two halves of a framed-TCP connection. [`FrameReader`] owns the read half and its
//! buffer and hands out whole frames; [`Outbox`] collects encoded responses from the tasks
//! that finish requests (in any order) and one writer task flushes them in batches.
//!
//! Three limits protect the broker from a client that misbehaves: a frame whose first byte has
//! arrived must be complete within the reader's frame timeout; the bytes of a frame in
//! progress are charged to the shard's partial-input budget, and the reader gets room in it
//! before reading more of a begun frame (so slow senders that fill it make the shard stop
//! reading frames rather than allocate for them); and the outbox counts the bytes of answers
//! not yet sent, so the connection's read loop can stop reading while they exceed the
//! connection's limit ([`Outbox::over_limit`], [`Outbox::room`]). All are O(1) per read.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::rt::vectored::write_all_vectored;
use crate::rt::StaticPermit;
use crate::server::budget::Charge;
use crate::stats::ShardMetrics;
use crate::wire::error::encode_error_body;
use crate::wire::frame::{encode_frame, encode_frame_with, OpCode};
use crate::wire::header::HEADER_LEN;
use crate::wire::{ErrorCode, FrameHeader, WireError};

/// The capacity of a fresh read buffer.
const READ_BUFFER: usize = 512 << 10;
/// Room a read leaves free at the end of the buffer, so that the frame the read stops inside
/// can be completed in place. Frames are slices of the buffer that other tasks may still
/// hold, so a frame that does not fit has to be copied into a new buffer: that copy was ~1 %
/// of a shard's time under produce load when every read ran to the end of the buffer.
const TAIL_ROOM: usize = 128 << 10;
/// Below this much spare capacity a reader waiting for a new frame's header starts a new
/// buffer rather than read the header and then the body in two small reads.
const MIN_SPARE: usize = TAIL_ROOM + (16 << 10);

/// What ended a read.
#[derive(Debug)]
pub enum ReadError {
    /// The byte stream is broken; `stream_id` is the best guess of the offending frame's.
    Wire {
        stream_id: u16,
        error: WireError,
    },
    Io(io::Error),
    /// A frame was begun but not completed within the frame timeout (`after`).
    FrameTimeout {
        stream_id: u16,
        after: Duration,
    },
}

/// Reads whole frames from a socket. The body of each frame is a slice of the read buffer
/// (no copy) that can be handed to another shard.
pub struct FrameReader<R> {
    socket: R,
    /// The socket's descriptor, for reads into uninitialized buffer space.
    fd: RawFd,
    buf: BytesMut,
    max_body: u32,
    /// How long a frame may take from its first byte read to its last.
    frame_timeout: Duration,
    /// The bytes of the frame in progress, against the shard's partial-input budget.
    charge: Option<Charge>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(socket: R, fd: RawFd, max_body: u32, frame_timeout: Duration) -> Self {
        FrameReader {
            socket,
            fd,
            buf: BytesMut::with_capacity(READ_BUFFER),
            max_body,
            frame_timeout,
            charge: None,
        }
    }

    /// Charges the bytes of frames in progress to `charge` (the shard's partial-input
    /// budget), waiting for room in it before reading more of a begun frame.
    pub fn with_budget(mut self, charge: Charge) -> Self {
        self.charge = Some(charge);
        self
    }

    /// The next frame, or `None` on a clean end of stream between frames. Waiting for a frame
    /// to begin has no limit here (that is the idle timeout's business); once part of one is
    /// buffered, the rest must arrive within the frame timeout, counted from this call's first
    /// read for it (time the broker spends elsewhere is not the client's; time waiting for
    /// room in the budget is, or slow senders holding it would hold it forever), else
    /// [`ReadError::FrameTimeout`].
    pub async fn read_frame(&mut self) -> Result<Option<(FrameHeader, Bytes)>, ReadError> {
        let mut deadline: Option<Instant> = None;
        loop {
            let need = match FrameHeader::parse(&self.buf, self.max_body) {
                Ok(Some(header)) => {
                    let total = HEADER_LEN + header.body_len as usize;
                    if self.buf.len() >= total {
                        let mut frame = self.buf.split_to(total);
                        let body = frame.split_off(HEADER_LEN).freeze();
                        self.charge_held();
                        return Ok(Some((header, body)));
                    }
                    ReadNeed::Body(total - self.buf.len())
                }
                Ok(None) => ReadNeed::Header,
                Err(error) => {
                    let stream_id = FrameHeader::peek_stream_id(&self.buf);
                    return Err(ReadError::Wire { stream_id, error });
                }
            };
            let read = if self.buf.is_empty() {
                self.fill(need).await?
            } else {
                // The timer is only created if the read has to wait: a read the socket can
                // serve at once completes on its first poll.
                let now = Instant::now();
                let deadline = *deadline.get_or_insert(now + self.frame_timeout);
                let left = deadline.saturating_duration_since(now);
                match crate::rt::timeout(left, self.fill(need)).await {
                    Some(read) => read?,
                    None => {
                        return Err(ReadError::FrameTimeout {
                            stream_id: FrameHeader::peek_stream_id(&self.buf),
                            after: self.frame_timeout,
                        })
                    }
                }
            };
            if read == 0 {
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
            self.charge_held();
            match self.fill(ReadNeed::Header).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Reads more of the stream, following [`plan_read`]. Inside a frame, first waits for
    /// room in the budget for the rest of it (or for the read, if smaller). A read between
    /// frames does not wait: it is charged for the partial frame it leaves, once done.
    async fn fill(&mut self, need: ReadNeed) -> Result<usize, ReadError> {
        let spare = self.buf.capacity() - self.buf.len();
        let plan = plan_read(self.buf.len(), spare, need);
        if let Some(charge) = self.charge.as_mut().filter(|_| !self.buf.is_empty()) {
            let rest = match need {
                ReadNeed::Header => HEADER_LEN,
                ReadNeed::Body(n) => n,
            };
            let want = self.buf.len() + rest.min(plan.max_read);
            charge.grow_to(want as u64).await;
        }
        if let Some(capacity) = plan.new_buffer {
            let mut fresh = BytesMut::with_capacity(capacity);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        let read =
            crate::rt::recv::recv_into(&mut self.socket, self.fd, &mut self.buf, plan.max_read)
                .await
                .map_err(ReadError::Io);
        self.charge_held();
        read
    }

    /// Sets the charge to the bytes buffered (a frame in progress, or frames not yet taken).
    fn charge_held(&mut self) {
        if let Some(charge) = &mut self.charge {
            charge.set(self.buf.len() as u64);
        }
    }
}

/// What the frame being read still lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadNeed {
    /// Its header is not complete (or no frame has started).
    Header,
    /// Its header is parsed and this many bytes of it are still to come.
    Body(usize),
}

/// How the next read goes: into a new buffer of this capacity (the buffered bytes copied
/// over) or the current one, and how many bytes it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadPlan {
    new_buffer: Option<usize>,
    max_read: usize,
}

/// Decides the next read so that buffered bytes are rarely copied. A read may run past the
/// current frame only while [`TAIL_ROOM`] stays free behind it; otherwise it stops exactly at
/// the frame's end, so the buffer ends on a frame boundary and the next one starts empty. A
/// new buffer is taken when the frame in progress cannot be completed in this one (a frame
/// larger than the room left: its bytes so far are copied) or when only a header is pending
/// and little room is left (at most a partial header is copied).
fn plan_read(len: usize, spare: usize, need: ReadNeed) -> ReadPlan {
    let (need, fresh) = match need {
        ReadNeed::Header => {
            let need = HEADER_LEN.saturating_sub(len).max(1);
            (need, spare < MIN_SPARE.max(need))
        }
        ReadNeed::Body(need) => {
            let need = need.max(1);
            (need, spare < need)
        }
    };
    let (new_buffer, spare) = if fresh {
        let capacity = READ_BUFFER.max(len + need);
        (Some(capacity), capacity - len)
    } else {
        (None, spare)
    };
    let max_read = if spare >= need + TAIL_ROOM {
        spare - TAIL_ROOM
    } else {
        need
    };
    ReadPlan {
        new_buffer,
        max_read,
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
    /// Bytes of answers queued and not yet written: in `pending`, in `slices`, and in the
    /// batch the writer is writing. Kept on every push and write, so checks are O(1).
    unsent: Cell<usize>,
    /// Above this many unsent bytes the connection's read loop stops reading.
    limit: usize,
    /// Signalled when `unsent` drops to `limit` or below (or the writer ends) while the read
    /// loop waits in [`Outbox::room`].
    room: crate::rt::Semaphore,
    wants_room: Cell<bool>,
    /// The writer task has ended (an error, or closed): nothing more will be sent.
    writer_done: Cell<bool>,
    /// The client, for logging its protocol errors.
    peer: Option<std::net::SocketAddr>,
    /// Counts every response queued, by result.
    metrics: Rc<ShardMetrics>,
}

impl Outbox {
    /// An outbox for the client at `peer` that counts its responses in `metrics`; more than
    /// `limit` bytes of unsent answers make it [`Outbox::over_limit`].
    pub fn new(
        peer: Option<std::net::SocketAddr>,
        metrics: Rc<ShardMetrics>,
        limit: usize,
    ) -> Self {
        Outbox {
            peer,
            unsent: Cell::new(0),
            limit,
            room: crate::rt::Semaphore::new(0),
            wants_room: Cell::new(false),
            writer_done: Cell::new(false),
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

    /// Whether the answers not yet sent exceed the connection's limit: the read loop then
    /// stops reading until [`Outbox::room`].
    pub fn over_limit(&self) -> bool {
        self.unsent.get() > self.limit
    }

    /// Bytes of answers queued and not yet written.
    pub fn unsent(&self) -> usize {
        self.unsent.get()
    }

    /// Waits until the unsent answers are within the limit again: `true`, or `false` if the
    /// writer has ended and they never will be.
    pub async fn room(&self) -> bool {
        while self.over_limit() {
            if self.writer_done.get() {
                return false;
            }
            self.wants_room.set(true);
            if self.room.acquire(1).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Wakes the read loop waiting in [`Outbox::room`], if it is.
    fn wake_reader(&self) {
        if self.wants_room.replace(false) {
            self.room.signal(1);
        }
    }

    /// Queues an empty-bodied response (READY, PRODUCE_RESPONSE).
    pub fn push_empty(&self, op: OpCode, stream_id: u16) {
        encode_frame(&mut self.pending.borrow_mut(), op, 0, stream_id, &[]);
        self.unsent.set(self.unsent.get() + HEADER_LEN);
        self.metrics.frame_ok();
        self.wake();
    }

    /// Queues a response with a small body (GROUP_ANSWER).
    pub fn push_frame(&self, op: OpCode, stream_id: u16, body: &[u8]) {
        let mut pending = self.pending.borrow_mut();
        let before = pending.len();
        encode_frame(&mut pending, op, 0, stream_id, body);
        self.unsent.set(self.unsent.get() + pending.len() - before);
        drop(pending);
        self.metrics.frame_ok();
        self.wake();
    }

    /// Queues an ERROR response.
    pub fn push_error(&self, stream_id: u16, code: ErrorCode, message: &str) {
        if matches!(code, ErrorCode::BadRequest | ErrorCode::Protocol) {
            crate::server::errlog::client_error("framed", self.peer, &message);
        }
        let mut pending = self.pending.borrow_mut();
        let before = pending.len();
        encode_frame_with(&mut pending, OpCode::Error, 0, stream_id, |dst| {
            encode_error_body(code, message, dst)
        });
        self.unsent.set(self.unsent.get() + pending.len() - before);
        drop(pending);
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
        let added: usize = parts.iter().map(Bytes::len).sum();
        self.unsent.set(self.unsent.get() + added);
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
    pub async fn write_loop<W: AsyncWrite + Unpin>(&self, socket: W, fd: RawFd) -> io::Result<()> {
        let result = self.write_all_queued(socket, fd).await;
        self.writer_done.set(true);
        self.wake_reader();
        result
    }

    async fn write_all_queued<W: AsyncWrite + Unpin>(
        &self,
        mut socket: W,
        fd: RawFd,
    ) -> io::Result<()> {
        let mut out = Vec::with_capacity(4096);
        loop {
            if self.signal.acquire(1).await.is_err() {
                return Ok(());
            }
            // Everything queued is taken now, so it is all this batch's.
            let taken = self.unsent.get();
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
            self.unsent.set(self.unsent.get() - taken);
            if !self.over_limit() {
                self.wake_reader();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_counts_unsent_answers_and_wakes_the_reader_once_they_are_written() {
        crate::rt::block_on(async {
            let outbox = Rc::new(Outbox::new(None, Rc::new(ShardMetrics::default()), 100));
            outbox.push_empty(OpCode::ProduceResponse, 1);
            assert_eq!(outbox.unsent(), HEADER_LEN);
            outbox.push_error(2, ErrorCode::NotFound, "no such thing");
            let one_error = outbox.unsent() - HEADER_LEN;
            assert_eq!(one_error, outbox.pending.borrow().len() - HEADER_LEN);
            while !outbox.over_limit() {
                outbox.push_empty(OpCode::ProduceResponse, 3);
            }
            let queued = outbox.pending.borrow().len();
            assert_eq!(outbox.unsent(), queued);
            // The reader waits; the writer takes everything and wakes it.
            let sink = Rc::new(RefCell::new(Vec::new()));
            let writer = {
                let (outbox, sink) = (outbox.clone(), sink.clone());
                crate::rt::spawn(async move {
                    let mut out = futures_lite::io::Cursor::new(Vec::new());
                    let r = outbox.write_loop(&mut out, -1).await;
                    *sink.borrow_mut() = out.into_inner();
                    r
                })
            };
            assert!(outbox.room().await);
            assert_eq!(outbox.unsent(), 0);
            outbox.close();
            writer.await.unwrap();
            assert_eq!(sink.borrow().len(), queued);
            // With the writer gone, a reader over the limit is told so instead of waiting.
            while !outbox.over_limit() {
                outbox.push_empty(OpCode::ProduceResponse, 4);
            }
            assert!(!outbox.room().await);
        });
    }

    #[test]
    fn reads_leave_room_for_the_frame_they_stop_inside() {
        let plan = plan_read(0, READ_BUFFER, ReadNeed::Header);
        assert_eq!(plan.new_buffer, None);
        assert_eq!(plan.max_read, READ_BUFFER - TAIL_ROOM);
        let plan = plan_read(300 << 10, 200 << 10, ReadNeed::Body(40 << 10));
        assert_eq!(plan.new_buffer, None);
        assert_eq!(plan.max_read, (200 << 10) - TAIL_ROOM);
    }

    #[test]
    fn near_the_end_a_read_stops_at_the_frame_boundary() {
        let plan = plan_read(500, 100 << 10, ReadNeed::Body(60 << 10));
        assert_eq!(plan.new_buffer, None);
        assert_eq!(plan.max_read, 60 << 10);
    }

    #[test]
    fn a_new_frame_near_the_end_starts_a_new_buffer() {
        let plan = plan_read(5, 100 << 10, ReadNeed::Header);
        assert_eq!(plan.new_buffer, Some(READ_BUFFER));
        assert_eq!(plan.max_read, READ_BUFFER - 5 - TAIL_ROOM);
    }

    #[test]
    fn a_frame_that_does_not_fit_moves_to_a_buffer_big_enough() {
        let plan = plan_read(100, 1000, ReadNeed::Body(4 << 20));
        assert_eq!(plan.new_buffer, Some((4 << 20) + 100));
        assert_eq!(plan.max_read, 4 << 20);
        let plan = plan_read(100, 1000, ReadNeed::Body(2000));
        assert_eq!(plan.new_buffer, Some(READ_BUFFER));
        assert_eq!(plan.max_read, READ_BUFFER - 100 - TAIL_ROOM);
    }

    #[test]
    fn every_read_asks_for_at_least_one_byte_it_has_room_for() {
        for len in [0, 1, 12, 13, 4096, 300 << 10] {
            for spare in [0, 1, 12, 4096, MIN_SPARE - 1, MIN_SPARE, READ_BUFFER] {
                for need in [
                    ReadNeed::Header,
                    ReadNeed::Body(0),
                    ReadNeed::Body(1),
                    ReadNeed::Body(70 << 10),
                ] {
                    let plan = plan_read(len, spare, need);
                    let room = plan.new_buffer.map_or(spare, |cap| cap - len);
                    assert!(plan.max_read >= 1, "{len} {spare} {need:?}");
                    assert!(plan.max_read <= room, "{len} {spare} {need:?}: {plan:?}");
                    if let ReadNeed::Body(n) = need {
                        assert!(room >= n, "{len} {spare} {need:?}: {plan:?}");
                    }
                }
            }
        }
    }
}
