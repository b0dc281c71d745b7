//! `GET /v1/cluster`: the cluster as this broker sees it, for operators and for clients that
//! route each key to its partition's leader themselves (docs/cluster.md has the format).

use serde::Serialize;

use super::view::ClusterState;

#[derive(Serialize)]
struct ClusterJson<'a> {
    cluster: &'a str,
    /// The broker answering.
    broker: u32,
    /// Whether the answering broker holds its etcd lease now (a member that may lead).
    holds_lease: bool,
    /// The etcd revision this view is at.
    revision: i64,
    controller: Option<ControllerJson>,
    brokers: Vec<BrokerJson<'a>>,
    topics: Vec<TopicJson<'a>>,
}

#[derive(Serialize)]
struct ControllerJson {
    broker: u32,
    epoch: i64,
}

#[derive(Serialize)]
struct BrokerJson<'a> {
    id: u32,
    /// `up` while its lease holds, `down` after.
    state: &'static str,
    framed: &'a str,
    http: &'a str,
    shards: u32,
}

#[derive(Serialize)]
struct TopicJson<'a> {
    name: &'a str,
    generation: u32,
    token_ranges: u32,
    ranges_per_token_range: u32,
    replication_factor: u32,
    partitions: Vec<PartitionJson<'a>>,
}

#[derive(Serialize)]
struct PartitionJson<'a> {
    partition: u32,
    /// The partition's name on disk and in poll items: `{gen}_{token}_{range}`.
    id: String,
    /// First and last token the partition covers (both included).
    token_start: i64,
    token_end: i64,
    replicas: &'a [u32],
    leader: Option<u32>,
    leader_epoch: u64,
}

/// The JSON body of `GET /v1/cluster`.
pub fn render(cluster: &str, me: u32, holds_lease: bool, s: &ClusterState) -> String {
    let mut ids: Vec<u32> = s.known.keys().chain(s.live.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let brokers = ids
        .iter()
        .filter_map(|id| {
            let (record, state) = match s.live.get(id) {
                Some(r) => (r, "up"),
                None => (s.known.get(id)?, "down"),
            };
            Some(BrokerJson {
                id: *id,
                state,
                framed: &record.framed,
                http: &record.http,
                shards: record.shards,
            })
        })
        .collect();
    let topics = s
        .topics
        .iter()
        .map(|(name, t)| {
            let layout = t.layout();
            let records = s.partitions.get(name);
            let partitions = (0..layout.partitions())
                .filter_map(|j| {
                    let (p, _) = records?.get(&j)?;
                    let (token_start, token_end) = layout.token_range(j);
                    Some(PartitionJson {
                        partition: j,
                        id: layout.partition_id(j).dir_name(),
                        token_start,
                        token_end,
                        replicas: &p.replicas,
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                    })
                })
                .collect();
            TopicJson {
                name,
                generation: t.generation,
                token_ranges: t.token_ranges,
                ranges_per_token_range: t.ranges_per_token_range,
                replication_factor: t.replication_factor,
                partitions,
            }
        })
        .collect();
    let body = ClusterJson {
        cluster,
        broker: me,
        holds_lease,
        revision: s.revision,
        controller: s
            .controller
            .map(|(broker, epoch)| ControllerJson { broker, epoch }),
        brokers,
        topics,
    };
    serde_json::to_string(&body).unwrap_or_else(|_| "{}".into())
}
