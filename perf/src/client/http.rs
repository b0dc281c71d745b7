//! The HTTP consumer transport (`consume --transport http`): PolarStreams' consumer flow on the
//! broker's HTTP port, over one HTTP/1.1 keep-alive connection per consumer.
//!
//! - `PUT /v1/consumer/register?consumerId=…&group=…&topic=…&onNewGroup=startFromEarliest|startFromLatest`
//! - `POST /v1/consumer/poll?consumerId=…[&maxWaitMs=…]`: 200 with the binary poll response
//!   (`wire::poll`, as the framed POLL_RESPONSE body), 204 when there is nothing to read
//! - `POST /v1/consumer/commit?consumerId=…`, `POST /v1/consumer/goodbye?consumerId=…`
//!
//! The client is a small blocking one on `std::net::TcpStream`: requests without a body, answers
//! read into one reused buffer (`Content-Length` or chunked), the connection reopened when the
//! broker says `Connection: close`. A non-2xx answer is [`ClientError::Http`].

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::error::ClientError;

/// The largest answer body accepted.
const MAX_BODY: usize = 256 << 20;
/// The largest status line + headers accepted.
const MAX_HEAD: usize = 64 << 10;

/// One HTTP/1.1 keep-alive connection.
pub struct HttpClient {
    addr: String,
    stream: Option<TcpStream>,
    /// Bytes read but not yet consumed (the start of the next answer, or of this one).
    buf: Vec<u8>,
    start: usize,
    /// The last answer's body.
    body: Vec<u8>,
    request: Vec<u8>,
    timeout: Duration,
}

/// A parsed answer (the body is in [`HttpClient::body`]).
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    /// Bytes received for the answer (head and body).
    pub wire_bytes: u64,
}

fn io_err(what: &str, source: io::Error) -> ClientError {
    ClientError::Io {
        what: what.into(),
        source,
    }
}

fn bad(what: impl Into<String>) -> ClientError {
    ClientError::Unexpected(what.into())
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn encode_query(out: &mut String, v: &str) {
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

impl HttpClient {
    pub fn connect(addr: &str, timeout: Duration) -> Result<HttpClient, ClientError> {
        let mut c = HttpClient {
            addr: addr.to_string(),
            stream: None,
            buf: Vec::with_capacity(64 << 10),
            start: 0,
            body: Vec::new(),
            request: Vec::with_capacity(512),
            timeout,
        };
        c.reconnect()?;
        Ok(c)
    }

    fn reconnect(&mut self) -> Result<(), ClientError> {
        self.stream = None;
        self.buf.clear();
        self.start = 0;
        let addrs: Vec<_> = self
            .addr
            .to_socket_addrs()
            .map_err(|e| io_err(&format!("cannot resolve {}", self.addr), e))?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    self.stream = Some(s);
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(io_err(&format!("cannot connect to {}", self.addr), last))
    }

    /// The body of the last answer.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Sends `method path` without a body and reads the answer; `wait` is how long the broker
    /// may hold the request (a long poll) on top of the timeout.
    pub fn request(
        &mut self,
        method: &str,
        path_and_query: &str,
        wait: Duration,
    ) -> Result<Answer, ClientError> {
        if self.stream.is_none() {
            self.reconnect()?;
        }
        self.request.clear();
        let _ = write!(
            RequestWriter(&mut self.request),
            "{method} {path_and_query} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nAccept: application/octet-stream\r\n\r\n",
            self.addr
        );
        let deadline = Instant::now() + wait + self.timeout;
        let result = self.exchange(deadline);
        if result.is_err() {
            // The connection's state is unknown: start over on the next request.
            self.stream = None;
        }
        result
    }

    fn exchange(&mut self, deadline: Instant) -> Result<Answer, ClientError> {
        let stream = self.stream.as_mut().expect("connected");
        stream
            .write_all(&self.request)
            .map_err(|e| io_err("sending an HTTP request failed", e))?;
        // The head.
        let (status, head_len, length, chunked, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf[self.start..]) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let (mut length, mut chunked, mut close) = (None, false, false);
                    for h in resp.headers.iter() {
                        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = Some(v.parse::<usize>().map_err(|_| {
                                bad(format!("bad Content-Length {v:?} in an HTTP answer"))
                            })?);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = v.to_ascii_lowercase().contains("chunked");
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = v.eq_ignore_ascii_case("close");
                        }
                    }
                    if resp.version == Some(0) {
                        close = true;
                    }
                    break (status, n, length, chunked, close);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() - self.start > MAX_HEAD {
                        return Err(bad("an HTTP answer's head is over 64 KiB"));
                    }
                    self.fill(deadline)?;
                }
                Err(e) => return Err(bad(format!("malformed HTTP answer: {e}"))),
            }
        };
        let head_start = self.start;
        self.start += head_len;
        self.body.clear();
        let no_body = status == 204 || status == 304 || (100..200).contains(&status);
        if no_body {
        } else if chunked {
            self.read_chunked(deadline)?;
        } else if let Some(len) = length {
            if len > MAX_BODY {
                return Err(bad(format!("an HTTP answer of {len} bytes is too large")));
            }
            while self.buf.len() - self.start < len {
                self.fill(deadline)?;
            }
            self.body
                .extend_from_slice(&self.buf[self.start..self.start + len]);
            self.start += len;
        } else {
            // Read until the broker closes the connection.
            loop {
                match self.fill(deadline) {
                    Ok(()) => {}
                    Err(ClientError::Closed { .. }) => break,
                    Err(e) => return Err(e),
                }
                if self.buf.len() - self.start > MAX_BODY {
                    return Err(bad("an HTTP answer is too large"));
                }
            }
            self.body.extend_from_slice(&self.buf[self.start..]);
            self.start = self.buf.len();
            self.stream = None;
        }
        let wire_bytes = (self.start - head_start) as u64;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        if close {
            self.stream = None;
        }
        Ok(Answer { status, wire_bytes })
    }

    fn read_chunked(&mut self, deadline: Instant) -> Result<(), ClientError> {
        loop {
            let line_end = loop {
                if let Some(p) = find_crlf(&self.buf[self.start..]) {
                    break self.start + p;
                }
                self.fill(deadline)?;
            };
            let line = std::str::from_utf8(&self.buf[self.start..line_end]).unwrap_or("");
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?} in an HTTP answer")))?;
            self.start = line_end + 2;
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                loop {
                    let end = loop {
                        if let Some(p) = find_crlf(&self.buf[self.start..]) {
                            break self.start + p;
                        }
                        self.fill(deadline)?;
                    };
                    let empty = end == self.start;
                    self.start = end + 2;
                    if empty {
                        return Ok(());
                    }
                }
            }
            if self.body.len() + size > MAX_BODY {
                return Err(bad("an HTTP answer is too large"));
            }
            while self.buf.len() - self.start < size + 2 {
                self.fill(deadline)?;
            }
            self.body
                .extend_from_slice(&self.buf[self.start..self.start + size]);
            self.start += size + 2;
        }
    }

    /// Reads more bytes into `buf` (compacting it first), by `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > (1 << 20) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let stream = self.stream.as_mut().expect("connected");
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io_err(
                "no HTTP answer in time",
                io::Error::from(io::ErrorKind::TimedOut),
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| io_err("setting a read timeout failed", e))?;
        let len = self.buf.len();
        let want = (64 << 10).max(self.buf.capacity() - len);
        self.buf.resize(len + want, 0);
        let r = stream.read(&mut self.buf[len..]);
        match r {
            Ok(0) => {
                self.buf.truncate(len);
                Err(ClientError::Closed { in_flight: 1 })
            }
            Ok(n) => {
                self.buf.truncate(len + n);
                Ok(())
            }
            Err(e) => {
                self.buf.truncate(len);
                let what = if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    "no HTTP answer in time"
                } else {
                    "reading an HTTP answer failed"
                };
                Err(io_err(what, e))
            }
        }
    }
}

