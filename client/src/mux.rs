//! [`Mux`]: many requests in flight on one connection. Each gets its own stream id, and the
//! answer with that stream id resolves it, in whatever order answers come. A writer task
//! sends the frames waiting to go with one vectored write; a reader task dispatches answers.
//!
//! This is the layer under [`Producer`](crate::Producer) and [`Consumer`](crate::Consumer),
//! public for programs that build their own frames and want each frame's own answer, such as
//! a load generator keeping a fixed window of PRODUCE frames in flight and timing each one:
//!
//! ```no_run
//! use std::time::Duration;
//! use shardlog_client::mux::Mux;
//! use shardlog_client::wire::{produce::encode_produce_body, startup::StartupBody, OpCode};
//!
//! # async fn run() -> Result<(), shardlog_client::ClientError> {
//! let conn = Mux::connect("127.0.0.1:9254", 1 << 20, 16, Duration::from_secs(30)).await?;
//! let mut startup = Vec::new();
//! StartupBody { topic: "orders" }.encode(&mut startup);
//! conn.call(OpCode::Startup, 0, &startup).await?; // READY
//! // Two frames in flight at once; each answer is awaited on its own.
//! let a = conn
//!     .send_with(OpCode::Produce, 0, |body| encode_produce_body(None, b"", [&b"one"[..]], body))
//!     .await?;
//! let b = conn
//!     .send_with(OpCode::Produce, 0, |body| encode_produce_body(None, b"", [&b"two"[..]], body))
//!     .await?;
//! let (a, b) = tokio::join!(a.answer(), b.answer());
//! a?;
//! b?; // PRODUCE_RESPONSE: stored durably (an ERROR answer is ClientError::Broker)
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use shardlog_wire::error::parse_error_body;
use shardlog_wire::frame::encode_frame_with;
use shardlog_wire::header::HEADER_LEN;
use shardlog_wire::OpCode;

use crate::connection::{self, FrameReader, FrameWriter, ReceivedFrame};
use crate::ClientError;

/// Bytes of frames gathered into one write.
const COALESCE: usize = 256 << 10;
/// Frames gathered into one write (the kernel takes at most `IOV_MAX`, 1024, slices).
const COALESCE_FRAMES: usize = 512;

type Reply = oneshot::Sender<Result<ReceivedFrame, ClientError>>;

/// One multiplexed connection. Dropping it closes the connection; requests still waiting
/// fail with [`ClientError::ConnectionLost`].
pub struct Mux {
    shared: Arc<Shared>,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    in_flight: Arc<Semaphore>,
    timeout: Duration,
    reader: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiting: HashMap<u16, Reply>,
    next_id: u16,
    /// Why the connection ended, once it has.
    ended: Option<ClientError>,
}

impl State {
    /// A stream id no request in flight uses (the semaphore keeps fewer than 65,536 waiting).
    fn allocate(&mut self) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.waiting.contains_key(&id) {
                return id;
            }
        }
    }

    fn end(&mut self, why: ClientError) {
        if self.ended.is_none() {
            self.ended = Some(why.clone());
        }
        for (_, reply) in self.waiting.drain() {
            let _ = reply.send(Err(why.clone()));
        }
    }
}

impl Mux {
    /// Connects to `addr`; at most `max_in_flight` requests wait for answers at once (more
    /// wait for a slot), each at most `timeout`.
    pub async fn connect(
        addr: &str,
        max_body: u32,
        max_in_flight: usize,
        timeout: Duration,
    ) -> Result<Mux, ClientError> {
        let (reader, writer) = tokio::time::timeout(timeout, connection::connect(addr, max_body))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        let shared = Arc::new(Shared::default());
        let (frames, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(writer, rx, shared.clone()));
        let reader = tokio::spawn(read_loop(reader, shared.clone()));
        Ok(Mux {
            shared,
            frames,
            in_flight: Arc::new(Semaphore::new(max_in_flight.clamp(1, 32_768))),
            timeout,
            reader,
        })
    }

    /// Whether the connection has ended (new requests would fail at once).
    pub fn is_closed(&self) -> bool {
        self.lock().ended.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// Sends one request and waits for its answer. An ERROR answer is
    /// [`ClientError::Broker`].
    pub async fn call(
        &self,
        opcode: OpCode,
        flags: u8,
        body: &[u8],
    ) -> Result<ReceivedFrame, ClientError> {
        self.send(opcode, flags, body).await?.answer().await
    }

    /// Hands one request to the connection (waiting for a free in-flight slot first) and
    /// returns what waits for its answer. Requests are written in the order `send` returns.
    pub async fn send(
        &self,
        opcode: OpCode,
        flags: u8,
        body: &[u8],
    ) -> Result<Pending<'_>, ClientError> {
        self.send_parts(opcode, flags, &[body]).await
    }

