//! Creating a topic in the cluster: one transaction, guarded by the topic key not existing
//! (`create_revision == 0`), writes the layout and every partition's record; if another
//! broker created it first, the transaction reads what it wrote instead. So two brokers that
//! create the same topic at once agree on one layout.

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp, TxnOpResponse,
};

use super::keys::Keys;
use super::records::{plan_topic, BrokerRecord, TopicRecord};
use super::ClusterError;

/// The topic's layout, and whether this call created it.
#[derive(Debug, Clone)]
pub struct TopicFound {
    pub record: TopicRecord,
    pub created: bool,
    /// The etcd revision that created the layout key: which life of the name this is (a
    /// topic deleted and created again has another).
    pub create_revision: i64,
}

/// Finds `name`.
pub async fn find_topic(
    mut client: Client,
    keys: Keys,
    name: String,
) -> Result<TopicFound, ClusterError> {
    let topic_key = keys.topic(&name);
    let existing = client.get(topic_key.clone(), None).await?;
    match existing.kvs().first() {
        Some(kv) => Ok(TopicFound {
            record: parse_topic(&topic_key, kv.value())?,
            created: false,
            create_revision: kv.create_revision(),
        }),
        None => Err(ClusterError::TopicNotFound(name)),
    }
}

/// Creates `name` over the brokers live now, or finds it.
pub async fn create_topic(
    mut client: Client,
    keys: Keys,
    name: String,
    partitions: Option<u32>,
    ranges_per_shard: u32,
    replication_factor: u32,
) -> Result<TopicFound, ClusterError> {
    let topic_key = keys.topic(&name);
    let existing = client.get(topic_key.clone(), None).await?;
    if let Some(kv) = existing.kvs().first() {
        return Ok(TopicFound {
            record: parse_topic(&topic_key, kv.value())?,
            created: false,
            create_revision: kv.create_revision(),
        });
    }
    let live: Vec<BrokerRecord> = client
        .get(keys.live_prefix(), Some(GetOptions::new().with_prefix()))
        .await?
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect();
    let (record, parts) = plan_topic(&live, partitions, ranges_per_shard, replication_factor)?;
    let mut writes = vec![TxnOp::put(topic_key.clone(), to_json(&record), None)];
    for (j, p) in (0u32..).zip(&parts) {
        writes.push(TxnOp::put(keys.partition(&name, j), to_json(p), None));
    }
    let txn = Txn::new()
        .when([Compare::create_revision(
            topic_key.clone(),
            CompareOp::Equal,
            0,
        )])
        .and_then(writes)
        .or_else([TxnOp::get(topic_key.clone(), None)]);
    let answer = client.txn(txn).await?;
    if answer.succeeded() {
        tracing::info!(
            topic = name,
            partitions = record.partitions(),
            "created topic in etcd"
        );
        // The transaction's revision is the one that created the key.
        let create_revision = answer.header().map_or(0, |h| h.revision());
        return Ok(TopicFound {
            record,
            created: true,
            create_revision,
        });
    }
    for op in answer.op_responses() {
        if let TxnOpResponse::Get(got) = op {
            if let Some(kv) = got.kvs().first() {
                return Ok(TopicFound {
                    record: parse_topic(&topic_key, kv.value())?,
                    created: false,
                    create_revision: kv.create_revision(),
                });
            }
        }
    }
    // Created and deleted between our compare and our read: rare; the caller may retry.
    Err(ClusterError::Raced(name))
}

/// What deleting a topic in etcd removed.
#[derive(Debug, Clone)]
pub struct TopicRemoved {
    pub record: TopicRecord,
    /// The groups that had committed offsets in it.
    pub groups: Vec<String>,
}

/// Deletes `name`'s keys in one transaction, guarded by the topic key existing: its layout,
/// every partition's record and every group's committed offsets in it. Every broker sees the
/// layout's deletion in its watch and drops its local data. [`ClusterError::TopicNotFound`]
/// when there is no such topic.
pub async fn delete_topic(
    mut client: Client,
    keys: Keys,
    name: String,
) -> Result<TopicRemoved, ClusterError> {
    let topic_key = keys.topic(&name);
    let prefixed = || Some(DeleteOptions::new().with_prefix().with_prev_key());
    let txn = Txn::new()
        .when([Compare::version(topic_key.clone(), CompareOp::Greater, 0)])
        .and_then([
            TxnOp::get(topic_key.clone(), None),
            TxnOp::delete(topic_key.clone(), None),
            TxnOp::delete(keys.partitions_prefix(&name), prefixed()),
            TxnOp::delete(keys.offsets_prefix(&name), prefixed()),
        ]);
    let answer = client.txn(txn).await?;
    if !answer.succeeded() {
        return Err(ClusterError::TopicNotFound(name));
    }
    let mut record = None;
    let mut groups = Vec::new();
    let offsets_prefix = keys.offsets_prefix(&name);
    for op in answer.op_responses() {
        match op {
            TxnOpResponse::Get(got) => {
                if let Some(kv) = got.kvs().first() {
                    record = Some(parse_topic(&topic_key, kv.value())?);
                }
            }
            TxnOpResponse::Delete(deleted) => groups.extend(
                deleted
                    .prev_kvs()
                    .iter()
                    .filter_map(|kv| kv.key_str().ok()?.strip_prefix(&offsets_prefix))
                    .map(str::to_string),
            ),
            _ => {}
        }
    }
    let record = record.ok_or_else(|| ClusterError::Raced(name.clone()))?;
    tracing::info!(topic = name, ?groups, "deleted topic in etcd");
    Ok(TopicRemoved { record, groups })
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn parse_topic(key: &str, value: &[u8]) -> Result<TopicRecord, ClusterError> {
    serde_json::from_slice(value).map_err(|e| ClusterError::BadRecord {
        key: key.to_string(),
        reason: e.to_string(),
    })
}
