//! One consumer's conversation with the broker, whatever the transport: [`ConsumerSession`],
//! over the framed protocol ([`FramedSession`]: REGISTER / POLL / COMMIT / GOODBYE) or the
//! HTTP consumer API ([`HttpSession`]: `PUT /v1/consumer/register`, `POST /v1/consumer/poll`,
//! ... over HTTP/1.1 keep-alive).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use shardlog_wire::consumer::{
    encode_consumer_id, encode_poll, encode_register, PollBody, RegisterBody, StartPolicy,
};
use shardlog_wire::error::parse_error_body;
use shardlog_wire::frame::{encode_frame, OpCode};
use shardlog_wire::header::HEADER_LEN;

use super::framed::{self, ClientError, FrameReader, FrameWriter};
use super::http::{encode_query, Answer, HttpClient};

/// The largest POLL_RESPONSE body accepted (the broker's `--max-poll-bytes` is 1 MiB by
/// default, but always returns at least one chunk).
pub const MAX_POLL_BODY: u32 = 256 << 20;

/// How consumers reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// The framed TCP protocol (REGISTER=7, POLL=8, COMMIT=10, GOODBYE=11).
    Framed,
    /// The HTTP consumer API on the HTTP port (`/v1/consumer/register|poll|commit|goodbye`),
    /// HTTP/1.1 keep-alive.
    Http,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Framed => "framed",
            Transport::Http => "http",
        }
    }
}

/// Where a new group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Start {
    Earliest,
    Latest,
}

impl Start {
    pub fn policy(self) -> StartPolicy {
        match self {
            Start::Earliest => StartPolicy::Earliest,
            Start::Latest => StartPolicy::Latest,
        }
    }
}

/// One consumer's conversation with the broker, whatever the transport.
pub trait ConsumerSession: Send {
    fn register(
        &mut self,
        id: &str,
        group: &str,
        topics: &[String],
        policy: StartPolicy,
    ) -> Result<(), ClientError>;
    /// Polls; the answer's body is the poll response (`wire::poll`), borrowed until the next
    /// call.
    fn poll(&mut self, id: &str, max_wait_ms: Option<u32>) -> Result<Polled<'_>, ClientError>;
    fn commit(&mut self, id: &str) -> Result<(), ClientError>;
    fn goodbye(&mut self, id: &str) -> Result<(), ClientError>;
}

/// A poll's answer.
pub struct Polled<'a> {
    /// The poll response body.
    pub body: &'a [u8],
    /// Bytes received for it on the wire (framing included).
    pub wire_bytes: u64,
}

/// Opens a session over `transport` to `addr` (the framed listener, or the HTTP port).
pub fn open_session(
    transport: Transport,
    addr: &str,
    timeout: Duration,
) -> Result<Box<dyn ConsumerSession>, ClientError> {
    match transport {
        Transport::Framed => Ok(Box::new(FramedSession::connect(addr, timeout)?)),
        Transport::Http => Ok(Box::new(HttpSession::connect(addr, timeout)?)),
    }
}

/// A consumer over the framed protocol: one request at a time on one connection.
pub struct FramedSession {
    reader: FrameReader,
    writer: FrameWriter,
    next_sid: u16,
    /// How long an answer may take beyond a poll's own wait.
    timeout: Duration,
    scratch: Vec<u8>,
    frame: Vec<u8>,
}

impl FramedSession {
    pub fn connect(addr: &str, timeout: Duration) -> Result<FramedSession, ClientError> {
        let framed::Connection { mut reader, writer } = framed::connect_raw(addr, timeout)?;
        reader.set_max_body(MAX_POLL_BODY);
        Ok(FramedSession {
            reader,
            writer,
            next_sid: 1,
            timeout,
            scratch: Vec::new(),
            frame: Vec::new(),
        })
    }

    /// Sends `scratch` as the body of `op` and returns the answer (opcode, body).
    fn request(&mut self, op: OpCode, wait: Duration) -> Result<(u8, &[u8]), ClientError> {
        let sid = self.next_sid;
        self.next_sid = self.next_sid.wrapping_add(1).max(1);
        self.frame.clear();
        encode_frame(&mut self.frame, op, 0, sid, &self.scratch);
        self.writer
            .write_all(&self.frame)
            .map_err(|source| ClientError::Io {
                what: "sending a consumer request failed".into(),
                source,
            })?;
        let deadline = Instant::now() + wait + self.timeout;
        let frame = self.reader.read_frame(Some(deadline))?;
        if frame.header.stream_id != sid {
            return Err(ClientError::Unexpected(format!(
                "answer on stream id {} to a request on {sid}",
                frame.header.stream_id
            )));
        }
        if frame.header.opcode == OpCode::Error as u8 {
            let (code, message) = parse_error_body(frame.body)
                .unwrap_or((255, "(ERROR frame without a code)".into()));
            return Err(ClientError::Refused { code, message });
        }
        Ok((frame.header.opcode, frame.body))
    }