    /// [`send`](Mux::send) with a body made of `parts`, back to back (a head encoded per
    /// request and bytes encoded once, say), copied once into a frame buffer of the right size.
    pub async fn send_parts(
        &self,
        opcode: OpCode,
        flags: u8,
        parts: &[&[u8]],
    ) -> Result<Pending<'_>, ClientError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.send_sized(opcode, flags, HEADER_LEN + len, |dst| {
            parts.iter().for_each(|p| dst.extend_from_slice(p))
        })
        .await
    }

    /// [`send`](Mux::send) with the body written by `write_body` straight into the frame's
    /// buffer (after the header, which is filled in afterwards), so a body assembled from
    /// parts is copied once.
    pub async fn send_with(
        &self,
        opcode: OpCode,
        flags: u8,
        write_body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Pending<'_>, ClientError> {
        self.send_sized(opcode, flags, 0, write_body).await
    }

    /// [`send_parts`](Mux::send_parts) whose answer is awaited apart from the connection:
    /// the returned [`OwnedPending`] borrows nothing, so it can go to another task (a
    /// forwarder hands frames over in order from one task and answers each from its own).
    pub async fn send_owned(
        &self,
        opcode: OpCode,
        flags: u8,
        parts: &[&[u8]],
    ) -> Result<OwnedPending, ClientError> {
        let slot = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Closed)?;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let waiter = self.enqueue(opcode, flags, HEADER_LEN + len, |dst| {
            parts.iter().for_each(|p| dst.extend_from_slice(p))
        })?;
        Ok(OwnedPending {
            waiter,
            _slot: slot,
        })
    }

    /// Hands one frame to the connection; its buffer starts with room for `capacity` bytes.
    async fn send_sized(
        &self,
        opcode: OpCode,
        flags: u8,
        capacity: usize,
        write_body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Pending<'_>, ClientError> {
        let slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| ClientError::Closed)?;
        let waiter = self.enqueue(opcode, flags, capacity, write_body)?;
        Ok(Pending {
            waiter,
            _slot: slot,
        })
    }

    /// Gives the frame a stream id, registers its waiter and queues it for the writer.
    fn enqueue(
        &self,
        opcode: OpCode,
        flags: u8,
        capacity: usize,
        write_body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Waiter, ClientError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut st = self.lock();
            if let Some(why) = &st.ended {
                return Err(why.clone());
            }
            let id = st.allocate();
            st.waiting.insert(id, tx);
            id
        };
        let mut frame = Vec::with_capacity(capacity);
        encode_frame_with(&mut frame, opcode, flags, id, write_body);
        if self.frames.send(frame).is_err() {
            self.lock().waiting.remove(&id);
            return Err(ClientError::ConnectionLost("writer stopped".into()));
        }
        Ok(Waiter {
            shared: self.shared.clone(),
            timeout: self.timeout,
            id,
            rx,
        })
    }
}

/// What waits for one request's answer.
struct Waiter {
    shared: Arc<Shared>,
    timeout: Duration,
    id: u16,
    rx: oneshot::Receiver<Result<ReceivedFrame, ClientError>>,
}

impl Waiter {
    async fn answer(self) -> Result<ReceivedFrame, ClientError> {
        let timeout = self.timeout;
        let answer = match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(answer)) => answer?,
            Ok(Err(_)) => return Err(ClientError::ConnectionLost("closed".into())),
            Err(_) => {
                lock(&self.shared).waiting.remove(&self.id);
                return Err(ClientError::Timeout(timeout));
            }
        };
        if answer.opcode()? == OpCode::Error {
            let (code, message) = parse_error_body(&answer.body)?;
            return Err(ClientError::Broker { code, message });
        }
        Ok(answer)
    }
}

/// A request sent, its answer still to come. Dropping it gives up on the answer (and frees
/// its in-flight slot).
pub struct Pending<'a> {
    waiter: Waiter,
    _slot: tokio::sync::SemaphorePermit<'a>,
}

impl Pending<'_> {
    /// The stream id the request went out with.
    pub fn stream_id(&self) -> u16 {
        self.waiter.id
    }

    /// Waits (at most the request timeout) for the answer. An ERROR answer is
    /// [`ClientError::Broker`].
    pub async fn answer(self) -> Result<ReceivedFrame, ClientError> {
        self.waiter.answer().await
    }
}

/// [`Pending`] that borrows nothing (from [`Mux::send_owned`]); it holds its in-flight slot
/// until it is answered or dropped, even if the [`Mux`] is dropped first (the answer is then
/// [`ClientError::Closed`]).
pub struct OwnedPending {
    waiter: Waiter,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl OwnedPending {
    /// The stream id the request went out with.
    pub fn stream_id(&self) -> u16 {
        self.waiter.id
    }

    /// Waits (at most the request timeout) for the answer. An ERROR answer is
    /// [`ClientError::Broker`].
    pub async fn answer(self) -> Result<ReceivedFrame, ClientError> {
        self.waiter.answer().await
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.reader.abort();
        self.lock().end(ClientError::Closed);
    }
}

async fn write_loop(
    mut writer: FrameWriter,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(COALESCE_FRAMES);
    while let Some(first) = frames.recv().await {
        let mut bytes = first.len();
        batch.push(first);
        while bytes < COALESCE && batch.len() < COALESCE_FRAMES {
            match frames.try_recv() {
                Ok(f) => {
                    bytes += f.len();
                    batch.push(f);
                }
                Err(_) => break,
            }
        }
        let sent = writer.write_all_frames(&batch).await;
        batch.clear();
        if let Err(e) = sent {
            lock(&shared).end(e);
            return;
        }
    }
}

async fn read_loop(mut reader: FrameReader, shared: Arc<Shared>) {
    loop {
        match reader.read_frame().await {
            Ok(Some(frame)) => {
                let reply = lock(&shared).waiting.remove(&frame.header.stream_id);
                // An answer nobody waits for (its request timed out) is dropped.
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(frame));
                }
            }
            Ok(None) => {
                lock(&shared).end(ClientError::ConnectionLost(
                    "the broker closed the connection".into(),
                ));
                return;
            }
            Err(e) => {
                lock(&shared).end(e);
                return;
            }
        }
    }
}

