//! The HTTP/1.1 side of the HTTP port (curl, Prometheus): requests parsed with `httparse`,
//! answered from the router, with keep-alive (the HTTP/1.1 default; `Connection: close` or
//! HTTP/1.0 without `keep-alive` closes), pipelining, size limits on the head and the body,
//! and timeouts on the shard's timer. A request the connection cannot recover from (malformed,
//! too large, timed out mid-request, a body length that could be read two ways) is answered
//! and the connection closed.
//!
//! Slow clients: a request, once its first byte has arrived, must be whole (head and body)
//! within `--request-timeout`, however its bytes trickle in (a deadline for the request, not
//! for each read), or it is answered 408 and the connection closed. The bytes of a request
//! being read are charged to the shard's partial-input budget ([`InputBudget`]); to read more
//! of a request it has begun a connection must first get room in it, so when slow clients
//! fill the budget the shard stops reading request bodies rather than allocate, until their
//! deadlines drop them. A connection with nothing buffered reads one chunk without asking, so
//! small requests keep being served meanwhile.

use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::rt;
use crate::rt::vectored::write_all_vectored;
use crate::server::budget::{Charge, InputBudget};
use crate::server::conns::ConnGuard;
use crate::shard::Shard;

use super::message::{HttpRequest, HttpResponse};
use super::router;

/// Largest request head (request line and headers).
pub(crate) const MAX_HEAD: usize = 16 << 10;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;
/// How long an idle keep-alive connection may wait for its next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most one read takes from the socket.
const READ_CHUNK: usize = 8 << 10;

/// Why a connection stops.
pub(crate) enum Stop {
    /// The peer closed or the socket failed: nothing to answer.
    Gone,
    /// Answer this, then close.
    Answer(HttpResponse),
}

/// Serves one HTTP/1.1 connection; `buf` holds the bytes already read from it. With the
/// socket's `fd`, multi-part bodies (binary poll responses) are written with vectored I/O.
pub async fn serve<S>(
    shard: Rc<Shard>,
    mut io: S,
    fd: Option<RawFd>,
    mut buf: BytesMut,
    guard: &ConnGuard,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max_body = super::max_body(&shard);
    let mut reader = Reader {
        charge: InputBudget::of_shard(&shard).charge(),
        request_timeout: shard.config.request_timeout,
    };
    reader.charge.set(buf.len() as u64);
    loop {
        // At shutdown a connection waiting for its next request closes; one mid-request is
        // answered first (with `Connection: close`).
        let idle = buf.is_empty();
        let next = futures_lite::future::or(
            async { Some(reader.read_request(&mut io, &mut buf, max_body).await) },
            async {
                if idle {
                    shard.lifecycle.stopped().await;
                    None
                } else {
                    std::future::pending().await
                }
            },
        )
        .await;
        let Some(next) = next else { return };
        guard.touch();
        let (req, keep_alive) = match next {
            Ok(Some(r)) => r,
            Ok(None) | Err(Stop::Gone) => return,
            Err(Stop::Answer(r)) => {
                let _ = write_response(&mut io, fd, r, false).await;
                return;
            }
        };
        let response = router::route(shard.clone(), req).await;
        let keep_alive = keep_alive && !shard.lifecycle.is_stopping();
        if write_response(&mut io, fd, response, keep_alive)
            .await
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

/// Answers a connection over the shard's limit with 503 and closes it.
pub async fn refuse<S: AsyncWrite + Unpin>(mut io: S, max: usize) {
    let r = HttpResponse::error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("too many connections on this shard (--max-connections {max}); retry later"),
    );
    let _ = write_response(&mut io, None, r, false).await;
}

/// Reads requests off one connection, within the request deadline and the shard's budget.
struct Reader {
    /// The bytes of the request being read (and of pipelined ones behind it).
    charge: Charge,
    request_timeout: Duration,
}

impl Reader {
    /// Reads more bytes into `buf`. Between requests (`begun` false: nothing of the next one
    /// here yet) this is the keep-alive wait; inside one it must happen before `deadline`
    /// (started now if not yet), and first takes room in the budget for the read, waiting if
    /// there is none.
    async fn fill<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        buf: &mut BytesMut,
        begun: bool,
        deadline: &mut Option<Instant>,
    ) -> Result<usize, Stop> {
        let start = buf.len();
        let read = async {
            if begun {
                self.charge.grow_to((start + READ_CHUNK) as u64).await;
            }
            buf.resize(start + READ_CHUNK, 0);
            let result = io.read(&mut buf[start..]).await;
            buf.truncate(start + *result.as_ref().unwrap_or(&0));
            result
        };
        let result = if !begun {
            rt::timeout(IDLE_TIMEOUT, read).await
        } else {
            let now = Instant::now();
            let deadline = *deadline.get_or_insert(now + self.request_timeout);
            rt::timeout(deadline.saturating_duration_since(now), read).await
        };
        if result.is_none() {
            // Cancelled: whatever the read had made room for is not data.
            buf.truncate(start);
        }
        self.charge.set(buf.len() as u64);
        match result {
            Some(Ok(n)) => Ok(n),
            Some(Err(_)) => Err(Stop::Gone),
            None if !begun => Err(Stop::Gone),
            None => Err(Stop::Answer(HttpResponse::error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request did not arrive whole within {} (--request-timeout)",
                    humantime::format_duration(self.request_timeout)
                ),
            ))),
        }
    }

    /// The next request and whether the connection stays open after it, or `None` when the
    /// peer closed cleanly between requests.
    async fn read_request<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        buf: &mut BytesMut,
        max_body: usize,
    ) -> Result<Option<(HttpRequest, bool)>, Stop> {
        // The request's deadline starts with its first byte (already here if pipelined).
        let mut deadline = None;
        // The head.
        let Head {
            len: head_len,
            request: mut req,
            version,
            connection,
        } = loop {
            if let Some(head) = parse_head(buf)? {
                break head;
            }
            let begun = !buf.is_empty();
            if self.fill(io, buf, begun, &mut deadline).await? == 0 {
                return if buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Stop::Gone)
                };
            }
        };
        let _ = buf.split_to(head_len);
        // The body.
        let len = body_length(&req.headers).map_err(|e| {
            let status = match e {
                Framing::Chunked => StatusCode::LENGTH_REQUIRED,
                _ => StatusCode::BAD_REQUEST,
            };
            Stop::Answer(HttpResponse::error(status, &e.to_string()))
        })?;
        if len > max_body {
            return Err(Stop::Answer(HttpResponse::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request bodies are limited to {max_body} bytes; this one has {len}"),
            )));
        }
        while buf.len() < len {
            if self.fill(io, buf, true, &mut deadline).await? == 0 {
                return Err(Stop::Gone);
            }
        }
        req.body = buf.split_to(len).freeze();
        // The body is now the handler's; what stays buffered is the next requests'.
        self.charge.set(buf.len() as u64);
        let keep_alive = match connection.as_deref() {
            Some(c) if c.eq_ignore_ascii_case("close") => false,
            Some(c) if c.eq_ignore_ascii_case("keep-alive") => true,
            _ => version >= 1,
        };
        Ok(Some((req, keep_alive)))
    }
}

