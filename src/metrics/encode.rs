//! The Prometheus text exposition of a [`MetricsSnapshot`], written with `prometheus-client`:
//! the snapshot is a [`Collector`] that emits every family on each encode.
//!
//! Latencies are recorded in microseconds and exposed in seconds (`*_seconds`); counter
//! samples end in `_total`.
//!
//! Two flavours of the same samples:
//! - [`encode`], the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]), what `/metrics` serves
//!   by default: a counter's `# HELP`/`# TYPE` lines name it with its `_total` suffix, as its
//!   samples are named, and there is no `# EOF`.
//! - [`encode_openmetrics`], OpenMetrics 1.0 ([`OPENMETRICS_CONTENT_TYPE`]), exactly as
//!   `prometheus-client` writes it: counter families are named without `_total`, `# EOF` ends
//!   it. For a scraper that asks for it in `Accept`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::stats::histogram::HistogramSnapshot;
use crate::stats::snapshot::{MetricsSnapshot, ShardSnapshot, TopicSnapshot};
use crate::stats::{frame_result_name, Protocol, RequestType};

/// The content type of [`encode`]'s output on HTTP.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of [`encode_openmetrics`]'s output on HTTP.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// Encodes a snapshot in the OpenMetrics text format.
pub fn encode_openmetrics(snapshot: MetricsSnapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut out = String::with_capacity(32 << 10);
    // Writing into a String cannot fail, and the collector only fails when the writer does.
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("encoding metrics into a String");
    out
}

/// Encodes a snapshot in the Prometheus text format 0.0.4.
pub fn encode(snapshot: MetricsSnapshot) -> String {
    to_prometheus_text(&encode_openmetrics(snapshot))
}

/// Turns OpenMetrics text into the Prometheus 0.0.4 text format: a counter family `x`
/// (samples `x_total`) is described as `x_total`, and `# EOF` goes. Samples are unchanged.
fn to_prometheus_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len() + 8 * counters.len());
    for line in om.lines() {
        if line == "# EOF" {
            continue;
        }
        let described = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters.contains(name).then_some((p, name, tail))
        });
        match described {
            Some((p, name, tail)) => {
                out.push_str(p);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A scrape's snapshot, as `prometheus-client` sees it.
#[derive(Debug)]
pub struct SnapshotCollector(pub MetricsSnapshot);

fn shard_label(s: &ShardSnapshot) -> Labels {
    vec![("shard", s.shard.to_string())]
}

fn topic_labels(s: &ShardSnapshot, t: &TopicSnapshot) -> Labels {
    vec![("shard", s.shard.to_string()), ("topic", t.topic.clone())]
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            // A broker-wide value: `name 3`, not `name{} 3`.
            m.encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        } else {
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
    }
    Ok(())
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            m.encode_gauge(&v)?;
        } else {
            m.encode_family(&labels)?.encode_gauge(&v)?;
        }
    }
    Ok(())
}

fn histograms<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, &'a HistogramSnapshot)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
            h.sum_seconds(),
            h.count(),
            &h.buckets_seconds(),
            None,
        )?;
    }
    Ok(())
}

/// A per-shard-and-topic counter family.
type TopicField = fn(&TopicSnapshot) -> u64;

