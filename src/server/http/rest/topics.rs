//! Creating a topic explicitly: `POST /v1/topics/{name}`, with an optional JSON body
//! `{"partitions": N}` (without it, the default layout: shards × `--ranges-per-shard`).
//!
//! The one way to make a topic when `--auto-create-topics` is off; it works whatever that
//! setting says. Idempotent: 201 when this request created the topic, 200 when it already
//! exists with the layout asked for (or none was asked for), 409 when it exists with another
//! partition count. 429 once the broker holds `--max-topics`; 400 for a bad name or count.
//! The answer is JSON: `{"topic": name, "partitions": N, "created": bool}`.

use std::rc::Rc;

use http::StatusCode;
use serde::Deserialize;

use crate::shard::Shard;
use crate::wire::startup::validate_topic;

use super::super::errors;
use super::super::message::{HttpRequest, HttpResponse};
use super::query::{bad, decode};

/// The optional body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    partitions: Option<u32>,
}

/// `POST /v1/topics/{name}`.
pub async fn create(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    match create_inner(&shard, &req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn create_inner(shard: &Rc<Shard>, req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let raw = req
        .params
        .iter()
        .find(|(n, _)| *n == "name")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let name = decode(raw)
        .ok_or_else(|| bad("the topic in the path is not valid percent-encoded UTF-8"))?;
    validate_topic(&name).map_err(|e| bad(&e.to_string()))?;
    let body: CreateBody = if req.body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&req.body).map_err(|e| {
            bad(&format!(
                "the body is not {{\"partitions\": N}} (or empty): {e}"
            ))
        })?
    };
    let (_, found) = shard
        .create_topic(&name, body.partitions)
        .await
        .map_err(|e| errors::response(&e))?;
    let partitions = found.layout.partitions();
    if !found.created && body.partitions.is_some_and(|n| n != partitions) {
        return Err(HttpResponse::error(
            StatusCode::CONFLICT,
            &format!("topic '{name}' already exists with {partitions} partitions"),
        ));
    }
    let status = if found.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let topic = serde_json::to_string(&name).unwrap_or_else(|_| "\"\"".into());
    Ok(HttpResponse::json(
        status,
        format!(
            "{{\"topic\":{topic},\"partitions\":{partitions},\"created\":{}}}",
            found.created
        ),
    ))
}