/// A request head parsed from the start of a connection's buffer.
pub(crate) struct Head {
    /// Bytes of the head (request line, headers and the blank line).
    pub len: usize,
    /// The request, its body still empty.
    pub request: HttpRequest,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The `Connection` header's value.
    pub connection: Option<String>,
}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is incomplete and
/// within [`MAX_HEAD`]; a head that is malformed, has too many headers or passes the limit is
/// answered. Pure (no I/O), so the fuzz target calls it as the connection does.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<Head>, Stop> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            if len > MAX_HEAD {
                return Err(head_too_large());
            }
            let (request, connection) = to_request(&parsed)?;
            Ok(Some(Head {
                len,
                request,
                version: parsed.version.unwrap_or(1),
                connection,
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(head_too_large()),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(Stop::Answer(HttpResponse::error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!("a request may carry at most {MAX_HEADERS} headers"),
        ))),
        Err(e) => Err(Stop::Answer(HttpResponse::error(
            StatusCode::BAD_REQUEST,
            &format!("malformed HTTP/1.1 request: {e}"),
        ))),
    }
}

/// Why a request's body length cannot be trusted. Each is answered and the connection closed:
/// when two parts of a chain could frame the body differently (request smuggling), nothing
/// after it on the connection can be read safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Framing {
    #[error("chunked request bodies are not supported; send Content-Length")]
    Chunked,
    #[error("a request may not carry both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("a request may carry one Content-Length header, this one has {0}")]
    DuplicateLength(usize),
    #[error("Content-Length is not a decimal number")]
    BadLength,
}

