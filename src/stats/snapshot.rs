//! What a scrape collects: plain data (`Send`), one [`ShardSnapshot`] per shard, merged into
//! one [`MetricsSnapshot`].

use super::histogram::HistogramSnapshot;
use super::{Protocol, RequestCounts, RequestType, FRAME_RESULTS};

/// Everything a scrape reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// One entry per shard that answered, by shard id.
    pub shards: Vec<ShardSnapshot>,
    /// Consumer lag, computed by the coordinator's shard (0).
    pub lag: Vec<LagSample>,
    /// Consumer groups, from the coordinator's shard (0).
    pub groups: Option<GroupStats>,
}

/// The coordinator's groups and the work its rebalances did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Groups with at least one live member (what `--max-groups` bounds).
    pub live_groups: u64,
    /// Groups held in memory: live ones, and emptied ones whose offsets are being saved.
    pub groups_in_memory: u64,
    /// Live consumers, over every group.
    pub consumers: u64,
    /// Partitions given a new owner by rebalances, since start.
    pub rebalance_moves: u64,
    /// Steps rebalances took (members and partitions visited, index updates), since start.
    pub rebalance_steps: u64,
}

/// One shard's metrics at the time of the scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardSnapshot {
    pub shard: usize,
    /// Framed responses by result (slot 0 `ok`, slot `1 + code` ERROR with that code).
    pub frames: [u64; FRAME_RESULTS],
    /// Requests by protocol and type (see [`RequestCounts`]).
    pub requests: RequestCounts,
    pub chunk_write: HistogramSnapshot,
    pub fsync: HistogramSnapshot,
    pub ack: HistogramSnapshot,
    pub poll: HistogramSnapshot,
    pub produce_queue: HistogramSnapshot,
    pub chunk_compress: HistogramSnapshot,
    /// How long a task that became ready waited for the shard's executor to poll it (the
    /// runtime's probe, `rt::sched_probe`).
    pub sched_delay: HistogramSnapshot,
    /// Connections open now, per server (`framed`, `http`).
    pub open_connections: Vec<(&'static str, u64)>,
    /// Bytes of frames read but not yet acknowledged.
    pub buffered_bytes: u64,
    /// The shard's budget for them (`--shard-buffer-bytes`).
    pub buffer_capacity: u64,
    /// The zstd level its chunks are compressed at now (moves with `--zstd-min-level`).
    pub zstd_level: i64,
    /// Per topic, by name.
    pub topics: Vec<TopicSnapshot>,
}

/// One topic on one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicSnapshot {
    pub topic: String,
    pub messages_in: u64,
    pub raw_bytes_in: u64,
    pub compressed_bytes_in: u64,
    pub chunk_bytes_written: u64,
    pub chunks_written: u64,
    pub append_errors: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
    pub retention_segments_deleted: u64,
    pub retention_bytes_deleted: u64,
    pub partitions_recovered: u64,
    pub recovery_chunks_verified: u64,
    pub recovery_torn_tails: u64,
    pub recovery_torn_bytes: u64,
    pub recovery_chunks_cut: u64,
    pub recovery_corrupt_chunks: u64,
    pub recovery_indexes_rebuilt: u64,
    /// Gauges, from the partition logs this shard owns (open ones).
    pub partitions_owned: u64,
    pub segments: u64,
    pub disk_bytes: u64,
}

impl TopicSnapshot {
    /// Adds `o`'s counters and gauges to this one (for totals across shards).
    pub fn add(&mut self, o: &TopicSnapshot) {
        self.messages_in += o.messages_in;
        self.raw_bytes_in += o.raw_bytes_in;
        self.compressed_bytes_in += o.compressed_bytes_in;
        self.chunk_bytes_written += o.chunk_bytes_written;
        self.chunks_written += o.chunks_written;
        self.append_errors += o.append_errors;
        self.messages_out += o.messages_out;
        self.bytes_out += o.bytes_out;
        self.retention_segments_deleted += o.retention_segments_deleted;
        self.retention_bytes_deleted += o.retention_bytes_deleted;
        self.partitions_recovered += o.partitions_recovered;
        self.recovery_chunks_verified += o.recovery_chunks_verified;
        self.recovery_torn_tails += o.recovery_torn_tails;
        self.recovery_torn_bytes += o.recovery_torn_bytes;
        self.recovery_chunks_cut += o.recovery_chunks_cut;
        self.recovery_corrupt_chunks += o.recovery_corrupt_chunks;
        self.recovery_indexes_rebuilt += o.recovery_indexes_rebuilt;
        self.partitions_owned += o.partitions_owned;
        self.segments += o.segments;
        self.disk_bytes += o.disk_bytes;
    }
}

/// One group's lag on one partition: `end - committed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LagSample {
    pub group: String,
    pub topic: String,
    pub partition: u32,
    pub committed: i64,
    pub end: i64,
}

impl LagSample {
    /// Messages written but not yet committed by the group (never negative).
    pub fn lag(&self) -> i64 {
        (self.end - self.committed).max(0)
    }
}

impl MetricsSnapshot {
    /// A snapshot holding one shard's metrics (and the lag, when that shard computed it).
    pub fn of_shard(shard: ShardSnapshot, lag: Vec<LagSample>) -> MetricsSnapshot {
        MetricsSnapshot {
            shards: vec![shard],
            lag,
            groups: None,
        }
    }

