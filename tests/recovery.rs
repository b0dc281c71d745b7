//! Recovery against the real binary: a block zeroed in the middle of a partition's tail while
//! the broker is down must not let old records come back after newer ones (issue 13 item 2).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::framed::FramedProducer;
use common::{read_partition, read_topic, Broker};
use shardlog::storage::chunk::ALIGNMENT;
use shardlog::storage::{log_file_name, ChunkHeader};

/// The partition directories of `topic` that hold records.
fn partitions(data_dir: &Path, topic: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir.join(topic))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Positions of the chunk headers (head CRC valid, flags 0) at aligned positions of `seg`.
fn chunk_positions(seg: &[u8]) -> Vec<usize> {
    (0..seg.len())
        .step_by(ALIGNMENT as usize)
        .filter(|&p| matches!(ChunkHeader::parse(&seg[p..]), Ok(Some(h)) if h.flags == 0))
        .collect()
}

#[test]
fn a_zeroed_block_in_the_tail_brings_nothing_old_back() {
    let mut broker = Broker::start(1);
    let mut c = FramedProducer::startup(broker.framed, "rec");
    // One produce at a time: one chunk each.
    for i in 0..12 {
        let msgs: Vec<String> = (0..5).map(|m| format!("old-{i}-{m}")).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_bytes()).collect();
        assert_eq!(c.produce(b"", &refs), Ok(()));
    }
    drop(c);
    broker.kill9();

    // Where each record was acknowledged, read from a copy (opening recovers the files).
    let parts = partitions(&broker.data_dir, "rec");
    let scratch = tempfile::tempdir().unwrap();
    let mut acked: HashMap<Vec<u8>, (String, i64)> = HashMap::new();
    let mut zeroed = Vec::new();
    for p in &parts {
        let seg_path = p.join(log_file_name(0));
        let Ok(seg) = std::fs::read(&seg_path) else {
            continue;
        };
        let copy = scratch.path().join(p.file_name().unwrap());
        std::fs::create_dir(&copy).unwrap();
        std::fs::write(copy.join(log_file_name(0)), &seg).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        for (offset, _, body) in read_partition(&copy) {
            acked.insert(body, (name.clone(), offset));
        }
        // Zero the block of a chunk in the middle of the tail.
        let chunks = chunk_positions(&seg);
        if chunks.len() >= 4 {
            let at = chunks[chunks.len() / 2];
            let mut seg = seg;
            seg[at..at + ALIGNMENT as usize].fill(0);
            std::fs::write(&seg_path, &seg).unwrap();
            zeroed.push(name);
        }
    }
    assert_eq!(acked.len(), 60);
    assert!(!zeroed.is_empty(), "some partition got 4 chunks or more");

    // Restart, produce (less than what followed the zeroed block: with the old recovery the
    // rest came back after the new chunks, with offsets continuing theirs), crash, restart.
    broker.spawn();
    let mut c = FramedProducer::startup(broker.framed, "rec");
    for i in 0..2 {
        let msgs: Vec<String> = (0..5).map(|m| format!("new-{i}-{m}")).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_bytes()).collect();
        assert_eq!(c.produce(b"", &refs), Ok(()));
    }
    drop(c);
    broker.kill9();
    broker.spawn();
    broker.kill9();

    let stored = read_topic(&broker.data_dir, "rec");
    let mut by_part: HashMap<&str, Vec<&common::StoredRecord>> = HashMap::new();
    for r in &stored {
        by_part.entry(&r.partition_dir).or_default().push(r);
    }
    let mut new = 0;
    for (p, recs) in by_part {
        let mut seen_new = false;
        for w in recs.windows(2) {
            assert!(w[0].offset < w[1].offset, "{p}: offsets go back");
        }
        for r in recs {
            let body = String::from_utf8_lossy(&r.body).to_string();
            if body.starts_with("new-") {
                seen_new = true;
                new += 1;
            } else {
                assert!(!seen_new, "{p}: old record {body} after newer data");
                assert_eq!(
                    acked.get(&r.body),
                    Some(&(p.to_string(), r.offset)),
                    "{p}: {body} moved"
                );
            }
        }
    }
    assert_eq!(new, 10, "every new record survives");
    // Only the zeroed chunks' records are gone: the chunks after them were kept.
    let old = stored.len() - new;
    assert_eq!(old, 60 - 5 * zeroed.len(), "old records kept");
}
