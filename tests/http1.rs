//! HTTP/1.1 on the HTTP port, with a plain socket: `GET /status`, keep-alive, and every bad
//! request answered with a clear 4xx without taking the broker down.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Broker;

fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(b.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response (head and Content-Length body): (status, head, body).
fn read_response(s: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).expect("read head"),
            1,
            "connection closed"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8(body).unwrap())
}

fn request(b: &Broker, raw: &[u8]) -> (u16, String, String) {
    let mut s = connect(b);
    s.write_all(raw).unwrap();
    read_response(&mut s)
}

#[test]
fn status_and_keep_alive() {
    let broker = Broker::start(2);
    let mut s = connect(&broker);
    for _ in 0..3 {
        s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (status, head, body) = read_response(&mut s);
        assert_eq!(status, 200, "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
        assert_eq!(body, r#"{"status":"ok","shards":2}"#);
    }
    // Pipelined requests, the last one closing.
    s.write_all(b"GET /status HTTP/1.1\r\n\r\nGET /status HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 200);
    assert!(head.contains("connection: close"));
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "closed after Connection: close"
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let broker = Broker::start(1);
    let (status, _, body) = request(&broker, b"GET /nope HTTP/1.1\r\n\r\n");
    assert_eq!(status, 404);
    assert!(body.contains("/nope"), "{body}");

    let (status, head, body) = request(
        &broker,
        b"POST /status HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert!(head.to_ascii_lowercase().contains("allow: get"), "{head}");
    assert!(body.contains("POST"), "{body}");

    let (status, _, body) = request(&broker, b"this is not http\r\n\r\n");
    assert_eq!(status, 400);
    assert!(body.to_lowercase().contains("malformed"), "{body}");

    let (status, _, _) = request(
        &broker,
        b"GET /status HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
    );
    assert_eq!(status, 400);

    let (status, _, body) = request(
        &broker,
        b"POST /status HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
    );
    assert_eq!(status, 413);
    assert!(body.contains("limited"), "{body}");

    let mut huge = b"GET /status HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(request(&broker, &huge).0, 431);

    let mut many = b"GET /status HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(request(&broker, &many).0, 431);

    // A client that connects and goes away mid-request does no harm.
    let mut s = connect(&broker);
    s.write_all(b"GET /sta").unwrap();
    drop(s);

    // Still serving.
    assert_eq!(request(&broker, b"GET /status HTTP/1.1\r\n\r\n").0, 200);
}

/// Request smuggling defence: a head whose body length two parties could read differently is
/// answered 400 and the connection closed, so the bytes after it are never read as a request.
#[test]
fn ambiguous_body_lengths_are_refused_and_the_connection_closed() {
    let broker = Broker::start(1);
    let smuggled = "GET /status HTTP/1.1\r\n\r\n";
    let cases = [
        (
            "Content-Length: 0\r\nContent-Length: 24\r\n",
            "one Content-Length",
        ),
        (
            "Content-Length: 24\r\nContent-Length: 24\r\n",
            "one Content-Length",
        ),
        ("Content-Length: 24, 24\r\n", "not a decimal"),
        ("Content-Length: +24\r\n", "not a decimal"),
        (
            "Content-Length: 24\r\nTransfer-Encoding: chunked\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 24\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
    ];
    for (headers, says) in cases {
        let mut s = connect(&broker);
        let raw = format!("POST /status HTTP/1.1\r\nHost: x\r\n{headers}\r\n{smuggled}");
        s.write_all(raw.as_bytes()).unwrap();
        let (status, head, body) = read_response(&mut s);
        assert_eq!(status, 400, "{headers:?}: {head}{body}");
        assert!(body.contains(says), "{headers:?}: {body}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: text/plain"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        let mut rest = Vec::new();
        assert_eq!(
            s.read_to_end(&mut rest).unwrap(),
            0,
            "{headers:?}: closed, the smuggled request unanswered: {}",
            String::from_utf8_lossy(&rest)
        );
    }
    // Transfer-Encoding alone: chunked bodies are not supported, as before.
    let (status, _, body) = request(
        &broker,
        b"POST /status HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(status, 411);
    assert!(body.contains("Content-Length"), "{body}");
    // A plain Content-Length, with spaces around it, still frames the body.
    let (status, _, _) = request(
        &broker,
        b"POST /status HTTP/1.1\r\nContent-Length:  2 \r\n\r\nhi",
    );
    assert_eq!(status, 405);
}
