//! Tests of the Prometheus text encoding (`encode.rs`).

use std::collections::{BTreeMap, HashSet};

use super::*;
use crate::stats::snapshot::tests::sample_shard;
use crate::stats::LagSample;

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
    assert_eq!(types["shardlog_sched_delay_seconds"], "histogram");
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
    let commit = [("shard", "0"), ("protocol", "framed"), ("type", "commit")];
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
    assert_eq!(value(&s, "shardlog_zstd_level", &[("shard", "0")]), 1.0);
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
    let sched = |le: &str| {
        value(
            &s,
            "shardlog_sched_delay_seconds_bucket",
            &[("shard", "0"), ("le", le)],
        )
    };
    assert_eq!(
        (sched("0.00005"), sched("+Inf")),
        (1.0, 1.0),
        "30 µs ≤ 50 µs"
    );
    let buckets = s
        .iter()
        .filter(|x| x.name == "shardlog_fdatasync_seconds_bucket" && x.labels["shard"] == "0")
        .count();
    assert_eq!(buckets, crate::stats::histogram::SLOTS);
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

#[test]
fn group_counts_and_rebalance_work_come_from_the_coordinator() {
    let mut snap = sample_snapshot();
    snap.groups = Some(crate::stats::GroupStats {
        live_groups: 3,
        groups_in_memory: 4,
        consumers: 9,
        rebalance_moves: 17,
        rebalance_steps: 120,
    });
    let (types, samples) = parse(&encode(snap));
    assert_eq!(types["shardlog_consumer_rebalance_moves_total"], "counter");
    let value = |name: &str| value(&samples, name, &[]);
    assert_eq!(value("shardlog_consumer_groups"), 3.0);
    assert_eq!(value("shardlog_consumer_groups_in_memory"), 4.0);
    assert_eq!(value("shardlog_consumers"), 9.0);
    assert_eq!(value("shardlog_consumer_rebalance_moves_total"), 17.0);
    assert_eq!(value("shardlog_consumer_rebalance_steps_total"), 120.0);
}
