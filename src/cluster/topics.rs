//! Creating a topic in the cluster: one transaction, guarded by the topic key not existing
//! (`create_revision == 0`), writes the layout and every partition's record; if another
//! broker created it first, the transaction reads what it wrote instead. So two brokers that
//! create the same topic at once agree on one layout.

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};

use super::keys::Keys;
use super::records::{plan_topic, BrokerRecord, TopicRecord};
use super::ClusterError;

/// The topic's layout, and whether this call created it.
#[derive(Debug, Clone)]
pub struct TopicFound {
    pub record: TopicRecord,
    pub created: bool,
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
        return Ok(TopicFound {
            record,
            created: true,
        });
    }
    for op in answer.op_responses() {
        if let TxnOpResponse::Get(got) = op {
            if let Some(kv) = got.kvs().first() {
                return Ok(TopicFound {
                    record: parse_topic(&topic_key, kv.value())?,
                    created: false,
                });
            }
        }
    }
    // Created and deleted between our compare and our read: rare; the caller may retry.
    Err(ClusterError::Raced(name))
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
