//! What must hold after a power cut: the recovered image against the recorded run.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::workload::{body_for, parse_body, Run};

/// One partition as recovery left it.
#[derive(Debug, Default)]
pub struct RecoveredPartition {
    pub start: i64,
    pub next: i64,
    /// (offset, body), in offset order.
    pub records: Vec<(i64, Vec<u8>)>,
}

/// What the broker's start-up code recovered from an image.
#[derive(Debug, Default)]
pub struct Recovered {
    /// By (topic, partition).
    pub partitions: BTreeMap<(String, u32), RecoveredPartition>,
    /// Committed offsets by group, then (topic, partition).
    pub offsets: HashMap<String, BTreeMap<(String, u32), i64>>,
}

/// Every violation of the guarantees by `rec`, the recovery of a cut after op `cut`.
pub fn violations(run: &Run, cut: u64, rec: &Recovered) -> Vec<String> {
    let mut out = Vec::new();
    // Messages by id: (topic, partition, key, frame index).
    let mut seen_ids: HashSet<u64> = HashSet::new();
    for ((topic, j), p) in &rec.partitions {
        let mut last_by_key: HashMap<Vec<u8>, (u64, i64)> = HashMap::new();
        let mut expect = p.start;
        for (offset, body) in &p.records {
            if *offset < expect {
                out.push(format!("{topic}/{j}: offset {offset} out of order"));
            }
            expect = offset + 1;
            let Some(id) = parse_body(body) else {
                out.push(format!("{topic}/{j}@{offset}: a record never produced"));
                continue;
            };
            let Some(m) = run.messages.get(id as usize) else {
                out.push(format!("{topic}/{j}@{offset}: unknown id {id}"));
                continue;
            };
            if body_for(id, &m.key) != *body {
                out.push(format!("{topic}/{j}@{offset}: body of id {id} differs"));
            }
            if m.topic != *topic || m.partition != *j {
                out.push(format!(
                    "{topic}/{j}@{offset}: id {id} was produced to {}/{}",
                    m.topic, m.partition
                ));
            }
            if !seen_ids.insert(id) {
                out.push(format!("{topic}/{j}@{offset}: id {id} appears twice"));
            }
            if let Some(acked) = m.acked_offset.filter(|_| m.acked_at <= cut) {
                if acked != *offset {
                    out.push(format!(
                        "{topic}/{j}: id {id} acknowledged at {acked}, recovered at {offset}"
                    ));
                }
            }
            if !m.key.is_empty() {
                if let Some((prev, at)) = last_by_key.insert(m.key.clone(), (id, *offset)) {
                    if prev > id {
                        out.push(format!(
                            "{topic}/{j}: key {:?} out of order: id {prev}@{at} before id {id}@{offset}",
                            String::from_utf8_lossy(&m.key)
                        ));
                    }
                }
            }
        }
        if let Some((last, _)) = p.records.last() {
            if *last >= p.next {
                out.push(format!(
                    "{topic}/{j}: record {last} at or past the end {}",
                    p.next
                ));
            }
        }
    }
    // Every acknowledged message, unless retention deleted its segment.
    for (id, m) in run.messages.iter().enumerate() {
        let Some(acked) = m.acked_offset.filter(|_| m.acked_at <= cut) else {
            continue;
        };
        let key = (m.topic.clone(), m.partition);
        match rec.partitions.get(&key) {
            None => out.push(format!(
                "{}/{}: acknowledged id {id} lost with its whole partition",
                m.topic, m.partition
            )),
            Some(p) if acked >= p.start && !seen_ids.contains(&(id as u64)) => out.push(format!(
                "{}/{}: acknowledged id {id} at offset {acked} lost (log {}..{})",
                m.topic, m.partition, p.start, p.next
            )),
            Some(_) => {}
        }
    }
    // Committed offsets: never past the recovered end; never older than a commit that was
    // acknowledged before the cut.
    let mut durable: HashMap<(String, (String, u32)), i64> = HashMap::new();
    for c in run.commits.iter().filter(|c| c.at_op <= cut) {
        for (k, off) in &c.positions {
            durable.insert((c.group.clone(), k.clone()), *off);
        }
    }
    for (group, offsets) in &rec.offsets {
        for (k, off) in offsets {
            let end = rec.partitions.get(k).map_or(0, |p| p.next);
            if *off > end {
                out.push(format!(
                    "group {group}: committed {off} for {}/{} past the recovered end {end}",
                    k.0, k.1
                ));
            }
        }
    }
    for ((group, k), off) in &durable {
        let got = rec.offsets.get(group).and_then(|o| o.get(k));
        if got.is_none_or(|g| g < off) {
            out.push(format!(
                "group {group}: commit of {off} for {}/{} acknowledged, recovered {got:?}",
                k.0, k.1
            ));
        }
    }
    out
}
