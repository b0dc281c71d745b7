//! How `consume` prints records: `text` (each value as stored, one per line) or `json` (one
//! object per line; values that are not UTF-8 in base64, marked, never mangled).

use std::collections::HashMap;
use std::io::Write;

use shardlog_client::wire::base64;
use shardlog_client::wire::ring::PartitionId;
use shardlog_client::{Admin, Record};

use crate::cli::Format;
use crate::error::CtlError;

/// Partition names (the broker's generation, token, range triple) → their index in the
/// topic's layout, from the admin API's description of the topic.
#[derive(Default)]
pub struct PartitionIndex(HashMap<PartitionId, u32>);

impl PartitionIndex {
    /// The index of `topic`'s partitions; empty when the HTTP port cannot describe it (then
    /// records name their partition by the triple).
    pub async fn fetch(http: &str, topic: &str) -> PartitionIndex {
        let Ok(d) = Admin::new(http).describe_topic(topic).await else {
            return PartitionIndex::default();
        };
        let map = d
            .partitions
            .iter()
            .map(|p| {
                let id = PartitionId {
                    gen: d.layout.gen,
                    token: p.token,
                    range_index: p.range_index,
                };
                (id, p.partition)
            })
            .collect();
        PartitionIndex(map)
    }
}

/// Writes records in one format.
pub struct Printer {
    format: Format,
    partitions: PartitionIndex,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Printer {
    pub fn new(format: Format, partitions: PartitionIndex) -> Printer {
        Printer {
            format,
            partitions,
            out: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    /// Prints the records and flushes, so what was printed is out before it is committed.
    pub fn print(&mut self, records: &[Record]) -> Result<(), CtlError> {
        let mut line = Vec::new();
        for r in records {
            line.clear();
            match self.format {
                Format::Text => line.extend_from_slice(&r.value),
                Format::Json => self.json(r, &mut line),
            }
            line.push(b'\n');
            self.out.write_all(&line).map_err(CtlError::Write)?;
        }
        self.out.flush().map_err(CtlError::Write)
    }

    fn json(&self, r: &Record, out: &mut Vec<u8>) {
        let topic = serde_json::Value::from(r.topic.as_str());
        out.extend_from_slice(format!("{{\"topic\":{topic},\"partition\":").as_bytes());
        match self.partitions.0.get(&r.partition) {
            Some(j) => out.extend_from_slice(j.to_string().as_bytes()),
            None => out.extend_from_slice(
                format!(
                    "{{\"gen\":{},\"token\":\"{}\",\"rangeIndex\":{}}}",
                    r.partition.gen, r.partition.token, r.partition.range_index
                )
                .as_bytes(),
            ),
        }
        out.extend_from_slice(
            format!(
                ",\"offset\":{},\"timestamp\":{},\"value\":",
                r.offset, r.timestamp_us
            )
            .as_bytes(),
        );
        match std::str::from_utf8(&r.value) {
            Ok(text) => out.extend_from_slice(serde_json::Value::from(text).to_string().as_bytes()),
            Err(_) => {
                out.push(b'"');
                base64::encode_into(&r.value, out);
                out.extend_from_slice(b"\",\"encoding\":\"base64\"");
            }
        }
        out.push(b'}');
    }
}

/// A table for `describe` commands: right-aligned columns as wide as their widest cell, so
/// numbers line up.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&width).map(|(c, w)| format!("{c:>w$}")).collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &'static [u8]) -> Record {
        Record {
            topic: "t\"q".into(),
            partition: PartitionId {
                gen: 1,
                token: i64::MIN,
                range_index: 1,
            },
            offset: 7,
            timestamp_us: 42,
            value: bytes::Bytes::from_static(value),
        }
    }

    fn json(p: &Printer, r: &Record) -> String {
        let mut out = Vec::new();
        p.json(r, &mut out);
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    #[test]
    fn json_names_the_partition_by_index_when_known_and_by_triple_when_not() {
        let r = record(b"hi \"there\"");
        let mut p = Printer::new(Format::Json, PartitionIndex::default());
        assert_eq!(
            json(&p, &r),
            r#"{"topic":"t\"q","partition":{"gen":1,"token":"-9223372036854775808","rangeIndex":1},"offset":7,"timestamp":42,"value":"hi \"there\""}"#
        );
        p.partitions = PartitionIndex(HashMap::from([(r.partition, 5)]));
        assert!(json(&p, &r).contains(r#""partition":5,"#));
    }

    #[test]
    fn json_values_that_are_not_utf8_are_base64_marked() {
        let p = Printer::new(Format::Json, PartitionIndex::default());
        let text = json(&p, &record(b"bin\xff\xfe"));
        assert!(
            text.ends_with(r#""value":"Ymlu//4=","encoding":"base64"}"#),
            "{text}"
        );
    }
}
