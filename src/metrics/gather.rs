//! Collecting a scrape: this shard's snapshot, every other shard's through
//! `Shard::submit_to` (each taken in a task of its own on that shard, so its mesh loop never
//! waits), and consumer lag from the coordinator's shard.

use std::rc::Rc;

use futures_util::future::join_all;

use crate::consumer::Coordinator;
use crate::shard::Shard;
use crate::stats::{LagSample, MetricsSnapshot, ShardSnapshot};

/// Gathers every shard's metrics and encodes them in the Prometheus text format. Called on
/// the shard serving the scrape. A shard that cannot be reached is left out (and logged).
pub async fn gather(shard: &Rc<Shard>) -> String {
    super::encode::encode(gather_snapshot(shard).await)
}

/// Gathers every shard's metrics, merged.
pub async fn gather_snapshot(shard: &Rc<Shard>) -> MetricsSnapshot {
    let peers = (0..shard.shards)
        .filter(|&p| p != shard.id)
        .map(|peer| async move {
            shard
                .submit_to(peer, |s| async move { local_snapshot(&s).await })
                .await
                .map_err(|e| tracing::warn!(peer, error = %e, "metrics: shard not reachable"))
                .ok()
        });
    let (mut snap, others) =
        futures_lite::future::zip(local_snapshot(shard), join_all(peers)).await;
    for s in others.into_iter().flatten() {
        snap.merge(s);
    }
    snap
}

/// This shard's metrics now; on shard 0 also the consumer lag of every group.
pub async fn local_snapshot(shard: &Shard) -> MetricsSnapshot {
    let m = &shard.metrics;
    let mut topics: Vec<_> = shard
        .topic_states()
        .iter()
        .map(|t| {
            let mut s = t.metrics.snapshot(&t.name);
            for w in t.owned() {
                // A partition closed to bound the open files counts as it was at its close.
                let (segments, bytes) = w.disk_stats();
                s.partitions_owned += 1;
                s.segments += segments;
                s.disk_bytes += bytes;
            }
            s
        })
        .collect();
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    let capacity = shard.config.shard_buffer_bytes;
    let own = ShardSnapshot {
        shard: shard.id,
        frames: m.frames(),
        requests: m.requests(),
        chunk_write: m.chunk_write.snapshot(),
        fsync: m.fsync.snapshot(),
        ack: m.ack.snapshot(),
        poll: m.poll.snapshot(),
        produce_queue: m.produce_queue.snapshot(),
        chunk_compress: m.chunk_compress.snapshot(),
        // Scrapes run on the shard's own thread, whose probe histogram this is.
        sched_delay: crate::rt::sched_probe::snapshot(),
        open_connections: m.open_connections(),
        buffered_bytes: capacity.saturating_sub(shard.buffer.available()),
        buffer_capacity: capacity,
        // The encoder every partition of this shard shares (scrapes run on its thread).
        zstd_level: crate::storage::chunk::ChunkEncoder::for_this_thread(shard.config.zstd_level)
            .map(|e| i64::from(e.borrow().level()))
            .unwrap_or(i64::from(shard.config.zstd_level)),
        topics,
    };
    let (lag, groups) = match Coordinator::on(shard) {
        Ok(c) => (consumer_lag(shard, &c).await, Some(c.group_stats())),
        Err(_) => (Vec::new(), None),
    };
    let mut snap = MetricsSnapshot::of_shard(own, lag);
    snap.groups = groups;
    snap
}

/// Every committed offset against its partition's current end (read from the owning shard).
async fn consumer_lag(shard: &Shard, c: &Rc<Coordinator>) -> Vec<LagSample> {
    let reads = c
        .committed_offsets()
        .into_iter()
        .filter_map(|(group, (topic, partition), committed)| {
            let ts = shard.known_topic(&topic)?;
            (partition < ts.layout.partitions()).then_some((group, ts, partition, committed))
        })
        .map(|(group, ts, partition, committed)| async move {
            match shard.bounds(&ts, partition).await {
                Ok((_, end)) => Some(LagSample {
                    group,
                    topic: ts.name.clone(),
                    partition,
                    committed,
                    end,
                }),
                Err(e) => {
                    tracing::warn!(group, topic = %ts.name, partition, error = %e,
                        "metrics: cannot read the partition's end for consumer lag");
                    None
                }
            }
        });
    let mut lag: Vec<LagSample> = join_all(reads).await.into_iter().flatten().collect();
    lag.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    lag
}