struct RequestWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for RequestWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::session::{ConsumerSession, HttpSession};
    use shardlog_wire::consumer::StartPolicy;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A one-connection server: answers each request with the next canned answer and reports
    /// the request lines it saw.
    fn server(answers: Vec<Vec<u8>>) -> (String, mpsc::Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = io::BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            for a in answers {
                let mut first = String::new();
                if r.read_line(&mut first).unwrap() == 0 {
                    return;
                }
                loop {
                    let mut l = String::new();
                    r.read_line(&mut l).unwrap();
                    if l == "\r\n" {
                        break;
                    }
                }
                tx.send(first.trim_end().to_string()).unwrap();
                // Split the answer in two writes, to exercise partial reads.
                let mid = a.len() / 2;
                w.write_all(&a[..mid]).unwrap();
                w.flush().unwrap();
                std::thread::sleep(Duration::from_millis(5));
                w.write_all(&a[mid..]).unwrap();
            }
        });
        (addr, rx)
    }

    #[test]
    fn the_consumer_flow_over_keep_alive() {
        let answers = vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec(),
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 409 Conflict\r\nContent-Length: 14\r\n\r\nnot registered".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ];
        let (addr, seen) = server(answers);
        let mut s = HttpSession::connect(&addr, Duration::from_secs(5)).unwrap();
        s.register(
            "c 1",
            "g",
            &["t1".into(), "t2".into()],
            StartPolicy::Earliest,
        )
        .unwrap();
        assert_eq!(
            seen.recv().unwrap(),
            "PUT /v1/consumer/register?consumerId=c%201&group=g&topic=t1&topic=t2&onNewGroup=startFromEarliest HTTP/1.1"
        );
        let p = s.poll("c 1", Some(250)).unwrap();
        assert_eq!(p.body, b"hello");
        assert_eq!(
            seen.recv().unwrap(),
            "POST /v1/consumer/poll?consumerId=c%201&maxWaitMs=250 HTTP/1.1"
        );
        assert!(s.poll("c 1", None).unwrap().body.is_empty());
        assert_eq!(s.poll("c 1", None).unwrap().body, b"abcde");
        match s.poll("c 1", None) {
            Err(ClientError::Http { status, message }) => {
                assert_eq!((status, message.as_str()), (409, "not registered"))
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("409 is an error"),
        }
        s.goodbye("c 1").unwrap();
        let lines: Vec<String> = seen.try_iter().collect();
        assert_eq!(
            lines.last().unwrap(),
            "POST /v1/consumer/goodbye?consumerId=c%201 HTTP/1.1"
        );
    }
}
