//! The check after every restart: each partition read back from its first offset with FETCH
//! (`PartitionReader`), then held against the ledger and the consumer groups. Offsets must be
//! dense and in order; every record a message of this run, never one the client refused; every
//! acknowledged message present, and every message once seen staying at the (partition,
//! offset) where it was first found; a second copy only of a message the framed producer may
//! have sent again (sent before a kill, answered after it); keyed messages in their key's
//! partition and, per producer and key, in sequence order (unless the late one was retried).

use std::collections::HashMap;
use std::time::Duration;

use shardlog_client::{Admin, PartitionReader, ReaderConfig};
use shardlog_wire::ring::TopicLayout;

use super::groups::{pack, GroupTracker, UNREADABLE};
use super::ledger::{key_name, Ledger, MessageId, State, NO_KEY, SOURCES};
use super::ChaosError;

/// One partition as read back: ids by offset from `first`.
#[derive(Debug, Default, Clone)]
pub struct PartitionLog {
    pub first: i64,
    pub ids: Vec<u64>,
}

impl PartitionLog {
    pub fn end(&self) -> i64 {
        self.first + self.ids.len() as i64
    }
}

/// What one check found.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<String>,
    /// Second (and later) copies of retried messages.
    pub duplicates: u64,
    /// Messages of one key that landed after later ones because they were retried.
    pub reordered: u64,
    /// Acknowledged messages found exactly where they were first found.
    pub verified: u64,
    /// Records read back.
    pub records: u64,
}

