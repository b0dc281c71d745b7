//! The topic routes of the admin API: `GET /v1/topics` (every topic, from shard 0's catalog),
//! `GET /v1/topics/{name}` (its layout and each partition's offsets and bytes) and
//! `POST /v1/topics/{name}`, creating a topic explicitly with an optional JSON body
//! `{"partitions": N}` (without it, the default layout: shards × `--ranges-per-shard`).
//!
//! Describing never creates a topic: an unknown one is 404 whatever `--auto-create-topics`
//! says. The JSON of the two GETs is in [`super::topics_json`].
//!
//! The one way to make a topic when `--auto-create-topics` is off; it works whatever that
//! setting says. Idempotent: 201 when this request created the topic, 200 when it already
//! exists with the layout asked for (or none was asked for), 409 when it exists with another
//! partition count. 429 once the broker holds `--max-topics`; 400 for a bad name or count.
//! The answer is JSON: `{"topic": name, "partitions": N, "created": bool}`.
//!
//! `DELETE /v1/topics/{name}` deletes a topic on every shard with its files and its groups'
//! committed offsets (see `consumer::topic_delete`): 200 with `{"topic": name, "deleted":
//! true, "partitions": N, "groups": [..]}` (the groups that had offsets for it), 404 for a
//! topic that does not exist, 400 for a bad name, 503 while a deletion of it is under way.

use std::rc::Rc;

use http::StatusCode;
use serde::Deserialize;

use crate::consumer::{topic_delete, ConsumerError};
use crate::shard::{Shard, TopicError};
use crate::wire::startup::validate_topic;

use super::super::errors;
use super::super::message::{HttpRequest, HttpResponse};
use super::query::{bad, decode};
use super::topics_json;

/// The optional body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    pub partitions: Option<u32>,
}

/// `GET /v1/topics`: every topic the broker holds, sorted by name, with its partition count.
pub async fn list(shard: Rc<Shard>, _req: HttpRequest) -> HttpResponse {
    match shard.list_topics().await {
        Ok(all) => HttpResponse::json(StatusCode::OK, topics_json::list(&all)),
        Err(e) => errors::response(&e),
    }
}

/// `GET /v1/topics/{name}`: the topic's layout and its partitions, each as its owning shard
/// reports it (partitions not open yet are opened to read their offsets).
pub async fn describe(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let name = match topic_name(&req) {
        Ok(n) => n,
        Err(r) => return r,
    };
    match shard.describe_topic(&name).await {
        Ok((layout, parts)) => HttpResponse::json(
            StatusCode::OK,
            topics_json::describe(&name, &layout, &parts),
        ),
        Err(e) => errors::response(&e),
    }
}

/// The `{name}` of the path, percent-decoded and checked as a topic name (400 if it is not).
pub(super) fn topic_name(req: &HttpRequest) -> Result<String, HttpResponse> {
    let raw = req
        .params
        .iter()
        .find(|(n, _)| *n == "name")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let name = decode(raw)
        .ok_or_else(|| bad("the topic in the path is not valid percent-encoded UTF-8"))?;
    validate_topic(&name).map_err(|e| bad(&e.to_string()))?;
    Ok(name)
}

/// `POST /v1/topics/{name}`.
pub async fn create(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    match create_inner(&shard, &req).await {
        Ok(r) | Err(r) => r,
    }
}

/// The body of a create: empty (or blank) for the default layout, else `{"partitions": N}`.
pub(crate) fn parse_create_body(body: &[u8]) -> Result<CreateBody, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(CreateBody::default())
    } else {
        serde_json::from_slice(body)
    }
}

async fn create_inner(shard: &Rc<Shard>, req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let name = topic_name(req)?;
    let body = parse_create_body(&req.body).map_err(|e| {
        bad(&format!(
            "the body is not {{\"partitions\": N}} (or empty): {e}"
        ))
    })?;
    let (partitions, created) = match crate::cluster::installed() {
        // Cluster mode: the layout is created in etcd, once for the whole cluster.
        Some(cluster) => {
            let found = cluster
                .create_topic(&name, body.partitions)
                .await
                .map_err(|e| errors::response(&e))?;
            // Opened here at once with etcd's layout (the others open it on first use).
            cluster
                .open_found(shard, &name, &found)
                .await
                .map_err(|e| errors::response(&e))?;
            (found.record.partitions(), found.created)
        }
        None => {
            let (_, found) = shard
                .create_topic(&name, body.partitions)
                .await
                .map_err(|e| errors::response(&e))?;
            (found.layout.partitions(), found.created)
        }
    };
    if !created && body.partitions.is_some_and(|n| n != partitions) {
        return Err(HttpResponse::error(
            StatusCode::CONFLICT,
            &format!("topic '{name}' already exists with {partitions} partitions"),
        ));
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let topic = serde_json::to_string(&name).unwrap_or_else(|_| "\"\"".into());
    Ok(HttpResponse::json(
        status,
        format!("{{\"topic\":{topic},\"partitions\":{partitions},\"created\":{created}}}"),
    ))
}

/// `DELETE /v1/topics/{name}`.
pub async fn delete(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let name = match topic_name(&req) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if let Some(cluster) = crate::cluster::installed() {
        return delete_in_cluster(cluster, &shard, name).await;
    }
    match topic_delete::delete_topic(&shard, &name).await {
        Ok(d) => HttpResponse::json(StatusCode::OK, topics_json::deleted(&d)),
        Err(e) => errors::response(&e),
    }
}

/// Cluster mode: the topic's keys go from etcd in one transaction; every broker drops its
/// local data when its watch sees that, this one before it answers.
async fn delete_in_cluster(
    cluster: &crate::cluster::Cluster,
    shard: &Rc<Shard>,
    name: String,
) -> HttpResponse {
    let removed = match cluster.delete_topic(&name).await {
        Ok(r) => r,
        Err(e) => return errors::response(&e),
    };
    match topic_delete::delete_topic(shard, &name).await {
        Ok(_) => {}
        Err(ConsumerError::Topic(TopicError::NotFound { .. } | TopicError::Deleting { .. })) => {}
        // Gone from the cluster already; the local files stay until the next deletion of
        // the name or a restart (logged, not the client's failure).
        Err(e) => {
            tracing::error!(topic = name, error = %e, "cannot drop the deleted topic's local data")
        }
    }
    let deleted = topic_delete::TopicDeleted {
        topic: name,
        partitions: removed.record.partitions(),
        groups: removed.groups,
    };
    HttpResponse::json(StatusCode::OK, topics_json::deleted(&deleted))
}