/// A panic while holding this lock cannot leave the map half-updated in a way that matters
/// (each operation is one insert or remove), so a poisoned lock is used as is.
fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardlog_wire::frame::{encode_frame, Frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Frames handed over back to back (many per vectored write) arrive whole and in order,
    /// whichever way they were given (`send`, `send_parts`, `send_with`), and each waiter
    /// gets the answer on its own stream id although the peer answers in reverse order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_arrive_whole_and_answers_find_their_request() {
        const FRAMES: usize = 600;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let peer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut seen = Vec::new();
            while seen.len() < FRAMES {
                let mut chunk = [0u8; 65536];
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the client closed early");
                buf.extend_from_slice(&chunk[..n]);
                while let Some((frame, used)) = Frame::parse(&buf, 1 << 20).unwrap() {
                    seen.push((frame.header.stream_id, frame.body.to_vec()));
                    buf.drain(..used);
                }
            }
            let mut answers = Vec::new();
            for (id, body) in seen.iter().rev() {
                encode_frame(&mut answers, OpCode::ProduceResponse, 0, *id, body);
            }
            socket.write_all(&answers).await.unwrap();
            seen
        });

        let mux = Mux::connect(&addr, 1 << 20, FRAMES, Duration::from_secs(30))
            .await
            .unwrap();
        let body = |i: usize| format!("frame {i} ").repeat(i % 50 + 1).into_bytes();
        let mut pending = Vec::new();
        for i in 0..FRAMES {
            let b = body(i);
            let p = match i % 3 {
                0 => mux.send(OpCode::Produce, 0, &b).await,
                1 => {
                    let (head, rest) = b.split_at(b.len() / 2);
                    mux.send_parts(OpCode::Produce, 0, &[head, rest]).await
                }
                _ => {
                    mux.send_with(OpCode::Produce, 0, |d| d.extend_from_slice(&b))
                        .await
                }
            };
            pending.push(p.unwrap());
        }
        let ids: Vec<u16> = pending.iter().map(Pending::stream_id).collect();
        for (i, p) in pending.into_iter().enumerate() {
            let answer = p.answer().await.unwrap();
            assert_eq!(answer.header.stream_id, ids[i]);
            assert_eq!(answer.body, body(i), "frame {i}'s own answer");
        }
        let seen = peer.await.unwrap();
        let sent: Vec<(u16, Vec<u8>)> = (0..FRAMES).map(|i| (ids[i], body(i))).collect();
        assert_eq!(seen, sent, "every frame whole, in the order handed over");
    }

    /// Answers awaited on other tasks (`send_owned`) find their own frames, in any order, and
    /// a dropped connection fails the ones still waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_answers_are_awaited_elsewhere_and_fail_when_the_connection_goes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let peer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut seen = Vec::new();
            while seen.len() < 3 {
                let mut chunk = [0u8; 4096];
                let n = socket.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                while let Some((frame, used)) = Frame::parse(&buf, 1 << 20).unwrap() {
                    seen.push((frame.header.stream_id, frame.body.to_vec()));
                    buf.drain(..used);
                }
            }
            // Answers the second, then the first, then hangs up on the third.
            let mut answers = Vec::new();
            for (id, body) in [&seen[1], &seen[0]] {
                encode_frame(&mut answers, OpCode::ProduceResponse, 0, *id, body);
            }
            socket.write_all(&answers).await.unwrap();
            seen
        });
        let mux = Mux::connect(&addr, 1 << 20, 4, Duration::from_secs(30))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..3u8 {
            let p = mux
                .send_owned(OpCode::Produce, 0, &[b"head-", &[b'0' + i]])
                .await
                .unwrap();
            tasks.push(tokio::spawn(p.answer()));
        }
        let seen = peer.await.unwrap();
        let bodies: Vec<&[u8]> = seen.iter().map(|(_, b)| &b[..]).collect();
        assert_eq!(
            bodies,
            [&b"head-0"[..], b"head-1", b"head-2"],
            "in order, whole"
        );
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(results[0].as_ref().unwrap().body, &b"head-0"[..]);
        assert_eq!(results[1].as_ref().unwrap().body, &b"head-1"[..]);
        assert!(
            matches!(results[2], Err(ClientError::ConnectionLost(_))),
            "{:?}",
            results[2]
        );
    }
}
