//! Creating a topic in the cluster: one transaction, guarded by the topic key not existing
//! (`create_revision == 0`), writes the layout and the first partition records; if another
//! broker created it first, the transaction reads what it wrote instead. So two brokers that
//! create the same topic at once agree on one layout. etcd takes at most 128 operations per
//! transaction (`--max-txn-ops`), so the partition records past the first [`PUTS_PER_TXN`]
//! follow in further transactions, each guarded by the topic key still being the one created
//! (its create revision) and by every key it writes not existing yet. Whoever finds a topic
//! whose records stop short (its creator died between transactions) writes the missing ones
//! the same way; no broker opens a topic before all its partition records are there.

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp, TxnOpResponse,
};

use super::keys::{Key, Keys};
use super::records::{plan_missing, plan_topic, BrokerRecord, PartitionRecord, TopicRecord};
use super::ClusterError;

/// Partition records written per transaction: with the compares on each key and on the
/// topic's key, well under etcd's default cap of 128 operations per list.
pub const PUTS_PER_TXN: usize = 100;

/// Attempts at writing a half-created topic's missing records before giving up (another
/// broker writing them at the same time makes an attempt fail; the next finds fewer missing).
const COMPLETE_ATTEMPTS: usize = 4;

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
        Some(kv) => {
            let found = TopicFound {
                record: parse_topic(&topic_key, kv.value())?,
                created: false,
                create_revision: kv.create_revision(),
            };
            complete(&mut client, &keys, &name, &found).await?;
            Ok(found)
        }
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
        let found = TopicFound {
            record: parse_topic(&topic_key, kv.value())?,
            created: false,
            create_revision: kv.create_revision(),
        };
        complete(&mut client, &keys, &name, &found).await?;
        return Ok(found);
    }
    let live = live_brokers(&mut client, &keys).await?;
    let members = brokers_under(&mut client, keys.known_prefix()).await?;
    let (record, parts) = plan_topic(
        &live,
        &members,
        partitions,
        ranges_per_shard,
        replication_factor,
    )?;
    let mut writes = vec![TxnOp::put(topic_key.clone(), to_json(&record), None)];
    for (j, p) in (0u32..).zip(parts.iter().take(PUTS_PER_TXN)) {
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
        let found = TopicFound {
            record,
            created: true,
            create_revision,
        };
        if parts.len() > PUTS_PER_TXN {
            // A creator that dies here leaves the rest to whoever finds the topic next.
            crate::failpoint::hit("cluster.topic_create");
            complete(&mut client, &keys, &name, &found).await?;
        }
        return Ok(found);
    }
    for op in answer.op_responses() {
        if let TxnOpResponse::Get(got) = op {
            if let Some(kv) = got.kvs().first() {
                let found = TopicFound {
                    record: parse_topic(&topic_key, kv.value())?,
                    created: false,
                    create_revision: kv.create_revision(),
                };
                complete(&mut client, &keys, &name, &found).await?;
                return Ok(found);
            }
        }
    }
    // Created and deleted between our compare and our read: rare; the caller may retry.
    Err(ClusterError::Raced(name))
}

/// Writes the partition records `found` lacks (a creation that stopped between its
/// transactions, or this broker's own creation past the first transaction), placed over the
/// brokers up now. Each transaction is guarded by the topic key's create revision (the topic
/// was not deleted and created again meanwhile) and by each key not existing yet (another
/// broker completing it at the same time wins; its records are never overwritten).
async fn complete(
    client: &mut Client,
    keys: &Keys,
    name: &str,
    found: &TopicFound,
) -> Result<(), ClusterError> {
    let n = found.record.partitions();
    for _ in 0..COMPLETE_ATTEMPTS {
        let present = client
            .get(
                keys.partitions_prefix(name),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        let mut have = vec![false; n as usize];
        for kv in present.kvs() {
            if let Some(Key::Partition(_, j)) = kv.key_str().ok().and_then(|k| keys.parse(k)) {
                if let Some(slot) = have.get_mut(j as usize) {
                    *slot = true;
                }
            }
        }
        let missing: Vec<u32> = (0..n).filter(|&j| !have[j as usize]).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let live = live_brokers(client, keys).await?;
        let records = plan_missing(&live, &found.record, &missing)?;
        let mut all_written = true;
        for chunk in records.chunks(PUTS_PER_TXN) {
            if !put_new(client, keys, name, found.create_revision, chunk).await? {
                all_written = false;
                break;
            }
        }
        if all_written {
            tracing::info!(
                topic = name,
                partitions = missing.len(),
                "wrote the partition records the topic lacked"
            );
            return Ok(());
        }
    }
    Err(ClusterError::Raced(name.to_string()))
}

/// One transaction: `records` put, if the topic key is still the one created at
/// `create_revision` and none of their keys exists. Whether it was applied.
async fn put_new(
    client: &mut Client,
    keys: &Keys,
    name: &str,
    create_revision: i64,
    records: &[(u32, PartitionRecord)],
) -> Result<bool, ClusterError> {
    let mut guards = vec![Compare::create_revision(
        keys.topic(name),
        CompareOp::Equal,
        create_revision,
    )];
    let mut puts = Vec::with_capacity(records.len());
    for (j, record) in records {
        let key = keys.partition(name, *j);
        guards.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
        puts.push(TxnOp::put(key, to_json(record), None));
    }
    let answer = client.txn(Txn::new().when(guards).and_then(puts)).await?;
    Ok(answer.succeeded())
}

/// The registrations of the brokers up now.
async fn live_brokers(client: &mut Client, keys: &Keys) -> Result<Vec<BrokerRecord>, ClusterError> {
    brokers_under(client, keys.live_prefix()).await
}

/// The broker registrations under `prefix` (live ones, or every broker's last).
async fn brokers_under(
    client: &mut Client,
    prefix: String,
) -> Result<Vec<BrokerRecord>, ClusterError> {
    Ok(client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect())
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
