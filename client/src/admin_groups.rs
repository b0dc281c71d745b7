//! The group calls of [`Admin`]: list groups, describe one with its lag.

use serde::Deserialize;

use shardlog_wire::consumer::validate_group;

use super::Admin;
use crate::ClientError;

/// A group as `list_groups` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupSummary {
    pub name: String,
    /// Live members (0 for a group known only by its committed offsets).
    pub members: usize,
}

/// A group as `describe_group` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupDescription {
    pub group: String,
    pub members: Vec<GroupMember>,
    /// Every partition the group reads or has committed, by topic and index.
    pub partitions: Vec<GroupPartition>,
}

/// A live member and the partitions assigned to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupMember {
    pub id: String,
    pub partitions: Vec<TopicPartition>,
}

/// A partition by topic and index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

/// One partition of a group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupPartition {
    pub topic: String,
    pub partition: u32,
    /// The member it is assigned to, if any.
    pub owner: Option<String>,
    /// The committed offset (the next to read), if any.
    #[serde(deserialize_with = "opt_i64")]
    pub committed: Option<i64>,
    /// One past the partition's last record, if the topic exists.
    #[serde(deserialize_with = "opt_i64")]
    pub end: Option<i64>,
    /// Records after the committed offset.
    #[serde(deserialize_with = "opt_i64")]
    pub lag: Option<i64>,
}

pub use shardlog_wire::reset::ResetTo;

#[derive(Deserialize)]
struct ResetJson {
    partitions: Vec<ResetPartitionJson>,
}

#[derive(Deserialize)]
struct ResetPartitionJson {
    partition: u32,
    #[serde(deserialize_with = "opt_i64")]
    offset: Option<i64>,
}

#[derive(Deserialize)]
struct GroupList {
    groups: Vec<GroupSummary>,
}

/// 64-bit values come as decimal strings (or null).
fn opt_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

impl Admin {
    /// Every group the broker knows (with members, or committed offsets on disk), by name.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>, ClientError> {
        let list: GroupList = self.call("GET", "/v1/groups", b"").await?;
        Ok(list.groups)
    }

    /// Moves `group`'s committed offsets in every partition of `topic`; returns each
    /// partition's new offset. Refused ([`ClientError::Http`] 409) while the group has live
    /// members.
    pub async fn reset_group(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
    ) -> Result<Vec<(u32, i64)>, ClientError> {
        validate_group(group).map_err(|e| ClientError::Invalid(e.to_string()))?;
        shardlog_wire::startup::validate_topic(topic)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let to = to
            .to_query()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let path = format!("/v1/groups/{group}/reset?topic={topic}&to={to}");
        let r: ResetJson = self.call("POST", &path, b"").await?;
        Ok(r.partitions
            .into_iter()
            .map(|p| (p.partition, p.offset.unwrap_or(0)))
            .collect())
    }

    /// A group's members, their partitions, and per partition its committed offset, end and
    /// lag. A group with neither members nor committed offsets is [`ClientError::Http`] 404.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        validate_group(group).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.call("GET", &format!("/v1/groups/{group}"), b"").await
    }
}
