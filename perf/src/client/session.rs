//! One consumer's conversation with the broker, whatever the transport: [`ConsumerSession`],
//! over the framed protocol ([`FramedSession`]: REGISTER / POLL / COMMIT / GOODBYE) or the
//! HTTP consumer API ([`HttpSession`]: `PUT /v1/consumer/register`, `POST /v1/consumer/poll`,
//! ... over HTTP/1.1 keep-alive).
//!
//! The framed session sends its requests through the client library's connection layer
//! ([`Mux`]) rather than its `Consumer`: the harness measures the raw poll response (bytes on
//! the wire, compressed and raw sizes, or no decoding at all with `--no-decode`), and a POLL
//! alone confirms the previous poll, as the broker defines it, where the library's
//! `Consumer` adds a COMMIT round trip before each poll.

use std::fmt::Write as _;
use std::time::Duration;

use shardlog_client::connection::ReceivedFrame;
use shardlog_client::mux::Mux;
use shardlog_wire::consumer::{
    encode_consumer_id, encode_poll, encode_register, PollBody, RegisterBody, StartPolicy,
};
use shardlog_wire::frame::OpCode;
use shardlog_wire::header::HEADER_LEN;

use super::error::ClientError;
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

/// A consumer over the framed protocol: one request at a time on one connection, on a
/// single-threaded tokio runtime owned by the session (the consumer's own thread drives it
/// during each request).
pub struct FramedSession {
    rt: tokio::runtime::Runtime,
    conn: Mux,
    /// How long an answer may take beyond a poll's own wait.
    timeout: Duration,
    scratch: Vec<u8>,
    /// The last poll's answer, lent out by [`ConsumerSession::poll`].
    last: Option<ReceivedFrame>,
}

impl FramedSession {
    pub fn connect(addr: &str, timeout: Duration) -> Result<FramedSession, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ClientError::Io {
                what: "cannot start a tokio runtime".into(),
                source,
            })?;
        // Requests wait for their answers beyond the poll's own wait; the longest wait a
        // POLL may ask for is bounded by the broker (60 s).
        let answer_limit = timeout + Duration::from_secs(60);
        let conn = rt.block_on(async {
            tokio::time::timeout(timeout, Mux::connect(addr, MAX_POLL_BODY, 1, answer_limit)).await
        });
        let conn = match conn {
            Ok(c) => c?,
            Err(_) => {
                return Err(ClientError::Unexpected(format!(
                    "no connection to {addr} within {timeout:?}"
                )))
            }
        };
        Ok(FramedSession {
            rt,
            conn,
            timeout,
            scratch: Vec::new(),
            last: None,
        })
    }

    /// Sends `scratch` as the body of `op` and returns the answer; an ERROR answer is
    /// [`ClientError::Refused`].
    fn request(&mut self, op: OpCode, wait: Duration) -> Result<ReceivedFrame, ClientError> {
        let limit = wait + self.timeout;
        let (conn, body) = (&self.conn, &self.scratch);
        self.rt.block_on(async {
            match tokio::time::timeout(limit, conn.call(op, 0, body)).await {
                Ok(answer) => Ok(answer?),
                Err(_) => Err(ClientError::Unexpected(format!(
                    "no answer to {op:?} within {limit:?}"
                ))),
            }
        })
    }

    fn expect_ready(&mut self, op: OpCode, what: &str) -> Result<(), ClientError> {
        match self.request(op, Duration::ZERO)? {
            a if a.header.opcode == OpCode::Ready as u8 => Ok(()),
            a => Err(ClientError::Unexpected(format!(
                "opcode {} in answer to {what} (expected READY)",
                a.header.opcode
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
        let answer = self.request(OpCode::Poll, wait)?;
        if answer.header.opcode != OpCode::PollResponse as u8 {
            return Err(ClientError::Unexpected(format!(
                "opcode {} in answer to POLL (expected POLL_RESPONSE)",
                answer.header.opcode
            )));
        }
        let answer = self.last.insert(answer);
        Ok(Polled {
            wire_bytes: (HEADER_LEN + answer.body.len()) as u64,
            body: &answer.body,
        })
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