    fn expect_ready(&mut self, op: OpCode, what: &str) -> Result<(), ClientError> {
        match self.request(op, Duration::ZERO)? {
            (o, _) if o == OpCode::Ready as u8 => Ok(()),
            (o, _) => Err(ClientError::Unexpected(format!(
                "opcode {o} in answer to {what} (expected READY)"
            ))),
        }
    }
}

impl ConsumerSession for FramedSession {
    fn register(
        &mut self,
        id: &str,
        group: &str,
        topics: &[String],
        policy: StartPolicy,
    ) -> Result<(), ClientError> {
        self.scratch.clear();
        encode_register(
            &RegisterBody {
                policy,
                consumer_id: id.into(),
                group: group.into(),
                topics: topics.to_vec(),
            },
            &mut self.scratch,
        );
        self.expect_ready(OpCode::Register, "REGISTER")
    }

    fn poll(&mut self, id: &str, max_wait_ms: Option<u32>) -> Result<Polled<'_>, ClientError> {
        self.scratch.clear();
        encode_poll(
            &PollBody {
                consumer_id: id.into(),
                max_wait_ms,
            },
            &mut self.scratch,
        );
        let wait = Duration::from_millis(max_wait_ms.unwrap_or(0) as u64);
        match self.request(OpCode::Poll, wait)? {
            (o, body) if o == OpCode::PollResponse as u8 => Ok(Polled {
                wire_bytes: (HEADER_LEN + body.len()) as u64,
                body,
            }),
            (o, _) => Err(ClientError::Unexpected(format!(
                "opcode {o} in answer to POLL (expected POLL_RESPONSE)"
            ))),
        }
    }

    fn commit(&mut self, id: &str) -> Result<(), ClientError> {
        self.scratch.clear();
        encode_consumer_id(id, &mut self.scratch);
        self.expect_ready(OpCode::Commit, "COMMIT")
    }

    fn goodbye(&mut self, id: &str) -> Result<(), ClientError> {
        self.scratch.clear();
        encode_consumer_id(id, &mut self.scratch);
        self.expect_ready(OpCode::Goodbye, "GOODBYE")
    }
}

/// A consumer over the broker's HTTP consumer API.
pub struct HttpSession {
    client: HttpClient,
    path: String,
}

impl HttpSession {
    pub fn connect(addr: &str, timeout: Duration) -> Result<HttpSession, ClientError> {
        Ok(HttpSession {
            client: HttpClient::connect(addr, timeout)?,
            path: String::with_capacity(256),
        })
    }

    /// Sends the request in `self.path`; a non-2xx answer is an error carrying its body.
    fn call(&mut self, method: &str, wait: Duration) -> Result<Answer, ClientError> {
        let a = self.client.request(method, &self.path, wait)?;
        if !(200..300).contains(&a.status) {
            let message =
                String::from_utf8_lossy(&self.client.body()[..self.client.body().len().min(500)])
                    .trim()
                    .to_string();
            return Err(ClientError::Http {
                status: a.status,
                message,
            });
        }
        Ok(a)
    }

    fn path_for(&mut self, op: &str, id: &str) {
        self.path.clear();
        self.path.push_str("/v1/consumer/");
        self.path.push_str(op);
        self.path.push_str("?consumerId=");
        encode_query(&mut self.path, id);
    }
}

impl ConsumerSession for HttpSession {
    fn register(
        &mut self,
        id: &str,
        group: &str,
        topics: &[String],
        policy: StartPolicy,
    ) -> Result<(), ClientError> {
        self.path_for("register", id);
        self.path.push_str("&group=");
        encode_query(&mut self.path, group);
        for t in topics {
            self.path.push_str("&topic=");
            encode_query(&mut self.path, t);
        }
        self.path.push_str(match policy {
            StartPolicy::Earliest => "&onNewGroup=startFromEarliest",
            StartPolicy::Latest => "&onNewGroup=startFromLatest",
        });
        self.call("PUT", Duration::ZERO).map(|_| ())
    }

    fn poll(&mut self, id: &str, max_wait_ms: Option<u32>) -> Result<Polled<'_>, ClientError> {
        self.path_for("poll", id);
        if let Some(ms) = max_wait_ms {
            let _ = write!(self.path, "&maxWaitMs={ms}");
        }
        let wait = Duration::from_millis(max_wait_ms.unwrap_or(0) as u64);
        let a = self.call("POST", wait)?;
        let body: &[u8] = if a.status == 204 {
            &[]
        } else {
            self.client.body()
        };
        Ok(Polled {
            body,
            wire_bytes: a.wire_bytes,
        })
    }

    fn commit(&mut self, id: &str) -> Result<(), ClientError> {
        self.path_for("commit", id);
        self.call("POST", Duration::ZERO).map(|_| ())
    }

    fn goodbye(&mut self, id: &str) -> Result<(), ClientError> {
        self.path_for("goodbye", id);
        self.call("POST", Duration::ZERO).map(|_| ())
    }
}
