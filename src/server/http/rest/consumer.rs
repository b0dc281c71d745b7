//! PolarStreams' consumer endpoints over HTTP (both versions), on top of
//! [`crate::consumer::api`] — the same operations the framed port serves:
//!
//! - `PUT /v1/consumer/register?consumerId=&group=&topic=…&onNewGroup=` → 200 `OK`
//!   (POST is accepted too, as PolarStreams does for old clients); `startTime=T` instead of
//!   `onNewGroup` starts a group new to a topic at its first record at or after T;
//! - `POST /v1/consumer/poll?consumerId=[&maxWaitMs=][&encoding=base64]` → 200 with the
//!   binary poll response (`application/vnd.polar.consumermessage`) or, with
//!   `Accept: application/json`, a JSON array of at most `--max-poll-bytes`
//!   ([`super::poll_json`]); 204 when there is nothing to read;
//! - `POST /v1/consumer/commit?consumerId=` → 204;
//! - `POST /v1/consumer/goodbye?consumerId=` → 200 `OK`.
//!
//! An unregistered consumer is 409 everywhere but register; a missing or malformed parameter
//! is 400 naming it.

use std::rc::Rc;
use std::time::Duration;

use http::StatusCode;

use bytes::Bytes;

use crate::consumer::api;
use crate::consumer::coordinator::StartAt;
use crate::shard::Shard;
use crate::wire::consumer::{
    first_occurrences, validate_consumer_id, validate_group, RegisterBody, StartPolicy,
};
use crate::wire::startup::validate_topic;
use crate::wire::time::parse_time_us;

use super::super::errors;
use super::super::message::{Body, HttpRequest, HttpResponse};
use super::commit_json;
use super::poll_json::{self, Encoding};
use super::query::{bad, Query};

/// Content type of the binary poll response (PolarStreams' name for it).
pub const POLL_CONTENT_TYPE: &str = "application/vnd.polar.consumermessage";
/// The group of a consumer that names none (PolarStreams' default).
pub const DEFAULT_GROUP: &str = "default";
/// Longest consumer id (the framed REGISTER carries it with a u8 length).
const MAX_CONSUMER_ID: usize = 255;

/// `PUT /v1/consumer/register`.
pub async fn register(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let (body, start) = match register_body(&req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match api::register_at(&shard, body, start).await {
        Ok(()) => HttpResponse::text(StatusCode::OK, "OK"),
        Err(e) => errors::response(&e),
    }
}

/// The register parameters, validated like the framed REGISTER body, and where a group new to
/// a topic starts: `onNewGroup`, or `startTime` (RFC 3339 or Unix milliseconds: the first
/// record at or after it; not with `onNewGroup`).
fn register_body(req: &HttpRequest) -> Result<(RegisterBody, StartAt), HttpResponse> {
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
    let start = match q.get("startTime") {
        None => StartAt::from(policy),
        Some(_) if q.get("onNewGroup").is_some() => {
            return Err(bad(
                "query parameters 'startTime' and 'onNewGroup' exclude each other",
            ))
        }
        Some(t) => StartAt::Time(
            parse_time_us(t).map_err(|e| bad(&format!("query parameter 'startTime': {e}")))?,
        ),
    };
    let body = RegisterBody {
        policy,
        consumer_id,
        group,
        topics,
    };
    Ok((body, start))
}

/// `POST /v1/consumer/poll`.
pub async fn poll(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let (id, wait, encoding) = match poll_params(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let json = wants_json(&req.headers);
    let polled = match api::read_poll(&shard, &id, wait).await {
        Ok(p) => p,
        Err(e) => return errors::response(&e),
    };
    // The positions recorded are those of the items the client gets: a JSON response may
    // hold only the first items (see `poll_json`).
    let (items, body) = if json && polled.response.items > 0 {
        let body = polled.response.to_vec();
        let bound = shard.config.max_poll_bytes;
        match poll_json::render(&body, bound, shard.config.max_frame_bytes(), encoding).await {
            Ok(r) => (r.items, Some(r.json)),
            Err(e) => {
                // Nothing recorded: the consumer's next poll starts where this one did.
                return HttpResponse::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("a stored chunk could not be decoded: {e}"),
                );
            }
        }
    } else {
        (polled.response.items as usize, None)
    };
    let resp = match polled.record(&shard, items).await {
        Ok(resp) => resp,
        Err(e) => return errors::response(&e),
    };
    match body {
        _ if resp.items == 0 => {
            let mut r = HttpResponse::empty(StatusCode::NO_CONTENT);
            r.headers.push(("cache-control", "no-store".into()));
            r.headers.push(("retry-after", "1".into()));
            r
        }
        Some(json) => HttpResponse {
            status: StatusCode::OK,
            content_type: "application/json",
            headers: Vec::new(),
            body: Body::Full(Bytes::from(json)),
        },
        None => HttpResponse {
            status: StatusCode::OK,
            content_type: POLL_CONTENT_TYPE,
            headers: Vec::new(),
            body: Body::Parts {
                len: resp.len,
                parts: resp.parts,
            },
        },
    }
}

type PollParams = (String, Option<Duration>, Encoding);

fn poll_params(req: &HttpRequest) -> Result<PollParams, HttpResponse> {
    let q = Query::parse(&req.query)?;
    let id = consumer_id(&q)?;
    let wait = q
        .number::<u32>("maxWaitMs")?
        .map(|ms| Duration::from_millis(ms as u64));
    let encoding = Encoding::parse(q.get("encoding"))
        .ok_or_else(|| bad("query parameter 'encoding' must be base64 when given"))?;
    Ok((id, wait, encoding))
}

/// `POST /v1/consumer/commit`: 204 once the last poll's positions are durable.
pub async fn commit(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let id = match Query::parse(&req.query).and_then(|q| consumer_id(&q)) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let committed = match commit_json::parse(&req.body) {
        Ok(None) => api::commit(&shard, &id).await,
        Ok(Some(positions)) => api::commit_positions(&shard, &id, &positions).await,
        Err(why) => return bad(&why.to_string()),
    };
    match committed {
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

#[cfg(test)]
mod tests {
    use super::*;

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
