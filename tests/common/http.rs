//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream` for the REST tests: one
//! keep-alive connection, Content-Length bodies (the broker never sends chunked ones), and
//! the PolarStreams consumer and producer calls on top.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::consumer::{decode_items, Item};

/// A response: status, lower-cased headers, body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct HttpClient {
    pub stream: TcpStream,
    pub addr: SocketAddr,
}

impl HttpClient {
    pub fn connect(addr: SocketAddr) -> HttpClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        HttpClient { stream, addr }
    }

    /// Sends a request (adding Host and, with a body, Content-Length) and reads the answer.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {}\r\n", self.addr);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        self.stream.write_all(&raw).expect("send");
        read_response(&mut self.stream).expect("a response")
    }

    /// `POST /v1/topic/{topic}/messages` with a content type and an optional key.
    pub fn produce(&mut self, topic: &str, key: Option<&str>, ct: &str, body: &[u8]) -> Response {
        let target = match key {
            Some(k) => format!("/v1/topic/{topic}/messages?partitionKey={k}"),
            None => format!("/v1/topic/{topic}/messages"),
        };
        self.request("POST", &target, &[("content-type", ct)], body)
    }

    pub fn register(&mut self, id: &str, group: &str, topics: &[&str], policy: &str) -> Response {
        let mut target =
            format!("/v1/consumer/register?consumerId={id}&group={group}&onNewGroup={policy}");
        for t in topics {
            target.push_str(&format!("&topic={t}"));
        }
        self.request("PUT", &target, &[], b"")
    }

    pub fn poll_raw(&mut self, id: &str, wait_ms: Option<u32>, accept: Option<&str>) -> Response {
        let target = match wait_ms {
            Some(ms) => format!("/v1/consumer/poll?consumerId={id}&maxWaitMs={ms}"),
            None => format!("/v1/consumer/poll?consumerId={id}"),
        };
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        self.request("POST", &target, &headers, b"")
    }

    /// A binary poll, decoded; 204 is no items.
    pub fn poll(&mut self, id: &str, wait_ms: Option<u32>) -> Vec<Item> {
        let r = self.poll_raw(id, wait_ms, None);
        match r.status {
            204 => Vec::new(),
            200 => {
                assert_eq!(
                    r.header("content-type"),
                    Some("application/vnd.polar.consumermessage")
                );
                decode_items(&r.body)
            }
            s => panic!("poll answered {s}: {}", r.text()),
        }
    }

    /// Polls until two polls in a row bring nothing.
    pub fn drain(&mut self, id: &str) -> Vec<Item> {
        let mut all = Vec::new();
        let mut empty = 0;
        while empty < 2 {
            let items = self.poll(id, None);
            if items.is_empty() {
                empty += 1;
            } else {
                empty = 0;
                all.extend(items);
            }
        }
        all
    }

    pub fn commit(&mut self, id: &str) -> Response {
        self.request(
            "POST",
            &format!("/v1/consumer/commit?consumerId={id}"),
            &[],
            b"",
        )
    }

    pub fn goodbye(&mut self, id: &str) -> Response {
        self.request(
            "POST",
            &format!("/v1/consumer/goodbye?consumerId={id}"),
            &[],
            b"",
        )
    }
}

/// Reads one response; `None` when the connection closed before it.
pub fn read_response(s: &mut TcpStream) -> Option<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? != 1 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line[9..12].parse().expect("a status code");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("a header line");
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().expect("a length"))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(Response {
        status,
        headers,
        body,
    })
}

/// A body as the tests write it: `tag|key|seq`, bare (framed) or as a JSON string (REST).
pub fn plain(body: &[u8]) -> String {
    let s = String::from_utf8(body.to_vec()).expect("UTF-8 body");
    match serde_json::from_str::<String>(&s) {
        Ok(inner) => inner,
        Err(_) => s,
    }
}
