//! PolarStreams' consumer endpoints over HTTP (both versions), on top of
//! [`crate::consumer::api`] — the same operations the framed port serves:
//!
//! - `PUT /v1/consumer/register?consumerId=&group=&topic=…&onNewGroup=` → 200 `OK`
//!   (POST is accepted too, as PolarStreams does for old clients);
//! - `POST /v1/consumer/poll?consumerId=[&maxWaitMs=]` → 200 with the binary poll response
//!   (`application/vnd.polar.consumermessage`) or, with `Accept: application/json`, a JSON
//!   array; 204 when there is nothing to read;
//! - `POST /v1/consumer/commit?consumerId=` → 204;
//! - `POST /v1/consumer/goodbye?consumerId=` → 200 `OK`.
//!
//! An unregistered consumer is 409 everywhere but register; a missing or malformed parameter
//! is 400 naming it.

use std::rc::Rc;
use std::time::Duration;

use http::StatusCode;

use crate::consumer::api;
use crate::consumer::poll::PollResponse;
use crate::shard::Shard;
use crate::storage::chunk::{decode_payload, max_decoded_len};
use crate::storage::ChunkError;
use crate::wire::consumer::{
    first_occurrences, validate_consumer_id, validate_group, RegisterBody, StartPolicy,
};
use crate::wire::poll::parse_poll_response;
use crate::wire::record::RecordIter;
use crate::wire::startup::validate_topic;

use super::super::errors;
use super::super::message::{Body, HttpRequest, HttpResponse};
use super::query::{bad, Query};

/// Content type of the binary poll response (PolarStreams' name for it).
pub const POLL_CONTENT_TYPE: &str = "application/vnd.polar.consumermessage";
/// The group of a consumer that names none (PolarStreams' default).
pub const DEFAULT_GROUP: &str = "default";
/// Longest consumer id (the framed REGISTER carries it with a u8 length).
const MAX_CONSUMER_ID: usize = 255;

