//! Reading by time: the offset of the first record at or after a timestamp in one partition,
//! asked of the shard that owns it (storage's time index does the work, see
//! `storage::time_index`).

use std::rc::Rc;

use super::error::ReadError;
use super::{Shard, TopicState};
use crate::ring::ShardOwnership;

/// Where a time falls in a partition, with the partition's bounds at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOffset {
    /// The first offset whose record timestamp is ≥ the time asked (in offset order); the
    /// next offset when every record is older; the first offset when the time is before all.
    pub offset: i64,
    /// The first offset still available (after retention).
    pub first_offset: i64,
    /// The offset the next record will get.
    pub next_offset: i64,
}

impl Shard {
    /// The offset of the first record of partition `j` whose timestamp is ≥ `t_us` (μs since
    /// the epoch), asked of the partition's owning shard. Opens (and recovers) the partition
    /// if it is not open.
    pub async fn offset_for_time(
        self: &Rc<Self>,
        topic: &TopicState,
        j: u32,
        t_us: i64,
    ) -> Result<TimeOffset, ReadError> {
        topic.check_partition(j)?;
        let owner = topic.layout.owner(j, self.shards);
        let (name, layout, incarnation) = (topic.name.clone(), topic.layout, topic.incarnation);
        self.submit_to(owner, move |s| async move {
            let topic = s.install_topic(&name, layout, incarnation)?;
            let writer = topic.writer(j, s.id)?;
            writer.check_not_deleted()?;
            let log = writer.open().await.map_err(ReadError::Storage)?;
            let offset = log.offset_for_time(t_us).await?;
            Ok(TimeOffset {
                offset,
                first_offset: log.start_offset(),
                next_offset: log.next_offset(),
            })
        })
        .await?
    }
}