    /// Takes in another shard's snapshot. Shards stay apart (they are labelled by id), kept
    /// in id order; a shard already present is replaced. Lag samples are kept sorted by
    /// group, topic and partition, without duplicates.
    pub fn merge(&mut self, other: MetricsSnapshot) {
        for s in other.shards {
            match self.shards.binary_search_by_key(&s.shard, |x| x.shard) {
                Ok(i) => self.shards[i] = s,
                Err(i) => self.shards.insert(i, s),
            }
        }
        if other.groups.is_some() {
            self.groups = other.groups;
        }
        self.lag.extend(other.lag);
        self.lag.sort_by(|a, b| {
            (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition))
        });
        self.lag.dedup_by(|a, b| {
            (&a.group, &a.topic, a.partition) == (&b.group, &b.topic, b.partition)
        });
    }

    /// A topic's counters summed over every shard (zero if no shard knows it).
    pub fn topic_total(&self, topic: &str) -> TopicSnapshot {
        let mut t = TopicSnapshot {
            topic: topic.to_string(),
            ..TopicSnapshot::default()
        };
        for s in &self.shards {
            for x in s.topics.iter().filter(|x| x.topic == topic) {
                t.add(x);
            }
        }
        t
    }

    /// Requests of type `t` by `protocol`, summed over every shard.
    pub fn requests_total(&self, protocol: Protocol, t: RequestType) -> u64 {
        self.shards
            .iter()
            .map(|s| s.requests[protocol as usize][t as usize])
            .sum()
    }

    /// Framed responses with result slot `i` summed over every shard.
    pub fn frames_total(&self, i: usize) -> u64 {
        self.shards.iter().map(|s| s.frames[i]).sum()
    }

    /// A histogram summed over every shard.
    pub fn histogram_total(
        &self,
        pick: impl Fn(&ShardSnapshot) -> &HistogramSnapshot,
    ) -> HistogramSnapshot {
        let mut h = HistogramSnapshot::default();
        for s in &self.shards {
            h.merge(pick(s));
        }
        h
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stats::{ShardMetrics, TopicMetrics};

    /// A shard snapshot with some of everything.
    pub(crate) fn sample_shard(id: usize, topics: &[(&str, u64)]) -> ShardSnapshot {
        let m = ShardMetrics::default();
        m.frame_ok();
        m.frame_ok();
        m.frame_error(crate::wire::ErrorCode::BadRequest);
        m.request(Protocol::Framed, RequestType::Produce);
        m.request(Protocol::Framed, RequestType::Startup);
        m.ack.record_us(120);
        m.chunk_write.record_us(900);
        m.fsync.record_us(2_000);
        m.poll.record_us(7_000_000);
        m.produce_queue.record_us(400);
        m.chunk_compress.record_us(1_500);
        ShardSnapshot {
            shard: id,
            frames: m.frames(),
            requests: m.requests(),
            chunk_write: m.chunk_write.snapshot(),
            fsync: m.fsync.snapshot(),
            ack: m.ack.snapshot(),
            poll: m.poll.snapshot(),
            produce_queue: m.produce_queue.snapshot(),
            chunk_compress: m.chunk_compress.snapshot(),
            sched_delay: {
                let h = crate::stats::Histogram::default();
                h.record_us(30);
                h.snapshot()
            },
            open_connections: vec![("framed", 3), ("http", 1)],
            buffered_bytes: 1024,
            buffer_capacity: 1 << 20,
            zstd_level: 1,
            topics: topics
                .iter()
                .map(|&(name, n)| {
                    let t = TopicMetrics::default();
                    t.chunk_written(n, n * 100, n * 10, 4096);
                    TopicSnapshot {
                        segments: 1,
                        disk_bytes: 4096,
                        partitions_owned: 2,
                        ..t.snapshot(name)
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn merge_keeps_shards_apart_in_order_and_totals_add_up() {
        let lag = |g: &str, p: u32| LagSample {
            group: g.into(),
            topic: "t".into(),
            partition: p,
            committed: 5,
            end: 9,
        };
        let mut all = MetricsSnapshot::of_shard(sample_shard(2, &[("a", 10)]), vec![]);
        all.merge(MetricsSnapshot::of_shard(
            sample_shard(0, &[("a", 5), ("b", 1)]),
            vec![lag("g2", 0), lag("g1", 1)],
        ));
        all.merge(MetricsSnapshot::of_shard(sample_shard(1, &[]), vec![]));
        assert_eq!(
            all.shards.iter().map(|s| s.shard).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(all.lag[0].group, "g1");
        assert_eq!(all.lag[1].lag(), 4);
        let a = all.topic_total("a");
        assert_eq!(
            (a.messages_in, a.raw_bytes_in, a.chunks_written),
            (15, 1500, 2)
        );
        assert_eq!((a.segments, a.disk_bytes, a.partitions_owned), (2, 8192, 4));
        assert_eq!(all.topic_total("b").messages_in, 1);
        assert_eq!(all.topic_total("none").messages_in, 0);
        assert_eq!(
            all.requests_total(Protocol::Framed, RequestType::Produce),
            3
        );
        assert_eq!(all.requests_total(Protocol::Http, RequestType::Produce), 0);
        assert_eq!(all.frames_total(0), 6);
        let ack = all.histogram_total(|s| &s.ack);
        assert_eq!((ack.count(), ack.sum_us), (3, 360));
        // A shard answering twice replaces its first answer.
        all.merge(MetricsSnapshot::of_shard(
            sample_shard(1, &[("c", 1)]),
            vec![],
        ));
        assert_eq!(all.shards.len(), 3);
        assert_eq!(all.topic_total("c").messages_in, 1);
    }

    #[test]
    fn lag_is_never_negative() {
        let l = LagSample {
            committed: 10,
            end: 4,
            ..LagSample::default()
        };
        assert_eq!(l.lag(), 0);
    }
}