/// `PUT /v1/consumer/register`.
pub async fn register(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let body = match register_body(&req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match api::register(&shard, body).await {
        Ok(()) => HttpResponse::text(StatusCode::OK, "OK"),
        Err(e) => errors::response(&e),
    }
}

/// The register parameters, validated like the framed REGISTER body.
fn register_body(req: &HttpRequest) -> Result<RegisterBody, HttpResponse> {
    let q = Query::parse(&req.query)?;
    let consumer_id = consumer_id(&q)?;
    let group = match q.get("group") {
        None | Some("") => DEFAULT_GROUP.to_string(),
        Some(g) => {
            validate_group(g).map_err(|e| bad(&format!("query parameter 'group': {e}")))?;
            g.to_string()
        }
    };
    let mut topics: Vec<String> = Vec::new();
    for t in q.all("topic") {
        validate_topic(t).map_err(|e| bad(&format!("query parameter 'topic': {e}")))?;
        topics.push(t.to_string());
    }
    let topics = first_occurrences(topics);
    if topics.is_empty() {
        return Err(bad(
            "missing query parameter 'topic' (repeat it to subscribe to several topics)",
        ));
    }
    let policy = match q.get("onNewGroup") {
        None | Some("") | Some("startFromEarliest") => StartPolicy::Earliest,
        Some("startFromLatest") => StartPolicy::Latest,
        Some(other) => {
            return Err(bad(&format!(
                "query parameter 'onNewGroup' must be startFromEarliest or startFromLatest, \
                 not '{other}'"
            )))
        }
    };
    Ok(RegisterBody {
        policy,
        consumer_id,
        group,
        topics,
    })
}

/// `POST /v1/consumer/poll`.
pub async fn poll(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let (id, wait) = match poll_params(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let json = wants_json(&req.headers);
    match api::poll(&shard, &id, wait).await {
        Ok(resp) if resp.items == 0 => {
            let mut r = HttpResponse::empty(StatusCode::NO_CONTENT);
            r.headers.push(("cache-control", "no-store".into()));
            r.headers.push(("retry-after", "1".into()));
            r
        }
        Ok(resp) if json => json_response(&resp, shard.config.max_frame_bytes()),
        Ok(resp) => HttpResponse {
            status: StatusCode::OK,
            content_type: POLL_CONTENT_TYPE,
            headers: Vec::new(),
            body: Body::Parts {
                len: resp.len,
                parts: resp.parts,
            },
        },
        Err(e) => errors::response(&e),
    }
}

fn poll_params(req: &HttpRequest) -> Result<(String, Option<Duration>), HttpResponse> {
    let q = Query::parse(&req.query)?;
    let id = consumer_id(&q)?;
    let wait = q
        .number::<u32>("maxWaitMs")?
        .map(|ms| Duration::from_millis(ms as u64));
    Ok((id, wait))
}

/// `POST /v1/consumer/commit`: 204 once the last poll's positions are durable.
pub async fn commit(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let id = match Query::parse(&req.query).and_then(|q| consumer_id(&q)) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match api::commit(&shard, &id).await {
        Ok(()) => HttpResponse::empty(StatusCode::NO_CONTENT),
        Err(e) => errors::response(&e),
    }
}

/// `POST /v1/consumer/goodbye`: commits, leaves the group, 200 `OK`.
pub async fn goodbye(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let id = match Query::parse(&req.query).and_then(|q| consumer_id(&q)) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match api::goodbye(&shard, &id).await {
        Ok(()) => HttpResponse::text(StatusCode::OK, "OK"),
        Err(e) => errors::response(&e),
    }
}

/// `consumerId` (or PolarStreams' older `consumer_id`), validated.
fn consumer_id(q: &Query) -> Result<String, HttpResponse> {
    let id = match q.get("consumerId").filter(|v| !v.is_empty()) {
        Some(id) => id,
        None => match q.get("consumer_id").filter(|v| !v.is_empty()) {
            Some(id) => id,
            None => return Err(bad("missing query parameter 'consumerId'")),
        },
    };
    validate_consumer_id(id).map_err(|e| bad(&format!("query parameter 'consumerId': {e}")))?;
    if id.len() > MAX_CONSUMER_ID {
        return Err(bad(&format!(
            "query parameter 'consumerId' is {} bytes long; the limit is {MAX_CONSUMER_ID}",
            id.len()
        )));
    }
    Ok(id.to_string())
}

/// Whether the client asked for JSON: `Accept` lists `application/json` before (or without)
/// the binary type.
fn wants_json(headers: &http::HeaderMap) -> bool {
    for v in headers.get_all(http::header::ACCEPT) {
        let Ok(v) = v.to_str() else { continue };
        for range in v.split(',') {
            let media = range.split(';').next().unwrap_or("").trim();
            if media.eq_ignore_ascii_case("application/json") {
                return true;
            }
            if media.eq_ignore_ascii_case(POLL_CONTENT_TYPE) {
                return false;
            }
        }
    }
    false
}

/// PolarStreams' JSON poll response: one object per item, its records' bodies in `values`
/// (64-bit numbers as strings, as PolarStreams writes them). Record bodies that are JSON are
/// written as they are; any other body becomes a JSON string (PolarStreams would write its
/// bytes raw and produce invalid JSON). This path decompresses, so it copies.
fn json_response(resp: &PollResponse, max_frame: usize) -> HttpResponse {
    match render_json(&resp.to_vec(), max_frame) {
        Ok(body) => HttpResponse::json(StatusCode::OK, body),
        Err(e) => HttpResponse::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("a stored chunk could not be decoded: {e}"),
        ),
    }
}

/// Why a poll response could not be rendered as JSON: a stored chunk that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// Renders a binary poll response as PolarStreams' JSON array. `max_frame` is the broker's
/// largest frame ([`crate::config::Config::max_frame_bytes`]): a chunk decompressing to more
/// than a chunk can hold under it is refused as corrupt
/// ([`crate::storage::chunk::max_decoded_len`]; a poll item does not carry its record count).
pub fn render_json(body: &[u8], max_frame: usize) -> Result<String, RenderError> {
    let items = parse_poll_response(body)?;
    let mut out = String::with_capacity(body.len() * 2);
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let h = &item.header;
        out.push_str(&format!(
            "{{\"topic\":{},\"token\":\"{}\",\"rangeIndex\":{},\"version\":{},\"startOffset\":\"{}\",\"values\":[",
            json_string(h.topic),
            h.token,
            h.range_index,
            h.gen_version,
            h.offset
        ));
        let raw = decode_payload(item.payload, max_decoded_len(None, max_frame))?;
        for (j, record) in RecordIter::new(&raw).enumerate() {
            let record = record?;
            if j > 0 {
                out.push(',');
            }
            push_value(record.body, &mut out);
        }
        out.push_str("]}");
    }
    out.push(']');
    Ok(out)
}

