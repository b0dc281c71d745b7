//! One HTTP/1.1 exchange with the broker's HTTP port, for the admin API: a request written by
//! hand, the response head parsed with `httparse`, the body read by its `Content-Length`.
//!
//! A fresh connection per exchange (`Connection: close`): admin calls are rare, and a
//! connection never outlives the call, so there is no idle keep-alive to lose. Sizes are
//! bounded so a wrong peer cannot make the client buffer without end.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ClientError;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 << 10;
/// Largest response body accepted (a description of a topic with thousands of partitions is
/// well under this).
const MAX_BODY: usize = 16 << 20;
/// Headers a response may carry.
const MAX_HEADERS: usize = 32;

/// A response: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `method path` with `body` (as JSON when not empty) to `addr` and reads the answer.
pub async fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<HttpAnswer, ClientError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| ClientError::Connect {
            addr: addr.to_string(),
            source: e.into(),
        })?;
    let _ = stream.set_nodelay(true);
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Accept: application/json\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    if !body.is_empty() {
        request.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    let lost = |e: std::io::Error| ClientError::ConnectionLost(e.to_string());
    stream.write_all(&request).await.map_err(lost)?;
    read_answer(&mut stream).await
}

/// Reads one response: the head until it parses, then exactly `Content-Length` body bytes.
async fn read_answer<R: AsyncReadExt + Unpin>(read: &mut R) -> Result<HttpAnswer, ClientError> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if let Some((status, length, head)) = parse_head(&buf)? {
            if length > MAX_BODY {
                return Err(bad(format!("a body of {length} bytes is over the limit")));
            }
            let mut body = buf.split_off(head);
            body.truncate(length);
            while body.len() < length {
                let mut chunk = vec![0; (length - body.len()).min(64 << 10)];
                let n = read.read(&mut chunk).await.map_err(lost)?;
                if n == 0 {
                    return Err(ClientError::ConnectionLost(
                        "closed in the middle of the response body".into(),
                    ));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            return Ok(HttpAnswer { status, body });
        }
        if buf.len() >= MAX_HEAD {
            return Err(bad("the response head is too long".into()));
        }
        let mut chunk = [0u8; 4096];
        let n = read.read(&mut chunk).await.map_err(lost)?;
        if n == 0 {
            return Err(ClientError::ConnectionLost(
                "closed before a complete response head".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn lost(e: std::io::Error) -> ClientError {
    ClientError::ConnectionLost(e.to_string())
}

fn bad(why: String) -> ClientError {
    ClientError::BadResponse(why)
}

/// The status, body length and head length of a complete head; `None` while incomplete.
/// Every answer of the broker has a `Content-Length`; a chunked one is refused.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize, usize)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(format!("not an HTTP response: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    let mut length = None;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| bad("a malformed Content-Length".into()))?;
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("a chunked response (expected a Content-Length)".into()));
        }
    }
    // 204 and 304 have no body by definition.
    let length = match (length, status) {
        (Some(n), _) => n,
        (None, 204 | 304) => 0,
        (None, _) => return Err(bad("a response without Content-Length".into())),
    };
    Ok(Some((status, length, head)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer_to(bytes: &[u8]) -> Result<HttpAnswer, ClientError> {
        let mut r = bytes;
        read_answer(&mut r).await
    }

    #[tokio::test]
    async fn reads_the_status_and_exactly_the_body() {
        let a = answer_to(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}trailing")
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.body, b"{}");
        let a = answer_to(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
        assert_eq!((a.status, a.body.len()), (204, 0));
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_frame() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\n\r\n{}"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            let e = answer_to(bytes).await.unwrap_err();
            assert!(matches!(e, ClientError::BadResponse(_)), "{e:?}");
        }
        let e = answer_to(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}")
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::ConnectionLost(_)), "{e:?}");
        let e = answer_to(b"HTTP/1.1 200 O").await.unwrap_err();
        assert!(matches!(e, ClientError::ConnectionLost(_)), "{e:?}");
        let huge = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let e = answer_to(huge.as_bytes()).await.unwrap_err();
        assert!(matches!(e, ClientError::BadResponse(_)), "{e:?}");
    }
}