const TOPIC_COUNTERS: &[(&str, &str, TopicField)] = &[
    (
        "shardlog_messages_in",
        "Messages made durable (acknowledged), counted on the shard that owns the partition.",
        |t| t.messages_in,
    ),
    (
        "shardlog_raw_bytes_in",
        "Record bytes made durable, before compression (8-byte timestamp, 4-byte length and body per message).",
        |t| t.raw_bytes_in,
    ),
    (
        "shardlog_compressed_bytes_in",
        "Compressed (zstd) payload bytes of the chunks written.",
        |t| t.compressed_bytes_in,
    ),
    (
        "shardlog_chunk_bytes_written",
        "Bytes written to segment files for chunks, header and alignment padding included.",
        |t| t.chunk_bytes_written,
    ),
    (
        "shardlog_chunks_written",
        "Chunks written and made durable (one per group commit).",
        |t| t.chunks_written,
    ),
    (
        "shardlog_append_errors",
        "Chunks whose append failed (their frames were answered with an ERROR).",
        |t| t.append_errors,
    ),
    (
        "shardlog_messages_out",
        "Messages handed to consumers by polls, counted on the shard that served the poll.",
        |t| t.messages_out,
    ),
    (
        "shardlog_bytes_out",
        "Compressed chunk bytes handed to consumers by polls.",
        |t| t.bytes_out,
    ),
    (
        "shardlog_retention_deleted_segments",
        "Segments deleted by retention.",
        |t| t.retention_segments_deleted,
    ),
    (
        "shardlog_retention_deleted_bytes",
        "Bytes of segments deleted by retention.",
        |t| t.retention_bytes_deleted,
    ),
    (
        "shardlog_recovery_partitions",
        "Partitions opened (and recovered) since the broker started.",
        |t| t.partitions_recovered,
    ),
    (
        "shardlog_recovery_chunks_verified",
        "Chunks checked by recovery when partitions were opened.",
        |t| t.recovery_chunks_verified,
    ),
    (
        "shardlog_recovery_torn_tails",
        "Partitions whose last segment ended in an incomplete write that recovery cut.",
        |t| t.recovery_torn_tails,
    ),
    (
        "shardlog_recovery_torn_bytes",
        "Bytes cut from torn segment tails by recovery.",
        |t| t.recovery_torn_bytes,
    ),
    (
        "shardlog_recovery_chunks_cut",
        "Whole chunks among the bytes recovery cut: stale or out-of-order chunks after the log's end.",
        |t| t.recovery_chunks_cut,
    ),
    (
        "shardlog_recovery_corrupt_chunks",
        "Corrupt chunks found by recovery and refused (never served).",
        |t| t.recovery_corrupt_chunks,
    ),
    (
        "shardlog_recovery_indexes_rebuilt",
        "Segment indexes found missing or wrong by recovery and rewritten.",
        |t| t.recovery_indexes_rebuilt,
    ),
];

const TOPIC_GAUGES: &[(&str, &str, TopicField)] = &[
    (
        "shardlog_partitions",
        "Partitions of the topic owned by the shard and open.",
        |t| t.partitions_owned,
    ),
    (
        "shardlog_segments",
        "Segment files of the topic's partitions owned by the shard.",
        |t| t.segments,
    ),
    (
        "shardlog_disk_bytes",
        "Bytes in the segment files of the topic's partitions owned by the shard.",
        |t| t.disk_bytes,
    ),
];

type HistField = fn(&ShardSnapshot) -> &HistogramSnapshot;