/// Appends a record body: as it is when it is one JSON value, else as a JSON string.
fn push_value(body: &[u8], out: &mut String) {
    match std::str::from_utf8(body) {
        Ok(s) if serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() => out.push_str(s.trim()),
        _ => out.push_str(&json_string(&String::from_utf8_lossy(body))),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::poll::PollItemHeader;
    use crate::wire::record::encode_record;

    fn item(buf: &mut Vec<u8>, topic: &str, offset: i64, bodies: &[&[u8]]) {
        let mut raw = Vec::new();
        for b in bodies {
            encode_record(1, b, &mut raw);
        }
        item_payload(buf, topic, offset, &checksummed(&raw));
    }

    /// One zstd frame with a content checksum, as chunks are stored.
    fn checksummed(raw: &[u8]) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        c.include_checksum(true).unwrap();
        c.compress(raw).unwrap()
    }

    fn item_payload(buf: &mut Vec<u8>, topic: &str, offset: i64, payload: &[u8]) {
        PollItemHeader {
            token: -9223372036854775808,
            range_index: 1,
            gen_version: 1,
            topic,
            offset,
            payload_len: payload.len() as u32,
        }
        .encode(buf);
        buf.extend_from_slice(payload);
    }

    #[test]
    fn decompression_bomb_is_refused() {
        // 64 MiB of records compressed to a few KiB: far beyond what a chunk can hold with
        // 1 MiB frames.
        let mut raw = Vec::new();
        encode_record(1, &vec![0u8; 64 << 20], &mut raw);
        let payload = checksummed(&raw);
        assert!(payload.len() < 64 << 10, "{}", payload.len());
        let mut buf = 1u16.to_be_bytes().to_vec();
        item_payload(&mut buf, "t", 0, &payload);
        match render_json(&buf, 1 << 20) {
            Err(RenderError::Chunk(ChunkError::TooLarge { .. })) => {}
            other => panic!("{other:?}"),
        }
        // The same records are fine when the broker's frames may be that large.
        assert!(render_json(&buf, 128 << 20).is_ok());
    }

    #[test]
    fn json_shape() {
        let mut buf = 2u16.to_be_bytes().to_vec();
        item(
            &mut buf,
            "t",
            7,
            &[br#"{"a":1}"#, b" 42 ", b"not json \"x\""],
        );
        item(&mut buf, "u", 0, &[b"[1,2]"]);
        let s = render_json(&buf, 4 << 20).unwrap();
        assert_eq!(
            s,
            r#"[{"topic":"t","token":"-9223372036854775808","rangeIndex":1,"version":1,"startOffset":"7","values":[{"a":1},42,"not json \"x\""]},{"topic":"u","token":"-9223372036854775808","rangeIndex":1,"version":1,"startOffset":"0","values":[[1,2]]}]"#
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v[0]["values"][2], "not json \"x\"");
        assert_eq!(render_json(&[0, 0], 4 << 20).unwrap(), "[]");
    }

    #[test]
    fn accept_header() {
        let mut h = http::HeaderMap::new();
        assert!(!wants_json(&h));
        h.insert(http::header::ACCEPT, "application/json".parse().unwrap());
        assert!(wants_json(&h));
        h.insert(
            http::header::ACCEPT,
            "application/vnd.polar.consumermessage, application/json;q=0.5"
                .parse()
                .unwrap(),
        );
        assert!(!wants_json(&h));
        h.insert(http::header::ACCEPT, "*/*".parse().unwrap());
        assert!(!wants_json(&h));
    }
}
