//! PolarStreams' producer endpoint: `POST /v1/topic/{topic}/messages[?partitionKey=]`.
//!
//! - `Content-Type: application/json`: the body is one message, stored as it is.
//! - `Content-Type: application/x-ndjson`: one message per line (`\n`, an optional `\r`
//!   before it is dropped; empty lines are skipped, as PolarStreams does).
//! - `Content-Type: application/octet-stream`: the body is one message, any bytes, stored as
//!   they are (a JSON poll returns bodies that are not UTF-8 in base64).
//!
//! The messages become one PRODUCE frame, keyed exactly like a framed producer's: with a
//! `partitionKey` the partition is the key's Murmur3 token's; without one (or empty), a
//! partition owned by the shard serving the request (no cross-core hop), round-robin over
//! requests. A request's messages land together, in order, in one chunk. The answer is 200
//! `OK` once they are durable. Topics are created on first produce. In cluster mode the topic
//! comes from etcd and a partition another broker leads is forwarded to it as that frame
//! (docs/cluster.md).

use std::rc::Rc;

use http::StatusCode;

use crate::cluster::Route;
use crate::shard::Shard;
use crate::wire::produce::encode_produce_body;
use crate::wire::startup::validate_topic;
use crate::wire::Flags;

use super::super::errors;
use super::super::message::{HttpRequest, HttpResponse};
use super::query::{bad, Query};

/// Longest partition key (the PRODUCE body carries it with a u8 length).
const MAX_KEY_LEN: usize = 255;

pub const JSON: &str = "application/json";
pub const NDJSON: &str = "application/x-ndjson";
pub const OCTETS: &str = "application/octet-stream";

/// `POST /v1/topic/{topic}/messages`.
pub async fn produce(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    match produce_inner(&shard, req).await {
        Ok(()) => HttpResponse::text(StatusCode::OK, "OK"),
        Err(r) => r,
    }
}

async fn produce_inner(shard: &Rc<Shard>, req: HttpRequest) -> Result<(), HttpResponse> {
    let topic = req
        .params
        .iter()
        .find(|(n, _)| *n == "topic")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let topic = super::query::decode(topic)
        .ok_or_else(|| bad("the topic in the path is not valid percent-encoded UTF-8"))?;
    validate_topic(&topic).map_err(|e| bad(&e.to_string()))?;
    let q = Query::parse(&req.query)?;
    let key = q.get("partitionKey").unwrap_or("").as_bytes().to_vec();
    if key.len() > MAX_KEY_LEN {
        return Err(bad(&format!(
            "query parameter 'partitionKey' is {} bytes long; the limit is {MAX_KEY_LEN}",
            key.len()
        )));
    }
    let timestamp = q.number::<i64>("timestamp")?;
    let messages = split_messages(&req.headers, &req.body)?;
    // The frame: [timestamp] | key len u8 | key | (len u32 | message)*.
    let size: usize = messages.iter().map(|m| 4 + m.len()).sum();
    let max = shard.config.max_frame_size as usize;
    let frame_len = size + 1 + key.len() + if timestamp.is_some() { 8 } else { 0 };
    if frame_len > max {
        return Err(HttpResponse::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the messages take {frame_len} bytes as a frame; --max-frame-size is {max}"),
        ));
    }
    // The topic (from etcd in cluster mode) and where keyless messages go.
    let (state, keyless) = crate::cluster::session::open(shard, &topic)
        .await
        .map_err(|e| errors::response(&e))?;
    let partition = if key.is_empty() {
        keyless
    } else {
        state.layout.partition_of_key(&key)
    };
    // Cluster mode: a partition another broker leads is written there; one this broker leads
    // is written here at the epoch it was routed with.
    let mut leader_epoch = 0;
    if let Some(cluster) = crate::cluster::installed() {
        let route = cluster
            .route(&topic, partition)
            .map_err(|e| errors::response(&e))?;
        if let Route::Local { epoch } = route {
            leader_epoch = epoch;
        }
        if let Route::Forward {
            leader,
            addr,
            epoch,
        } = route
        {
            // Held until the leader answers, as a local frame's until it is durable.
            let _budget = shard
                .reserve_buffer(frame_len)
                .await
                .map_err(|e| errors::response(&e))?;
            let mut body = Vec::with_capacity(frame_len);
            encode_produce_body(timestamp, &key, messages.iter().copied(), &mut body);
            let flags = if timestamp.is_some() {
                Flags::WITH_TIMESTAMP
            } else {
                0
            };
            let answer =
                cluster.forward(leader, &addr, epoch, &topic, partition, flags, body.into());
            return match answer.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(errors::response(&e)),
                Err(_) => Err(errors::response(&crate::cluster::ClusterError::Stopped)),
            };
        }
    }
    let (ack, _budget) = shard
        .submit_messages(
            &state,
            partition,
            leader_epoch,
            timestamp,
            &key,
            messages.iter().copied(),
            frame_len,
        )
        .await
        .map_err(|e| errors::response(&e))?;
    ack.wait().await.map_err(|e| errors::response(&e))?;
    Ok(())
}

/// The messages of a body, by content type.
pub(crate) fn split_messages<'a>(
    headers: &http::HeaderMap,
    body: &'a [u8],
) -> Result<Vec<&'a [u8]>, HttpResponse> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let messages: Vec<&[u8]> = match content_type.as_deref() {
        Some(JSON) | Some(OCTETS) => {
            if body.is_empty() {
                Vec::new()
            } else {
                vec![body]
            }
        }
        Some(NDJSON) => body
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .collect(),
        other => {
            return Err(HttpResponse::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!(
                    "Content-Type {} is not supported; send {JSON} or {OCTETS} (one message) \
                     or {NDJSON} (one message per line)",
                    other.map_or("(none)".to_string(), |c| format!("'{c}'"))
                ),
            ))
        }
    };
    if messages.is_empty() {
        return Err(bad("the request body holds no message"));
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn splitting() {
        let body = b"{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":3}";
        let m = split_messages(&headers("application/x-ndjson"), body).unwrap();
        assert_eq!(m, [&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"]);
        let m = split_messages(&headers("Application/JSON; charset=utf-8"), body).unwrap();
        assert_eq!(m, [&body[..]]);
        let bytes = [0xff, 0xfe, 0x00, b'\n', 0x80];
        let m = split_messages(&headers("application/octet-stream"), &bytes).unwrap();
        assert_eq!(m, [&bytes[..]]);
        for (ct, body, status) in [
            ("application/json", &b""[..], 400),
            ("application/x-ndjson", b"\n\r\n", 400),
            ("application/octet-stream", b"", 400),
            ("text/plain", b"x", 415),
        ] {
            let e = split_messages(&headers(ct), body).unwrap_err();
            assert_eq!(e.status.as_u16(), status, "{ct}");
        }
        let e = split_messages(&http::HeaderMap::new(), b"x").unwrap_err();
        assert_eq!(e.status.as_u16(), 415);
    }

    #[test]
    fn error_statuses() {
        use crate::shard::{ProduceError, RouteError};
        let full = errors::response(&ProduceError::DiskFull { free: 1, min: 2 });
        assert_eq!(full.status, 507);
        assert_eq!(errors::response(&ProduceError::ShuttingDown).status, 503);
        let unreachable = ProduceError::Route(RouteError::Unreachable(1));
        assert_eq!(errors::response(&unreachable).status, 503);
        let failed = crate::storage::StorageError::Failed {
            reason: "EIO".into(),
            disk_full: false,
        };
        assert_eq!(errors::response(&ProduceError::from(failed)).status, 500);
    }
}
