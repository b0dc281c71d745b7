//! A small client for the framed protocol, on the broker's own codecs (`shardlog_wire`).
//!
//! A connection is opened with [`connect`] (TCP, then STARTUP → READY) and split into a
//! [`FrameWriter`] and a [`FrameReader`] that can live on different threads. Frames are matched
//! to their responses by stream id ([`super::produce_frame::StreamIds`] hands out ids that are
//! never in flight twice).

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use shardlog_wire::error::parse_error_body;
use shardlog_wire::frame::{encode_frame, Frame, OpCode};
use shardlog_wire::startup::encode_startup;
use shardlog_wire::{ErrorCode, WireError};

/// The largest response body accepted. Responses are tiny; a larger length means the stream is
/// not the framed protocol (or is corrupt).
pub const MAX_RESPONSE_BODY: u32 = 1 << 20;

/// Why a connection could not be used.
#[derive(Debug)]
pub enum ClientError {
    /// A socket operation failed; `what` says which.
    Io { what: String, source: io::Error },
    /// The broker sent bytes that are not a valid frame.
    Wire(WireError),
    /// The broker answered with an ERROR frame where that ends the conversation.
    Refused { code: u8, message: String },
    /// The broker answered with something the protocol does not allow here.
    Unexpected(String),
    /// The broker closed the connection.
    Closed { in_flight: usize },
    /// An HTTP answer with a status other than 2xx (HTTP transports), with its body.
    Http { status: u16, message: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io { what, source } => write!(f, "{what}: {source}"),
            ClientError::Wire(e) => write!(f, "broker sent a malformed frame: {e}"),
            ClientError::Refused { code, message } => {
                write!(
                    f,
                    "broker answered ERROR {} ({code}): {message}",
                    code_name(*code)
                )
            }
            ClientError::Unexpected(what) => write!(f, "unexpected answer from broker: {what}"),
            ClientError::Closed { in_flight } => write!(
                f,
                "broker closed the connection with {in_flight} frame(s) unanswered"
            ),
            ClientError::Http { status, message } => {
                write!(f, "broker answered HTTP {status}: {message}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// A readable name for an ERROR code.
pub fn code_name(code: u8) -> &'static str {
    ErrorCode::from_u8(code).map_or("unknown", ErrorCode::name)
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClientError {
    let what = what.into();
    move |source| ClientError::Io { what, source }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub topic: String,
    /// Limit for the TCP connect and for the READY answer to STARTUP.
    pub handshake_timeout: Duration,
}

/// A connection's two halves, for two threads.
pub struct Connection {
    pub reader: FrameReader,
    pub writer: FrameWriter,
}

/// Connects to `addr`, sends STARTUP for the topic and waits for READY.
pub fn connect(addr: &str, opts: &ConnectOptions) -> Result<Connection, ClientError> {
    let Connection {
        mut reader,
        mut writer,
    } = connect_raw(addr, opts.handshake_timeout)?;
    let mut startup = Vec::new();
    encode_startup(&opts.topic, &mut startup);
    let mut frame = Vec::new();
    encode_frame(&mut frame, OpCode::Startup, 0, 0, &startup);
    writer
        .write_all(&frame)
        .map_err(io_err(format!("cannot send STARTUP to {addr}")))?;

    let deadline = Instant::now() + opts.handshake_timeout;
    let answer = reader.read_one(deadline)?;
    match answer {
        Response::Ready { .. } => Ok(Connection { reader, writer }),
        Response::Error { code, message, .. } => Err(ClientError::Refused { code, message }),
        other => Err(ClientError::Unexpected(format!(
            "{other:?} in answer to STARTUP (expected READY)"
        ))),
    }
}

/// Opens a TCP connection (TCP_NODELAY) without any handshake: consumer connections need no
/// STARTUP, every request names its consumer.
pub fn connect_raw(addr: &str, timeout: Duration) -> Result<Connection, ClientError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(io_err(format!("cannot resolve framed address {addr}")))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(io_err(format!("cannot connect to {addr}"))(e)),
        (None, None) => {
            return Err(ClientError::Unexpected(format!(
                "{addr} resolves to no address"
            )))
        }
    };
    stream
        .set_nodelay(true)
        .map_err(io_err("cannot set TCP_NODELAY"))?;
    let read_half = stream.try_clone().map_err(io_err("cannot clone socket"))?;
    Ok(Connection {
        reader: FrameReader::new(read_half),
        writer: FrameWriter { stream },
    })
}

/// A decoded answer from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Ready {
        stream_id: u16,
    },
    /// PRODUCE_RESPONSE: the frame on this stream id is durable.
    Ack {
        stream_id: u16,
    },
    Error {
        stream_id: u16,
        code: u8,
        message: String,
    },
    /// Any other opcode (a client never expects one).
    Other {
        stream_id: u16,
        opcode: u8,
    },
}

impl Response {
    /// Classifies a frame. Never fails: an ERROR without a code byte becomes code 255.
    pub fn from_frame(frame: &Frame<'_>) -> Response {
        let stream_id = frame.header.stream_id;
        match OpCode::from_u8(frame.header.opcode) {
            Ok(OpCode::Ready) => Response::Ready { stream_id },
            Ok(OpCode::ProduceResponse) => Response::Ack { stream_id },
            Ok(OpCode::Error) => {
                let (code, message) = parse_error_body(frame.body)
                    .unwrap_or((255, "(ERROR frame without a code)".into()));
                Response::Error {
                    stream_id,
                    code,
                    message,
                }
            }
            _ => Response::Other {
                stream_id,
                opcode: frame.header.opcode,
            },
        }
    }
}