/// The body's length from the head (RFC 9112 §6.3): none without `Content-Length`; one plain
/// decimal `Content-Length` (optional spaces or tabs around it); `Transfer-Encoding` is not
/// supported (411), and beside `Content-Length` it is refused (400), as is any repeated
/// `Content-Length`, even with equal values. A number too large for `usize` becomes
/// `usize::MAX`, which the body limit then refuses.
pub(crate) fn body_length(headers: &HeaderMap) -> Result<usize, Framing> {
    let lengths = headers.get_all(http::header::CONTENT_LENGTH);
    let n = lengths.iter().count();
    let te = headers.contains_key(http::header::TRANSFER_ENCODING);
    match (n, te) {
        (0, true) => return Err(Framing::Chunked),
        (_, true) => return Err(Framing::LengthAndTransferEncoding),
        (0, false) => return Ok(0),
        (1, false) => {}
        (n, false) => return Err(Framing::DuplicateLength(n)),
    }
    let digits = lengths
        .iter()
        .next()
        .map(|v| v.as_bytes().trim_ascii_start().trim_ascii_end())
        .filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
        .ok_or(Framing::BadLength)?;
    Ok(digits
        .iter()
        .try_fold(0usize, |n, d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .unwrap_or(usize::MAX))
}

fn head_too_large() -> Stop {
    Stop::Answer(HttpResponse::error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        &format!("the request line and headers are limited to {MAX_HEAD} bytes"),
    ))
}

/// Converts a parsed head, returning the `Connection` header's value beside it.
fn to_request(parsed: &httparse::Request) -> Result<(HttpRequest, Option<String>), Stop> {
    let bad = |m: &str| Stop::Answer(HttpResponse::error(StatusCode::BAD_REQUEST, m));
    let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| bad("invalid method"))?;
    let target = parsed.path.unwrap_or("");
    if !target.starts_with('/') {
        return Err(bad("the request target must be a path starting with '/'"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| bad(&format!("invalid header name '{}'", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| bad(&format!("invalid value for header '{}'", h.name)))?;
        headers.append(name, value);
    }
    let connection = headers
        .get(http::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((
        HttpRequest {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body: Default::default(),
            params: Vec::new(),
        },
        connection,
    ))
}

/// Writes a response. A multi-part body goes out with the head in vectored writes when the
/// socket's fd is known (no copy of the chunk payloads); otherwise slice by slice.
async fn write_response<S: AsyncWrite + Unpin>(
    io: &mut S,
    fd: Option<RawFd>,
    r: HttpResponse,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\n",
        r.status.as_u16(),
        r.status.canonical_reason().unwrap_or(""),
        r.content_type,
    );
    // A 204 has no body and may not carry Content-Length (RFC 9110 §8.6).
    if r.status != StatusCode::NO_CONTENT {
        head.push_str(&format!("content-length: {}\r\n", r.body.len()));
    }
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !keep_alive {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut parts = Vec::with_capacity(8);
    parts.push(Bytes::from(head));
    parts.extend(r.body.into_parts());
    match fd {
        Some(fd) if parts.len() > 2 => write_all_vectored(fd, io, &parts).await?,
        _ => {
            for p in &parts {
                io.write_all(p).await?;
            }
        }
    }
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in list {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        h
    }

    #[test]
    fn body_length_from_the_head() {
        let len = |list: &[(&str, &str)]| body_length(&headers(list));
        assert_eq!(len(&[]), Ok(0));
        assert_eq!(len(&[("content-length", "12")]), Ok(12));
        assert_eq!(len(&[("Content-Length", " 7\t")]), Ok(7));
        assert_eq!(len(&[("content-length", "0")]), Ok(0));
        assert_eq!(
            len(&[("content-length", "99999999999999999999999999")]),
            Ok(usize::MAX)
        );
        for bad in ["", "+5", "-1", "5 5", "5,5", "0x10", "1e3", "٣"] {
            assert_eq!(
                len(&[("content-length", bad)]),
                Err(Framing::BadLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            len(&[("content-length", "5"), ("content-length", "6")]),
            Err(Framing::DuplicateLength(2))
        );
        assert_eq!(
            len(&[("content-length", "5"), ("Content-Length", "5")]),
            Err(Framing::DuplicateLength(2))
        );
        assert_eq!(
            len(&[("transfer-encoding", "chunked")]),
            Err(Framing::Chunked)
        );
        assert_eq!(
            len(&[("content-length", "5"), ("transfer-encoding", "chunked")]),
            Err(Framing::LengthAndTransferEncoding)
        );
        assert_eq!(
            len(&[("transfer-encoding", "identity"), ("content-length", "5")]),
            Err(Framing::LengthAndTransferEncoding)
        );
    }
}
