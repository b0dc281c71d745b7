//! The group routes of the admin API: `GET /v1/groups` (every group, with its member count),
//! `GET /v1/groups/{group}` (members and their partitions, and per partition the committed
//! offset, the log's end and the lag) and `POST /v1/groups/{group}/reset?topic=&to=` (moves
//! the offsets of a group without members: `to=earliest`, `latest`, an offset or `time:T`). Offsets are
//! 64-bit, so they go out as decimal strings, as in the JSON poll items.
//!
//! In cluster mode a group's description and reset are answered by its coordinator (passed on
//! to it unless this broker is the one), and the list gathers every broker's groups and those
//! that only have committed offsets in etcd. `here=true` in the query answers from this
//! broker's own state: what brokers send each other.

use std::rc::Rc;

use http::StatusCode;
use serde::Serialize;

use crate::cluster::admin_proxy::answered_there;
use crate::consumer::describe::{self, GroupDescription, ResetTo};
use crate::consumer::ConsumerError;
use crate::shard::Shard;
use crate::wire::consumer::validate_group;
use crate::wire::startup::validate_topic;

use super::super::errors;
use super::super::message::{HttpRequest, HttpResponse};
use super::query::{bad, decode, Query};

#[derive(Serialize)]
struct GroupList {
    groups: Vec<GroupEntry>,
}

#[derive(Serialize)]
struct GroupEntry {
    name: String,
    members: usize,
}

#[derive(Serialize)]
struct Description<'a> {
    group: &'a str,
    members: Vec<Member<'a>>,
    partitions: Vec<Partition<'a>>,
}

#[derive(Serialize)]
struct Member<'a> {
    id: &'a str,
    partitions: Vec<TopicPartition<'a>>,
}

#[derive(Serialize)]
struct TopicPartition<'a> {
    topic: &'a str,
    partition: u32,
}

#[derive(Serialize)]
struct Partition<'a> {
    topic: &'a str,
    partition: u32,
    owner: Option<&'a str>,
    committed: Option<String>,
    end: Option<String>,
    lag: Option<String>,
}

#[derive(Serialize)]
struct Reset<'a> {
    group: &'a str,
    topic: &'a str,
    partitions: Vec<ResetPartition>,
}

#[derive(Serialize)]
struct ResetPartition {
    partition: u32,
    offset: String,
}

/// `POST /v1/groups/{group}/reset?topic=T&to=earliest|latest|N|time:T`: 200 with each partition's
/// new offset; 409 while the group has live members; 404 for an unknown topic.
pub async fn reset(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let group = match group_name(&req) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let q = match Query::parse(&req.query) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let Some(topic) = q.get("topic").filter(|t| !t.is_empty()) else {
        return bad("missing query parameter 'topic'");
    };
    if let Err(e) = validate_topic(topic) {
        return bad(&format!("query parameter 'topic': {e}"));
    }
    let to = match q.get("to").map(ResetTo::parse) {
        Some(Ok(to)) => to,
        Some(Err(e)) => return bad(&format!("query parameter 'to': {e}")),
        None => return bad("missing query parameter 'to' (earliest, latest, an offset or time:T)"),
    };
    if let Some(answer) = at_coordinator(&req, &group, "POST").await {
        return answer;
    }
    match describe::reset_group(&shard, &group, topic, to).await {
        Ok(moved) => {
            let body = Reset {
                group: &group,
                topic,
                partitions: moved
                    .into_iter()
                    .map(|(partition, offset)| ResetPartition {
                        partition,
                        offset: offset.to_string(),
                    })
                    .collect(),
            };
            HttpResponse::json(
                StatusCode::OK,
                serde_json::to_string(&body).unwrap_or_default(),
            )
        }
        Err(e @ ConsumerError::GroupActive { .. }) => {
            HttpResponse::error(StatusCode::CONFLICT, &e.to_string())
        }
        Err(e) => errors::response(&e),
    }
}

/// The `{group}` of the path, percent-decoded and checked (400 if it is not a group name).
fn group_name(req: &HttpRequest) -> Result<String, HttpResponse> {
    let raw = req
        .params
        .iter()
        .find(|(k, _)| *k == "group")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let Some(group) = decode(raw) else {
        return Err(bad("the group name is not valid percent-encoded UTF-8"));
    };
    validate_group(&group).map_err(|e| bad(&format!("group: {e}")))?;
    Ok(group)
}

/// `GET /v1/groups`.
pub async fn list(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let mut groups = match describe::list_groups(&shard).await {
        Ok(groups) => groups,
        Err(e) => return errors::response(&e),
    };
    if let (Some(cluster), false) = (crate::cluster::installed(), here(&req)) {
        match cluster_groups(cluster, &req, groups).await {
            Ok(all) => groups = all,
            Err(answer) => return answer,
        }
    }
    HttpResponse::json(StatusCode::OK, list_json(groups))
}

