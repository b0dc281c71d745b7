//! The JSON bodies of `GET /v1/topics` and `GET /v1/topics/{name}`. Pure encoding, apart from
//! the handlers so it can be tested without a broker.
//!
//! Field names are camelCase like the rest of the REST API. A partition's token goes out as a
//! decimal string: it is a full 64-bit integer, which JSON parsers that read numbers as
//! doubles (JavaScript's) would round.

use serde::Serialize;

use crate::consumer::topic_delete::TopicDeleted;
use crate::ring::TopicLayout;
use crate::shard::PartitionInfo;

#[derive(Serialize)]
struct TopicList<'a> {
    topics: Vec<TopicEntry<'a>>,
}

#[derive(Serialize)]
struct TopicEntry<'a> {
    name: &'a str,
    partitions: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Layout {
    gen: u32,
    token_ranges: u32,
    ranges_per_token_range: u32,
    partitions: u32,
}

#[derive(Serialize)]
struct Description<'a> {
    name: &'a str,
    layout: Layout,
    partitions: Vec<Partition>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Partition {
    partition: u32,
    token: String,
    range_index: u8,
    shard: usize,
    first_offset: i64,
    next_offset: i64,
    bytes: u64,
}

#[derive(Serialize)]
struct Deleted<'a> {
    topic: &'a str,
    deleted: bool,
    partitions: u32,
    groups: &'a [String],
}

/// `{"topic":..,"deleted":true,"partitions":N,"groups":[..]}`: what a deletion removed.
pub fn deleted(d: &TopicDeleted) -> String {
    to_json(&Deleted {
        topic: &d.topic,
        deleted: true,
        partitions: d.partitions,
        groups: &d.groups,
    })
}

/// `{"topics":[{"name":..,"partitions":N},..]}`, in the order given (the catalog's, by name).
pub fn list(topics: &[(String, TopicLayout)]) -> String {
    let body = TopicList {
        topics: topics
            .iter()
            .map(|(name, layout)| TopicEntry {
                name,
                partitions: layout.partitions(),
            })
            .collect(),
    };
    to_json(&body)
}

/// One topic: its layout and, per partition, its name (token, range index), owning shard,
/// offsets and bytes on disk.
pub fn describe(name: &str, layout: &TopicLayout, parts: &[PartitionInfo]) -> String {
    let body = Description {
        name,
        layout: Layout {
            gen: layout.gen,
            token_ranges: layout.token_ranges,
            ranges_per_token_range: layout.ranges_per_token_range,
            partitions: layout.partitions(),
        },
        partitions: parts
            .iter()
            .map(|p| {
                let id = layout.partition_id(p.partition);
                Partition {
                    partition: p.partition,
                    token: id.token.to_string(),
                    range_index: id.range_index,
                    shard: p.shard,
                    first_offset: p.first_offset,
                    next_offset: p.next_offset,
                    bytes: p.bytes,
                }
            })
            .collect(),
    };
    to_json(&body)
}

/// Serializing these plain structs cannot fail (string keys, no maps); an empty object is
/// the harmless answer if it ever did.
fn to_json<T: Serialize>(body: &T) -> String {
    serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_list_names_each_topic_with_its_partition_count() {
        let topics = vec![
            ("a\"b".to_string(), TopicLayout::new(2, 4)),
            ("orders".to_string(), TopicLayout::new(1, 3)),
        ];
        let v: Value = serde_json::from_str(&list(&topics)).unwrap();
        assert_eq!(
            v,
            json!({"topics": [
                {"name": "a\"b", "partitions": 8},
                {"name": "orders", "partitions": 3},
            ]})
        );
        assert_eq!(list(&[]), r#"{"topics":[]}"#);
    }

    #[test]
    fn a_deletion_says_what_it_removed() {
        let d = TopicDeleted {
            topic: "orders".into(),
            partitions: 8,
            groups: vec!["billing".into()],
        };
        let v: Value = serde_json::from_str(&deleted(&d)).unwrap();
        assert_eq!(
            v,
            json!({"topic": "orders", "deleted": true, "partitions": 8, "groups": ["billing"]})
        );
    }

    #[test]
    fn a_description_gives_the_layout_and_each_partition() {
        let layout = TopicLayout::new(2, 2);
        let parts: Vec<PartitionInfo> = (0..4)
            .map(|j| PartitionInfo {
                partition: j,
                shard: (j / 2) as usize,
                first_offset: 0,
                next_offset: 10 * j as i64,
                bytes: 4096 * j as u64,
            })
            .collect();
        let text = describe("orders", &layout, &parts);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["layout"],
            json!({"gen": 1, "tokenRanges": 2, "rangesPerTokenRange": 2, "partitions": 4})
        );
        assert_eq!(v["name"], "orders");
        let p = v["partitions"].as_array().unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(
            p[3],
            json!({"partition": 3, "token": "0", "rangeIndex": 1, "shard": 1,
                   "firstOffset": 0, "nextOffset": 30, "bytes": 12288})
        );
        // Partitions 0 and 1 share the first token range, which starts at the ring's start;
        // the token is a string, so no parser rounds it.
        assert_eq!(p[0]["token"], i64::MIN.to_string());
        assert_eq!(p[1]["token"], i64::MIN.to_string());
        assert_eq!(p[1]["rangeIndex"], 1);
    }
}