/// The sending half of a connection.
pub struct FrameWriter {
    stream: TcpStream,
}

impl FrameWriter {
    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf)
    }

    /// Writes all of `slices` (vectored; loops over short writes).
    pub fn write_all_vectored(&mut self, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        while !slices.is_empty() {
            match self.stream.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends a HEARTBEAT on `stream_id`; the broker answers READY.
    pub fn heartbeat(&mut self, stream_id: u16) -> io::Result<()> {
        let mut frame = Vec::new();
        encode_frame(&mut frame, OpCode::Heartbeat, 0, stream_id, &[]);
        self.write_all(&frame)
    }

    /// Closes the sending direction (the broker sees end of stream once answers are out).
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

/// What one [`FrameReader::read_frames`] call saw.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Some bytes were read (and any complete frames handled).
    Data,
    /// The read timed out with nothing new.
    Idle,
    /// The broker closed the connection.
    Eof,
}

/// The receiving half of a connection: reads into a buffer and parses frames in place.
pub struct FrameReader {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_body: u32,
}

impl FrameReader {
    fn new(stream: TcpStream) -> FrameReader {
        FrameReader {
            stream,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            max_body: MAX_RESPONSE_BODY,
        }
    }

    /// Raises (or lowers) the largest body accepted; poll responses need more than the
    /// default [`MAX_RESPONSE_BODY`].
    pub fn set_max_body(&mut self, max_body: u32) {
        self.max_body = max_body;
    }

    /// Reads until one whole frame is buffered and returns it, borrowed from the buffer (valid
    /// until the next read). Fails at `deadline` (`None`: wait forever) or end of stream.
    pub fn read_frame(&mut self, deadline: Option<Instant>) -> Result<Frame<'_>, ClientError> {
        loop {
            let used = Frame::parse(&self.buf[self.start..self.end], self.max_body)
                .map_err(ClientError::Wire)?
                .map(|(_, used)| used);
            if let Some(used) = used {
                let at = self.start;
                self.start += used;
                let (frame, _) = Frame::parse(&self.buf[at..at + used], self.max_body)
                    .map_err(ClientError::Wire)?
                    .expect("parsed just before");
                return Ok(frame);
            }
            let timeout = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ClientError::Unexpected(
                            "no answer before the response timeout".into(),
                        ));
                    }
                    Some(left)
                }
                None => None,
            };
            self.set_read_timeout(timeout)
                .map_err(io_err("cannot set a read timeout"))?;
            if self.fill()? == ReadOutcome::Eof {
                return Err(ClientError::Closed { in_flight: 1 });
            }
        }
    }

    /// Sets how long one read may block (`None`: forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Reads once (blocking up to the read timeout) and calls `handle` for every complete frame
    /// now in the buffer. A malformed frame is an error: the byte stream cannot be trusted after.
    pub fn read_frames(
        &mut self,
        mut handle: impl FnMut(Frame<'_>),
    ) -> Result<ReadOutcome, ClientError> {
        let outcome = self.fill()?;
        while let Some(frame) = self.next_buffered()? {
            handle(frame);
        }
        Ok(outcome)
    }

    /// Reads until one frame arrives or `deadline` passes (used for handshakes). Frames after
    /// the first stay buffered for the next call.
    pub fn read_one(&mut self, deadline: Instant) -> Result<Response, ClientError> {
        loop {
            if let Some(frame) = self.next_buffered()? {
                return Ok(Response::from_frame(&frame));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Unexpected(
                    "no answer before the handshake timeout".into(),
                ));
            }
            self.set_read_timeout(Some(left))
                .map_err(io_err("cannot set a read timeout"))?;
            if self.fill()? == ReadOutcome::Eof {
                return Err(ClientError::Closed { in_flight: 1 });
            }
        }
    }

    /// The next complete frame in the buffer, consumed.
    fn next_buffered(&mut self) -> Result<Option<Frame<'_>>, ClientError> {
        match Frame::parse(&self.buf[self.start..self.end], self.max_body)
            .map_err(ClientError::Wire)?
        {
            Some((frame, used)) => {
                self.start += used;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// One read into the buffer, making room first.
    fn fill(&mut self) -> Result<ReadOutcome, ClientError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // One frame larger than the buffer (bounded by `max_body`).
                let len = self.buf.len();
                self.buf.resize(len * 2, 0);
            }
        }
        match self.stream.read(&mut self.buf[self.end..]) {
            Ok(0) => Ok(ReadOutcome::Eof),
            Ok(n) => {
                self.end += n;
                Ok(ReadOutcome::Data)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(ReadOutcome::Idle)
            }
            Err(e) => Err(io_err("reading from the broker failed")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardlog_wire::frame::encode_frame;
    #[test]
    fn responses_classify_without_panicking() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, OpCode::Error, 0, 9, b"");
        let (f, _) = Frame::parse(&buf, 100).unwrap().unwrap();
        assert!(matches!(
            Response::from_frame(&f),
            Response::Error {
                stream_id: 9,
                code: 255,
                ..
            }
        ));
        buf.clear();
        encode_frame(&mut buf, OpCode::Error, 0, 3, b"\x06disk nearly full");
        let (f, _) = Frame::parse(&buf, 100).unwrap().unwrap();
        assert_eq!(
            Response::from_frame(&f),
            Response::Error {
                stream_id: 3,
                code: 6,
                message: "disk nearly full".into()
            }
        );
        buf.clear();
        encode_frame(&mut buf, OpCode::ProduceResponse, 0, 4, b"");
        let (f, _) = Frame::parse(&buf, 100).unwrap().unwrap();
        assert_eq!(Response::from_frame(&f), Response::Ack { stream_id: 4 });
    }
}
