//! `atomix.log.LogService`: the seed's log service over one partition of a topic.
//!
//! Request metadata picks the partition: `topic` (default `default`), then `partition-key`
//! (routed like a framed producer's key, so one key's messages share a partition whichever
//! interface wrote them) or `partition` (an index into the topic's partitions). With neither,
//! the call addresses partition 0, so an un-keyed gRPC log has one total order (in cluster
//! mode an un-keyed Produce writes a partition this broker leads instead).

//!
//! - [`produce`]: `Produce`, streamed values appended in order, answered once durable.
//! - [`consume`]: `Consume`, records streamed from an offset, then tailed.

mod consume;
mod produce;

pub use consume::consume;
pub use produce::produce;

use std::rc::Rc;

use bytes::Bytes;

use crate::error::Classify;
use crate::shard::TopicState;
use crate::wire::startup::{validate_topic, DEFAULT_TOPIC};

use super::status::Status;
use super::CallCtx;

/// The longest partition key (the framed body's key length is a u8).
const MAX_KEY_LEN: usize = 255;

/// The partition a call addresses.
pub struct Target {
    pub topic: Rc<TopicState>,
    pub partition: u32,
    /// The partition key, stored in the frame bodies like a framed producer's.
    pub key: Bytes,
    /// Cluster mode, a call naming neither a key nor a partition: the partition a Produce
    /// writes instead of 0, one this broker leads (no hop), as for a keyless framed producer.
    pub keyless: Option<u32>,
}

/// Reads `topic`, `partition-key` and `partition` from the metadata.
pub async fn target(ctx: &CallCtx) -> Result<Target, Status> {
    let md = &ctx.metadata;
    let text = |name: &str| -> Result<Option<&str>, Status> {
        md.get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    Status::invalid_argument(format!("metadata '{name}' is not printable ASCII"))
                })
            })
            .transpose()
    };
    let topic = text("topic")?.unwrap_or(DEFAULT_TOPIC);
    validate_topic(topic).map_err(|e| Status::invalid_argument(e.to_string()))?;
    // In cluster mode the topic is etcd's (so keys map to partitions as on every broker).
    let (state, keyless) = match crate::cluster::installed() {
        None => (ctx.shard.topic(topic).await?, None),
        Some(_) => {
            let (state, keyless) = crate::cluster::session::open(&ctx.shard, topic)
                .await
                .map_err(|e| Status::new(super::status::code(e.class()), e.to_string()))?;
            (state, Some(keyless))
        }
    };
    let partitions = state.layout.partitions();
    let key = md
        .get("partition-key")
        .map(|v| Bytes::copy_from_slice(v.as_bytes()))
        .unwrap_or_default();
    let partition = match (key.is_empty(), text("partition")?) {
        (false, Some(_)) => {
            return Err(Status::invalid_argument(
                "give either partition-key or partition, not both",
            ))
        }
        (false, None) if key.len() > MAX_KEY_LEN => {
            return Err(Status::invalid_argument(format!(
                "partition-key is {} bytes long; the limit is {MAX_KEY_LEN}",
                key.len()
            )))
        }
        (false, None) => state.layout.partition_of_key(&key),
        (true, Some(p)) => match p.trim().parse::<u32>() {
            Ok(j) if j < partitions => j,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "partition '{p}' is not a partition of topic '{topic}', which has \
                     partitions 0 to {}",
                    partitions - 1
                )))
            }
        },
        (true, None) => 0,
    };
    let keyless = keyless.filter(|_| key.is_empty() && md.get("partition").is_none());
    Ok(Target {
        topic: state,
        partition,
        key,
        keyless,
    })
}
