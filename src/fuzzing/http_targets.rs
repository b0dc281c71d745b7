//! Targets for the HTTP port: the HTTP/1.1 request head (and what is read from it: the body's
//! framing, the query string, a REST produce body's messages), the REST JSON bodies, and the
//! gRPC length-prefixed message reader over DATA frames split anywhere.
//!
//! Chunked request bodies are refused from the head (411, see `h1::body_length`), so there is
//! no chunked decoder to fuzz: the head target covers that refusal.

use bytes::Bytes;
use prost::Message;

use crate::proto::health::HealthCheckRequest;
use crate::proto::log::{ConsumeRequest, ProduceRequest};
use crate::proto::reflection_v1::ServerReflectionRequest;
use crate::server::http::h1::{body_length, parse_head, MAX_HEAD};
use crate::server::http::rest::commit_json;
use crate::server::http::rest::produce::split_messages;
use crate::server::http::rest::query::Query;
use crate::server::http::rest::topics::parse_create_body;
use crate::wire::grpc::{self, MessageDecoder, PREFIX_LEN};

use super::split_control;

/// An HTTP/1.1 request head, parsed as a connection parses it; the body's length, the query
/// string and (for a body after the head) a REST produce body's messages are read from it.
pub fn http1_head(data: &[u8]) {
    let Ok(Some(head)) = parse_head(data) else {
        return;
    };
    assert!(head.len <= data.len() && head.len <= MAX_HEAD);
    assert!(head.request.path.starts_with('/'));
    if let Ok(len) = body_length(&head.request.headers) {
        let body = &data[head.len..];
        let body = &body[..len.min(body.len())];
        if let Ok(messages) = split_messages(&head.request.headers, body) {
            assert!(!messages.is_empty());
            assert!(messages.iter().map(|m| m.len()).sum::<usize>() <= body.len());
        }
    }
    if let Ok(q) = Query::parse(&head.request.query) {
        let _ = q.get("topic");
        let _ = q.number::<i64>("offset");
    }
}

/// The JSON body of `POST /v1/consumer/commit` (explicit positions).
pub fn rest_commit(data: &[u8]) {
    if let Ok(Some(positions)) = commit_json::parse(data) {
        assert!(positions.len() <= commit_json::MAX_POSITIONS);
        assert!(positions.iter().all(|p| p.offset >= 0));
    }
}

/// The JSON body of `POST /v1/topics/{name}`.
pub fn rest_topic_create(data: &[u8]) {
    let _ = parse_create_body(data);
}

/// The gRPC message reader: the first input byte seeds how the rest is cut into DATA frames;
/// the messages the reader yields must be exactly those a parse of the whole stream finds,
/// and each is decoded as every service's request type.
pub fn grpc_messages(data: &[u8]) {
    const MAX_LEN: u32 = 4 << 20;
    let (seed, stream) = split_control(data);
    let _ = grpc::parse_timeout(&stream[..stream.len().min(10)]);
    // The messages of the whole stream, parsed in one piece.
    let mut whole = Vec::new();
    let mut rest = stream;
    let whole_error = loop {
        match grpc::parse(rest, MAX_LEN) {
            Ok(Some((m, used))) => {
                assert!(used == PREFIX_LEN + m.body.len() && used <= rest.len());
                whole.push((m.compressed, m.body.to_vec()));
                rest = &rest[used..];
            }
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    // The same stream through the reader, in frames of pseudo-random sizes.
    let mut decoder = MessageDecoder::new(MAX_LEN);
    let mut got = Vec::new();
    let mut pos = 0;
    let mut state = u32::from(seed) | 1;
    let mut failed = false;
    'frames: while pos < stream.len() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = 1 + (state >> 16) as usize % 64;
        let end = (pos + size).min(stream.len());
        decoder.push(Bytes::copy_from_slice(&stream[pos..end]));
        pos = end;
        loop {
            match decoder.next_message() {
                Ok(Some(m)) => got.push((m.compressed, m.body.to_vec())),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'frames;
                }
            }
        }
    }
    assert_eq!(got, whole, "the reader and the one-piece parse disagree");
    assert_eq!(failed, whole_error);
    if !failed {
        assert_eq!(decoder.pending(), rest.len());
    }
    for (_, body) in &whole {
        let b = Bytes::copy_from_slice(body);
        let _ = ProduceRequest::decode(b.clone());
        let _ = ConsumeRequest::decode(b.clone());
        let _ = HealthCheckRequest::decode(b.clone());
        let _ = ServerReflectionRequest::decode(b);
    }
}
