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

use super::histogram::HistogramSnapshot;
use super::snapshot::{MetricsSnapshot, ShardSnapshot, TopicSnapshot};
use super::{frame_result_name, RequestType};

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
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
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
        m.encode_family(&labels)?.encode_gauge(&v)?;
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
        "Framed PRODUCE: from the frame read to its answer queued (durable or failed).",
        |s| &s.ack,
    ),
    (
        "shardlog_poll_latency_seconds",
        "Framed POLL: from the frame read to its response queued (long-poll waits included).",
        |s| &s.poll,
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
                RequestType::ALL.iter().map(move |t| {
                    let mut l = shard_label(s);
                    l.push(("protocol", "framed".to_string()));
                    l.push(("type", t.name().to_string()));
                    (l, s.requests[*t as usize])
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
        let lag_labels = |l: &super::LagSample| -> Labels {
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
pub(crate) mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;
    use crate::metrics::snapshot::tests::sample_shard;
    use crate::metrics::LagSample;

    /// One sample line: name, labels, value.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Sample {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub value: f64,
    }

    /// A small parser for the text format: `# TYPE` lines into a map, samples into a list.
    /// Panics on anything it does not understand, so a malformed line fails the test.
    pub(crate) fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, t) = rest.split_once(' ').expect("TYPE name type");
                assert!(
                    types.insert(name.to_string(), t.to_string()).is_none(),
                    "{line}"
                );
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let labels = body
                        .split("\",")
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once("=\"").expect("label=\"value\"");
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
            };
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad metric name {name}"
            );
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        (types, samples)
    }

    /// The value of the one sample named `name` with (at least) `labels`.
    pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    fn sample_snapshot() -> MetricsSnapshot {
        let mut snap = MetricsSnapshot::of_shard(
            sample_shard(0, &[("orders", 40), ("audit", 2)]),
            vec![LagSample {
                group: "g1".into(),
                topic: "orders".into(),
                partition: 3,
                committed: 10,
                end: 25,
            }],
        );
        snap.merge(MetricsSnapshot::of_shard(
            sample_shard(1, &[("orders", 60)]),
            vec![],
        ));
        snap
    }

    #[test]
    fn every_family_is_typed_and_every_series_is_unique() {
        let text = encode(sample_snapshot());
        let (types, samples) = parse(&text);
        assert!(!text.contains("# EOF"));
        let mut seen = HashSet::new();
        for s in &samples {
            assert!(
                seen.insert((s.name.clone(), format!("{:?}", s.labels))),
                "{s:?}"
            );
            // In 0.0.4 a sample is named as its family, or the family plus a histogram suffix.
            let family = types.iter().find(|(f, t)| {
                s.name == **f
                    || (t.as_str() == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|suf| s.name == format!("{f}{suf}")))
            });
            assert!(family.is_some(), "sample {} has no TYPE", s.name);
        }
        for (f, t) in &types {
            assert_eq!(t == "counter", f.ends_with("_total"), "{f} {t}");
        }
        assert_eq!(types["shardlog_messages_in_total"], "counter");
        assert_eq!(types["shardlog_disk_bytes"], "gauge");
        assert_eq!(types["shardlog_ack_latency_seconds"], "histogram");
        assert_eq!(types["shardlog_consumer_lag"], "gauge");
    }

    #[test]
    fn values_and_labels_round_trip() {
        let (_, s) = parse(&encode(sample_snapshot()));
        let orders0 = [("shard", "0"), ("topic", "orders")];
        assert_eq!(value(&s, "shardlog_messages_in_total", &orders0), 40.0);
        assert_eq!(
            value(
                &s,
                "shardlog_messages_in_total",
                &[("shard", "1"), ("topic", "orders")]
            ),
            60.0
        );
        assert_eq!(value(&s, "shardlog_raw_bytes_in_total", &orders0), 4000.0);
        assert_eq!(
            value(&s, "shardlog_compressed_bytes_in_total", &orders0),
            400.0
        );
        assert_eq!(value(&s, "shardlog_chunks_written_total", &orders0), 1.0);
        assert_eq!(value(&s, "shardlog_segments", &orders0), 1.0);
        assert_eq!(value(&s, "shardlog_disk_bytes", &orders0), 4096.0);
        let ok0 = [("shard", "0"), ("result", "ok")];
        assert_eq!(value(&s, "shardlog_frames_total", &ok0), 2.0);
        let bad = [("shard", "1"), ("result", "bad-request")];
        assert_eq!(value(&s, "shardlog_frames_total", &bad), 1.0);
        let produce = [("shard", "0"), ("protocol", "framed"), ("type", "produce")];
        assert_eq!(value(&s, "shardlog_requests_total", &produce), 1.0);
        let commit = [("shard", "0"), ("type", "commit")];
        assert_eq!(value(&s, "shardlog_requests_total", &commit), 0.0);
        assert_eq!(
            value(
                &s,
                "shardlog_open_connections",
                &[("shard", "1"), ("protocol", "framed")]
            ),
            3.0
        );
        assert_eq!(
            value(&s, "shardlog_buffered_bytes", &[("shard", "0")]),
            1024.0
        );
        let lag = [("group", "g1"), ("topic", "orders"), ("partition", "3")];
        assert_eq!(value(&s, "shardlog_consumer_lag", &lag), 15.0);
        assert_eq!(value(&s, "shardlog_consumer_committed_offset", &lag), 10.0);
        assert_eq!(
            value(
                &s,
                "shardlog_partition_end_offset",
                &[("topic", "orders"), ("partition", "3")]
            ),
            25.0
        );
    }

    #[test]
    fn histograms_are_cumulative_in_seconds() {
        let (_, s) = parse(&encode(sample_snapshot()));
        let sh = [("shard", "0")];
        let name = "shardlog_ack_latency_seconds";
        assert_eq!(value(&s, &format!("{name}_count"), &sh), 1.0);
        assert!((value(&s, &format!("{name}_sum"), &sh) - 120e-6).abs() < 1e-12);
        let bucket = |le: &str| value(&s, &format!("{name}_bucket"), &[("shard", "0"), ("le", le)]);
        assert_eq!(bucket("0.0001"), 0.0, "120 µs is above 100 µs");
        assert_eq!(bucket("0.00025"), 1.0);
        assert_eq!(bucket("5.0"), 1.0, "cumulative");
        assert_eq!(bucket("+Inf"), 1.0);
        // 7 s lands only in +Inf.
        let poll = |le: &str| {
            value(
                &s,
                "shardlog_poll_latency_seconds_bucket",
                &[("shard", "1"), ("le", le)],
            )
        };
        assert_eq!((poll("5.0"), poll("+Inf")), (0.0, 1.0));
        let buckets = s
            .iter()
            .filter(|x| x.name == "shardlog_fdatasync_seconds_bucket" && x.labels["shard"] == "0")
            .count();
        assert_eq!(buckets, crate::metrics::histogram::SLOTS);
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let om = encode_openmetrics(sample_snapshot());
        assert!(om.ends_with("# EOF\n"));
        let (types, samples) = parse(&om);
        assert_eq!(types["shardlog_frames"], "counter");
        assert!(!types.contains_key("shardlog_frames_total"));
        // The same samples as the 0.0.4 text.
        let (_, prom) = parse(&encode(sample_snapshot()));
        assert_eq!(samples, prom);
        assert!(om.contains("# HELP shardlog_frames Framed responses"));
        let prom_text = encode(sample_snapshot());
        assert!(prom_text.contains("# HELP shardlog_frames_total Framed responses"));
    }

    #[test]
    fn an_empty_snapshot_still_describes_every_family() {
        let (types, samples) = parse(&encode(MetricsSnapshot::default()));
        assert!(samples.is_empty());
        assert!(types.len() >= 30, "{types:?}");
    }
}