/// Cluster mode: this broker's groups, every other broker's (each coordinates its own), and
/// those that only have committed offsets in etcd, by name; a group's members are counted
/// where it is coordinated.
async fn cluster_groups(
    cluster: &crate::cluster::Cluster,
    req: &HttpRequest,
    mine: Vec<(String, usize)>,
) -> Result<Vec<(String, usize)>, HttpResponse> {
    let mut all: std::collections::BTreeMap<String, usize> = mine.into_iter().collect();
    for name in cluster
        .offset_groups()
        .await
        .map_err(|e| errors::response(&e))?
    {
        all.entry(name).or_default();
    }
    let target = answered_there(&req.path, &req.query);
    for id in cluster
        .live_ids()
        .into_iter()
        .filter(|&id| id != cluster.broker)
    {
        let (status, body) = cluster
            .admin_at(id, "GET", target.clone(), Vec::new())
            .await
            .map_err(|e| errors::response(&e))?;
        let theirs: GroupListIn = match (status, serde_json::from_slice(&body)) {
            (200, Ok(list)) => list,
            _ => {
                let why = format!("broker {id} answered the group list with {status}");
                return Err(HttpResponse::error(StatusCode::BAD_GATEWAY, &why));
            }
        };
        for g in theirs.groups {
            let members = all.entry(g.name).or_default();
            *members = (*members).max(g.members);
        }
    }
    Ok(all.into_iter().collect())
}

#[derive(serde::Deserialize)]
struct GroupListIn {
    groups: Vec<GroupEntryIn>,
}

#[derive(serde::Deserialize)]
struct GroupEntryIn {
    name: String,
    members: usize,
}

/// Whether the query says `here=true`: answer from this broker's own state.
fn here(req: &HttpRequest) -> bool {
    Query::parse(&req.query).is_ok_and(|q| q.get("here") == Some("true"))
}

/// Cluster mode: the answer of `group`'s coordinator when it is another broker (and the
/// request was not passed on already); `None` to answer here.
async fn at_coordinator(
    req: &HttpRequest,
    group: &str,
    method: &'static str,
) -> Option<HttpResponse> {
    let cluster = crate::cluster::installed()?;
    if here(req) {
        return None;
    }
    let coordinator = match cluster.group_coordinator(group) {
        Ok((id, _)) => id,
        Err(e) => return Some(errors::response(&e)),
    };
    if coordinator == cluster.broker {
        return None;
    }
    let target = answered_there(&req.path, &req.query);
    Some(
        match cluster
            .admin_at(coordinator, method, target, req.body.to_vec())
            .await
        {
            Ok((status, body)) => passed_on(status, body),
            Err(e) => errors::response(&e),
        },
    )
}

/// Another broker's answer, as it came (JSON for a success, its sentence for an error).
fn passed_on(status: u16, body: Vec<u8>) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut answer = HttpResponse::json(status, String::new());
    if !status.is_success() {
        answer.content_type = "text/plain; charset=utf-8";
    }
    answer.body = bytes::Bytes::from(body).into();
    answer
}

/// `GET /v1/groups/{group}`: 404 for a group with neither members nor committed offsets.
pub async fn describe(shard: Rc<Shard>, req: HttpRequest) -> HttpResponse {
    let group = match group_name(&req) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if let Some(answer) = at_coordinator(&req, &group, "GET").await {
        return answer;
    }
    match describe::describe_group(&shard, &group).await {
        Ok(d) => HttpResponse::json(StatusCode::OK, describe_json(&d)),
        Err(e) => errors::response(&e),
    }
}

fn list_json(groups: Vec<(String, usize)>) -> String {
    let body = GroupList {
        groups: groups
            .into_iter()
            .map(|(name, members)| GroupEntry { name, members })
            .collect(),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

fn describe_json(d: &GroupDescription) -> String {
    let body = Description {
        group: &d.group,
        members: d
            .members
            .iter()
            .map(|m| Member {
                id: &m.id,
                partitions: m
                    .partitions
                    .iter()
                    .map(|(topic, partition)| TopicPartition {
                        topic,
                        partition: *partition,
                    })
                    .collect(),
            })
            .collect(),
        partitions: d
            .partitions
            .iter()
            .map(|p| Partition {
                topic: &p.topic,
                partition: p.partition,
                owner: p.owner.as_deref(),
                committed: p.committed.map(|o| o.to_string()),
                end: p.end.map(|o| o.to_string()),
                lag: p.lag().map(|o| o.to_string()),
            })
            .collect(),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::describe::PartitionLag;
    use crate::consumer::group::MemberView;

    #[test]
    fn json_shapes() {
        assert_eq!(
            list_json(vec![("a".into(), 2), ("b".into(), 0)]),
            r#"{"groups":[{"name":"a","members":2},{"name":"b","members":0}]}"#
        );
        let d = GroupDescription {
            group: "g".into(),
            members: vec![MemberView {
                id: "m1".into(),
                partitions: vec![("t".into(), 1)],
            }],
            partitions: vec![PartitionLag {
                topic: "t".into(),
                partition: 1,
                owner: Some("m1".into()),
                committed: Some(5),
                end: Some(9),
            }],
        };
        assert_eq!(
            describe_json(&d),
            r#"{"group":"g","members":[{"id":"m1","partitions":[{"topic":"t","partition":1}]}],"partitions":[{"topic":"t","partition":1,"owner":"m1","committed":"5","end":"9","lag":"4"}]}"#
        );
    }
}
