//! `GET /v1/topics/{name}/partitions/{p}/offset?time=T`: the offset of the first record of a
//! partition whose timestamp is at or after T (RFC 3339 or milliseconds since the Unix epoch),
//! from the partition's time index, with the partition's first and next offsets:
//!
//! ```json
//! {"topic":"orders","partition":0,"timestampUs":1764540900000000,"offset":42,
//!  "firstOffset":0,"nextOffset":100}
//! ```
//!
//! `offset` is `nextOffset` when every record is older than T, `firstOffset` when T is before
//! them all. 400 for a bad time or partition number, 404 for an unknown topic or partition.

use std::rc::Rc;

use http::StatusCode;
use serde::Serialize;

use crate::shard::Shard;
use crate::wire::time::parse_time_us;

use super::super::errors;
use super::super::message::{HttpRequest, HttpResponse};
use super::query::{bad, Query};
use super::topics::topic_name;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TimeOffsetJson<'a> {
    topic: &'a str,
    partition: u32,
    timestamp_us: i64,
    offset: i64,
    first_offset: i64,
    next_offset: i64,
}

/// `GET /v1/topics/{name}/partitions/{p}/offset?time=`.
pub async fn offset_for_time(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    match answer(&shard, &req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn answer(shard: &Rc<Shard>, req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let name = topic_name(req)?;
    let raw = req
        .params
        .iter()
        .find(|(n, _)| *n == "p")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let partition: u32 = raw
        .parse()
        .map_err(|_| bad(&format!("partition {raw:?} is not a partition number")))?;
    let q = Query::parse(&req.query)?;
    let time = q.required("time")?;
    let t_us = parse_time_us(time).map_err(|e| bad(&format!("query parameter 'time': {e}")))?;
    let topic = shard
        .existing_topic(&name)
        .await
        .map_err(|e| errors::response(&e))?;
    let found = shard
        .offset_for_time(&topic, partition, t_us)
        .await
        .map_err(|e| errors::response(&e))?;
    let body = TimeOffsetJson {
        topic: &name,
        partition,
        timestamp_us: t_us,
        offset: found.offset,
        first_offset: found.first_offset,
        next_offset: found.next_offset,
    };
    Ok(HttpResponse::json(
        StatusCode::OK,
        serde_json::to_string(&body).unwrap_or_default(),
    ))
}