const HISTOGRAMS: &[(&str, &str, HistField)] = &[
    (
        "shardlog_chunk_write_seconds",
        "Time to write one chunk to its segment (one O_DIRECT write).",
        |s| &s.chunk_write,
    ),
    (
        "shardlog_fdatasync_seconds",
        "Time of the fdatasync that makes a written chunk durable (durability fsync).",
        |s| &s.fsync,
    ),
    (
        "shardlog_ack_latency_seconds",
        "Produce (framed PRODUCE, REST produce, gRPC frame of values): from the request read to its answer (durable or failed).",
        |s| &s.ack,
    ),
    (
        "shardlog_poll_latency_seconds",
        "Poll (framed POLL, REST poll): from the request read to its response (long-poll waits included).",
        |s| &s.poll,
    ),
    (
        "shardlog_produce_queue_seconds",
        "Produce frame handed to its partition's writer to its chunk's compression starting (queued behind the chunk being written), per frame.",
        |s| &s.produce_queue,
    ),
    (
        "shardlog_chunk_compress_seconds",
        "Compressing one chunk (zstd, on the shard's core), per chunk.",
        |s| &s.chunk_compress,
    ),
    (
        "shardlog_sched_delay_seconds",
        "Scheduling delay: how long a task that became ready waited for the shard's executor to poll it (a probe wakes itself every 10 ms; disk and network waits are not included).",
        |s| &s.sched_delay,
    ),
];

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = &self.0;
        let shards = &snap.shards;
        counters(
            &mut enc,
            "shardlog_frames",
            "Framed responses sent, by result: ok, or the ERROR code's name.",
            shards.iter().flat_map(|s| {
                s.frames.iter().enumerate().map(move |(i, &v)| {
                    let mut l = shard_label(s);
                    l.push(("result", frame_result_name(i).to_string()));
                    (l, v)
                })
            }),
        )?;
        counters(
            &mut enc,
            "shardlog_requests",
            "Requests received, by protocol and type.",
            shards.iter().flat_map(|s| {
                Protocol::ALL.iter().flat_map(move |p| {
                    RequestType::ALL.iter().map(move |t| {
                        let mut l = shard_label(s);
                        l.push(("protocol", p.name().to_string()));
                        l.push(("type", t.name().to_string()));
                        (l, s.requests[*p as usize][*t as usize])
                    })
                })
            }),
        )?;
        for (name, help, field) in TOPIC_COUNTERS {
            counters(
                &mut enc,
                name,
                help,
                shards
                    .iter()
                    .flat_map(|s| s.topics.iter().map(move |t| (topic_labels(s, t), field(t)))),
            )?;
        }
        for (name, help, field) in TOPIC_GAUGES {
            gauges(
                &mut enc,
                name,
                help,
                shards.iter().flat_map(|s| {
                    s.topics
                        .iter()
                        .map(move |t| (topic_labels(s, t), field(t) as i64))
                }),
            )?;
        }
        for (name, help, field) in HISTOGRAMS {
            histograms(
                &mut enc,
                name,
                help,
                shards.iter().map(|s| (shard_label(s), field(s))),
            )?;
        }
        gauges(
            &mut enc,
            "shardlog_open_connections",
            "Client connections open now, by protocol.",
            shards.iter().flat_map(|s| {
                s.open_connections.iter().map(move |&(server, n)| {
                    let mut l = shard_label(s);
                    l.push(("protocol", server.to_string()));
                    (l, n as i64)
                })
            }),
        )?;
        gauges(
            &mut enc,
            "shardlog_buffered_bytes",
            "Bytes of produce frames read but not yet acknowledged (the shard's backpressure budget in use).",
            shards
                .iter()
                .map(|s| (shard_label(s), s.buffered_bytes as i64)),
        )?;
        gauges(
            &mut enc,
            "shardlog_buffer_capacity_bytes",
            "The shard's budget for unacknowledged produce bytes (--shard-buffer-bytes).",
            shards
                .iter()
                .map(|s| (shard_label(s), s.buffer_capacity as i64)),
        )?;
        gauges(
            &mut enc,
            "shardlog_zstd_level",
            "The zstd level the shard compresses chunks at now (--zstd-level, stepped down toward --zstd-min-level while the core is saturated).",
            shards.iter().map(|s| (shard_label(s), s.zstd_level)),
        )?;
        // Only the coordinator's shard reports groups; an empty snapshot has no samples.
        let groups = snap.groups;
        gauges(
            &mut enc,
            "shardlog_consumer_groups",
            "Consumer groups with at least one live member (bounded by --max-groups).",
            groups.map(|g| (Vec::new(), g.live_groups as i64)),
        )?;
        gauges(
            &mut enc,
            "shardlog_consumer_groups_in_memory",
            "Consumer groups held by the coordinator: live ones, and emptied ones whose offsets are being saved.",
            groups.map(|g| (Vec::new(), g.groups_in_memory as i64)),
        )?;
        gauges(
            &mut enc,
            "shardlog_consumers",
            "Live consumers, over every group.",
            groups.map(|g| (Vec::new(), g.consumers as i64)),
        )?;
        counters(
            &mut enc,
            "shardlog_consumer_rebalance_moves",
            "Partitions given a new owner by group rebalances (joins, leaves, expiries).",
            groups.map(|g| (Vec::new(), g.rebalance_moves)),
        )?;
        counters(
            &mut enc,
            "shardlog_consumer_rebalance_steps",
            "Steps group rebalances took (members and partitions visited, index updates): the work a rebalance costs.",
            groups.map(|g| (Vec::new(), g.rebalance_steps)),
        )?;
        let lag_labels = |l: &crate::stats::LagSample| -> Labels {
            vec![
                ("group", l.group.clone()),
                ("topic", l.topic.clone()),
                ("partition", l.partition.to_string()),
            ]
        };
        gauges(
            &mut enc,
            "shardlog_consumer_lag",
            "Messages in the partition after the group's committed offset (log end - committed).",
            snap.lag.iter().map(|l| (lag_labels(l), l.lag())),
        )?;
        gauges(
            &mut enc,
            "shardlog_consumer_committed_offset",
            "The group's committed offset in the partition.",
            snap.lag.iter().map(|l| (lag_labels(l), l.committed)),
        )?;
        // One end per partition, however many groups read it.
        let ends: std::collections::BTreeMap<(&str, u32), i64> = snap
            .lag
            .iter()
            .map(|l| ((l.topic.as_str(), l.partition), l.end))
            .collect();
        gauges(
            &mut enc,
            "shardlog_partition_end_offset",
            "One past the partition's last durable offset, for partitions a group has committed in.",
            ends.into_iter().map(|((topic, partition), end)| {
                let l = vec![("topic", topic.to_string()), ("partition", partition.to_string())];
                (l, end)
            }),
        )?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
pub(crate) mod tests;