/// Reads every partition of `topic` back, checking offsets are dense and in order.
pub async fn read_back(
    framed: &str,
    admin: &Admin,
    topic: &str,
    violations: &mut Vec<String>,
) -> Result<Vec<PartitionLog>, ChaosError> {
    let described = admin.describe_topic(topic).await?;
    let mut logs = Vec::with_capacity(described.partitions.len());
    for part in &described.partitions {
        let mut config = ReaderConfig::new(framed, topic, part.partition, part.first_offset);
        config.max_wait = Duration::ZERO;
        let mut reader = PartitionReader::connect(config).await?;
        let mut log = PartitionLog {
            first: part.first_offset,
            ids: Vec::new(),
        };
        let mut empty_answers = 0;
        while log.end() < part.next_offset {
            let batch = reader.next_batch().await?;
            if batch.is_empty() {
                empty_answers += 1;
                if empty_answers > 50 {
                    violations.push(format!(
                        "partition {}: reads end at offset {}, the broker describes {} records up to {}",
                        part.partition,
                        log.end(),
                        part.next_offset - part.first_offset,
                        part.next_offset
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            for r in batch {
                if r.offset != log.end() {
                    violations.push(format!(
                        "partition {}: offset {} read where {} was next (offsets not dense)",
                        part.partition,
                        r.offset,
                        log.end()
                    ));
                    return Ok(logs);
                }
                log.ids.push(pack(MessageId::parse(&r.value)));
            }
        }
        logs.push(log);
    }
    Ok(logs)
}

/// Where one message was found in this read-back.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    copies: u32,
    first: Option<(u32, i64)>,
}

/// Holds the logs against the ledger (pinning each message found for the first time).
pub fn check_log(ledger: &mut Ledger, logs: &[PartitionLog], layout: &TopicLayout) -> Findings {
    let mut f = Findings::default();
    let mut seen: Vec<Vec<Seen>> = ledger
        .producers
        .iter()
        .map(|l| vec![Seen::default(); l.len()])
        .collect();
    // Per (producer, key): the highest sequence found so far in offset order.
    let mut last_seq: HashMap<(u8, u8), u64> = HashMap::new();
    for (p, log) in logs.iter().enumerate() {
        let p = p as u32;
        for (i, &packed) in log.ids.iter().enumerate() {
            let offset = log.first + i as i64;
            f.records += 1;
            let at = format!("partition {p} offset {offset}");
            if packed == UNREADABLE {
                f.violations
                    .push(format!("{at}: not a message of this run"));
                continue;
            }
            let (producer, seq) = ((packed >> 56) as u8, packed & ((1 << 56) - 1));
            let Some(entry) = ledger
                .producers
                .get(producer as usize)
                .and_then(|l| l.get(seq as usize))
            else {
                f.violations.push(format!(
                    "{at}: producer {producer} seq {seq} was never sent"
                ));
                continue;
            };
            let source = SOURCES[producer as usize];
            let what = format!("{at}: {} seq {seq}", source.name());
            if entry.state == State::NotSent {
                f.violations
                    .push(format!("{what}: the client never sent it"));
            }
            let s = &mut seen[producer as usize][seq as usize];
            s.copies += 1;
            if s.copies > 1 {
                continue;
            }
            s.first = Some((p, offset));
            if entry.key != NO_KEY {
                let home = layout.partition_of_key(key_name(entry.key).as_bytes());
                if home != p {
                    f.violations.push(format!(
                        "{what}: key-{} belongs to partition {home}",
                        entry.key
                    ));
                }
            }
            if source.ordered() {
                let last = last_seq.entry((producer, entry.key)).or_insert(seq);
                if seq < *last {
                    if source.retries() && entry.spanned_crash() {
                        f.reordered += 1;
                    } else {
                        f.violations.push(format!(
                            "{what}: after seq {} of the same key (order broken)",
                            *last
                        ));
                    }
                }
                *last = (*last).max(seq);
            }
        }
    }
    for (producer, list) in ledger.producers.iter_mut().enumerate() {
        let source = SOURCES[producer];
        for (seq, entry) in list.iter_mut().enumerate() {
            let s = seen[producer][seq];
            let what = format!("{} seq {seq} ({:?})", source.name(), entry.state);
            match (s.first, entry.pinned) {
                (None, Some((p, o))) => f.violations.push(format!(
                    "{what}: LOST: was at partition {p} offset {o}, now absent"
                )),
                (None, None) if entry.state == State::Acked => f
                    .violations
                    .push(format!("{what}: LOST: acknowledged, never found")),
                (Some(now), Some(pin)) if now != pin => f.violations.push(format!(
                    "{what}: moved from partition {} offset {} to partition {} offset {}",
                    pin.0, pin.1, now.0, now.1
                )),
                (Some(now), None) => entry.pinned = Some(now),
                _ => {}
            }
            if s.copies > 1 {
                if source.retries() && entry.spanned_crash() {
                    f.duplicates += s.copies as u64 - 1;
                } else {
                    f.violations.push(format!(
                        "{what}: DUPLICATE: {} copies, never retried by the client",
                        s.copies
                    ));
                }
            }
            if s.first.is_some() && entry.state == State::Acked {
                f.verified += 1;
            }
        }
    }
    f
}

/// Whether `group` has been delivered every record of the logs.
pub fn group_caught_up(group: &GroupTracker, logs: &[PartitionLog]) -> bool {
    logs.iter()
        .enumerate()
        .all(|(p, log)| group.delivered_len(p as u32) as i64 >= log.end())
}

/// Holds what `group` was delivered against the logs: the same record at every offset.
pub fn check_group(group: &GroupTracker, logs: &[PartitionLog]) -> Vec<String> {
    let mut out = Vec::new();
    for (p, log) in logs.iter().enumerate() {
        let p = p as u32;
        let have = group.delivered_len(p) as i64;
        if have < log.end() {
            out.push(format!(
                "partition {p}: delivered up to offset {have}, the log holds {} (records not delivered)",
                log.end()
            ));
        }
        for (i, &id) in log.ids.iter().enumerate() {
            let offset = log.first + i as i64;
            match group.delivered_at(p, offset as usize) {
                Some(got) if got != id => {
                    out.push(format!("partition {p} offset {offset}: delivered another record than the log holds"));
                    break;
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::chaos::ledger::Source;

    fn layout() -> TopicLayout {
        TopicLayout {
            gen: 1,
            token_ranges: 1,
            ranges_per_token_range: 1,
        }
    }

    fn log_of(ids: &[MessageId]) -> Vec<PartitionLog> {
        vec![PartitionLog {
            first: 0,
            ids: ids.iter().map(|i| pack(Some(*i))).collect(),
        }]
    }

    #[test]
    fn a_clean_log_verifies_and_pins_every_message() {
        let mut l = Ledger::new();
        let ids = l.issue(Source::GrpcUnkeyed, NO_KEY, 3, 0).unwrap();
        for id in &ids {
            l.answer(*id, State::Acked, 0);
        }
        let f = check_log(&mut l, &log_of(&ids), &layout());
        assert!(f.violations.is_empty(), "{:?}", f.violations);
        assert_eq!(f.verified, 3);
        assert_eq!(l.get(ids[2]).unwrap().pinned, Some((0, 2)));
        // The same message later at another offset has moved; one gone is lost.
        let f = check_log(&mut l, &log_of(&[ids[0], ids[2]]), &layout());
        assert_eq!(f.violations.len(), 2, "{:?}", f.violations);
    }

    #[test]
    fn duplicates_and_reorders_are_allowed_only_for_retried_framed_messages() {
        let mut l = Ledger::new();
        let framed = l.issue(Source::FramedKeyless, NO_KEY, 1, 0).unwrap()[0];
        l.answer(framed, State::Acked, 1); // answered after a kill: may have been resent
        let grpc = l.issue(Source::GrpcUnkeyed, NO_KEY, 2, 1).unwrap();
        l.answer(grpc[0], State::Maybe, 1);
        l.answer(grpc[1], State::Acked, 1);
        let f = check_log(&mut l, &log_of(&[framed, grpc[0], framed]), &layout());
        assert_eq!(f.duplicates, 1);
        assert!(
            f.violations.iter().any(|v| v.contains("LOST")),
            "{:?}",
            f.violations
        );
        let mut l2 = Ledger::new();
        let g = l2.issue(Source::GrpcUnkeyed, NO_KEY, 2, 0).unwrap();
        let f = check_log(&mut l2, &log_of(&[g[1], g[0], g[0]]), &layout());
        assert!(
            f.violations.iter().any(|v| v.contains("order")),
            "{:?}",
            f.violations
        );
        assert!(
            f.violations.iter().any(|v| v.contains("DUPLICATE")),
            "{:?}",
            f.violations
        );
    }
}
