//! Groups as the admin API describes them: members and their partitions from the
//! coordinator, and for every partition the group reads or has committed, the committed
//! offset against the partition's end (read from its owning shard): the lag. And resets of a
//! group's offsets, with targets computed from the partitions' bounds here.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures_util::future::join_all;

use super::coordinator::{Coordinator, COORDINATOR_SHARD};
use super::group::MemberView;
use super::ConsumerError;
use crate::shard::{ReadError, Shard, TopicState};

/// One partition of a group: who reads it, where the group is, where the log ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: u32,
    /// The member it is assigned to, if any.
    pub owner: Option<String>,
    /// The group's committed offset (the next to read), if any.
    pub committed: Option<i64>,
    /// One past the partition's last record, if the topic still exists.
    pub end: Option<i64>,
}

impl PartitionLag {
    /// Records after the committed offset (all of them when nothing is committed yet).
    pub fn lag(&self) -> Option<i64> {
        Some((self.end? - self.committed.unwrap_or(0)).max(0))
    }
}

/// A group, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    pub members: Vec<MemberView>,
    /// By topic, then partition.
    pub partitions: Vec<PartitionLag>,
}

/// Every group with its member count (those only on disk have none).
pub async fn list_groups(shard: &Rc<Shard>) -> Result<Vec<(String, usize)>, ConsumerError> {
    shard
        .submit_to(COORDINATOR_SHARD, |core| async move {
            Coordinator::on(&core)?.list_groups().await
        })
        .await?
}

/// Describes `group`: [`ConsumerError::NoSuchGroup`] when it has neither members nor
/// committed offsets.
pub async fn describe_group(
    shard: &Rc<Shard>,
    group: &str,
) -> Result<GroupDescription, ConsumerError> {
    let name = group.to_string();
    let view = shard
        .submit_to(COORDINATOR_SHARD, move |core| async move {
            Coordinator::on(&core)?.describe_group(&name).await
        })
        .await??;
    let mut lags: BTreeMap<(String, u32), PartitionLag> = BTreeMap::new();
    for m in &view.members {
        for (t, j) in &m.partitions {
            entry(&mut lags, t, *j).owner = Some(m.id.clone());
        }
    }
    for ((t, j), off) in &view.committed {
        entry(&mut lags, t, *j).committed = Some(*off);
    }
    // Ends from the owning shards (in cluster mode from the partitions' leaders), all at
    // once; a topic that no longer exists, or a leader that is down, gives none.
    let ends = join_all(lags.keys().map(|(t, j)| async move {
        let topic = shard.existing_topic(t).await.ok()?;
        if *j >= topic.layout.partitions() {
            return None;
        }
        bounds_at_leader(shard, &topic, *j)
            .await
            .ok()
            .map(|(_, end)| end)
    }))
    .await;
    let partitions = lags
        .into_values()
        .zip(ends)
        .map(|(mut p, end)| {
            p.end = end;
            p
        })
        .collect();
    Ok(GroupDescription {
        group: group.to_string(),
        members: view.members,
        partitions,
    })
}

pub use crate::wire::reset::ResetTo;

/// Partition `j`'s first and next offsets: here, or in cluster mode at its leader.
async fn bounds_at_leader(
    shard: &Rc<Shard>,
    topic: &TopicState,
    j: u32,
) -> Result<(i64, i64), ReadError> {
    if let Some(cluster) = crate::cluster::installed() {
        if let Some(o) = cluster.offsets_at_leader(&topic.name, j, 0).await? {
            return Ok((o.first_offset, o.next_offset));
        }
    }
    shard.bounds(topic, j).await
}

/// Resets `group`'s offsets in every partition of `topic`; returns (partition, offset) for
/// each. Refused ([`ConsumerError::GroupActive`]) while the group has live members.
pub async fn reset_group(
    shard: &Rc<Shard>,
    group: &str,
    topic: &str,
    to: ResetTo,
) -> Result<Vec<(u32, i64)>, ConsumerError> {
    let state = shard.existing_topic(topic).await?;
    let found = join_all((0..state.layout.partitions()).map(|j| {
        let state = state.clone();
        async move {
            let at_leader = match (crate::cluster::installed(), to) {
                (Some(c), ResetTo::Time(t_us)) => c.offsets_at_leader(&state.name, j, t_us).await?,
                _ => None,
            };
            let offset = match (to, at_leader) {
                (ResetTo::Time(_), Some(o)) => o.offset,
                (ResetTo::Time(t_us), None) => shard.offset_for_time(&state, j, t_us).await?.offset,
                _ => {
                    let (first, end) = bounds_at_leader(shard, &state, j).await?;
                    match to {
                        ResetTo::Earliest | ResetTo::Time(_) => first,
                        ResetTo::Latest => end,
                        ResetTo::Offset(n) => n.clamp(first, end),
                    }
                }
            };
            Ok::<_, ReadError>((j, offset))
        }
    }))
    .await;
    let mut targets = Vec::with_capacity(found.len());
    for f in found {
        targets.push(f?);
    }
    let positions: Vec<_> = targets
        .iter()
        .map(|&(j, off)| ((topic.to_string(), j), off))
        .collect();
    let name = group.to_string();
    shard
        .submit_to(COORDINATOR_SHARD, move |core| async move {
            Coordinator::on(&core)?.reset_group(&name, positions).await
        })
        .await??;
    Ok(targets)
}

fn entry<'a>(
    lags: &'a mut BTreeMap<(String, u32), PartitionLag>,
    topic: &str,
    partition: u32,
) -> &'a mut PartitionLag {
    lags.entry((topic.to_string(), partition))
        .or_insert_with(|| PartitionLag {
            topic: topic.to_string(),
            partition,
            owner: None,
            committed: None,
            end: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_committed_offset_or_the_start() {
        let p = |committed, end| PartitionLag {
            topic: "t".into(),
            partition: 0,
            owner: None,
            committed,
            end,
        };
        assert_eq!(p(Some(10), Some(25)).lag(), Some(15));
        assert_eq!(p(None, Some(25)).lag(), Some(25));
        assert_eq!(p(Some(30), Some(25)).lag(), Some(0));
        assert_eq!(p(Some(3), None).lag(), None);
    }
}
