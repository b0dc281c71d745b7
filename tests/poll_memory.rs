//! Issue 13 item 12: a poll's memory respects `--max-poll-bytes`. A poll over many cold
//! partitions holding one big chunk each must not read them all at once (every cold read
//! allocates at least one whole chunk); it stops issuing reads once the budget is spent, and
//! draining still delivers everything exactly once.

mod common;

use std::collections::HashSet;

use common::consumer::ConsumerClient;
use common::framed::FramedProducer;
use common::{incompressible, keys_per_partition, peak_rss, reset_peak, rss, Broker};
use shardlog::ring::TopicLayout;
use shardlog::wire::consumer::StartPolicy;

const PARTITIONS: u32 = 40;
const BODY: usize = 4 << 20;
/// Peak growth allowed for one poll of 1 MiB (reading all 40 chunks at once took ~160 MiB).
/// Partitions open on first use, so the first polls also recover (decompress) the cold
/// partitions they reach, two at a time per shard: ~25 MiB measured, most of it recovery.
const BOUND: u64 = 40 << 20;

#[test]
fn a_poll_over_cold_big_chunks_stays_near_its_budget_and_drains_exactly_once() {
    let ranges = PARTITIONS.to_string();
    let mut broker = Broker::start_with(
        1,
        &[
            "--ranges-per-shard",
            &ranges,
            "--max-frame-size",
            "8MiB",
            "--hot-tail",
            "0",
            "--max-poll-bytes",
            "1MiB",
        ],
    );
    let mut p = FramedProducer::startup(broker.framed, "big");
    let keys = keys_per_partition(&TopicLayout::new(1, PARTITIONS));
    for (i, k) in keys.iter().enumerate() {
        let b = incompressible(format!("m{i}|").as_bytes(), BODY, i as u64 + 7);
        assert_eq!(p.produce(k.as_bytes(), &[&b]), Ok(()));
    }
    drop(p);
    // Cold: nothing of it in memory any more.
    broker.restart();
    let pid = broker.pid();

    let mut c = ConsumerClient::connect(broker.framed);
    c.register("c", "g", &["big"], StartPolicy::Earliest)
        .unwrap();
    let reset = reset_peak(pid);
    let before = rss(pid);
    let first = c.poll("c", None).unwrap();
    let peak = peak_rss(pid);
    let growth = peak.saturating_sub(before);
    eprintln!(
        "first poll: VmRSS before {} MiB, VmHWM after {} MiB, growth {} MiB (peak reset: {reset})",
        before >> 20,
        peak >> 20,
        growth >> 20
    );
    assert_eq!(first.len(), 1, "one 4 MiB chunk fills a 1 MiB poll");
    assert!(
        growth <= BOUND,
        "one poll grew the broker by {} MiB (bound {} MiB)",
        growth >> 20,
        BOUND >> 20
    );

    // Drain: every partition's message exactly once; each poll stays within the bound.
    let mut got: Vec<String> = Vec::new();
    let mut record = |items: &[common::consumer::Item]| {
        for it in items {
            for (_, _, b) in &it.records {
                assert_eq!(b.len(), BODY);
                let tag = b.split(|&c| c == b'|').next().unwrap();
                got.push(String::from_utf8(tag.to_vec()).unwrap());
            }
        }
    };
    record(&first);
    let mut empty = 0;
    let mut polls = 1;
    let mut worst = growth;
    while empty < 2 {
        reset_peak(pid);
        let before = rss(pid);
        let items = c.poll("c", None).unwrap();
        worst = worst.max(peak_rss(pid).saturating_sub(before));
        polls += 1;
        assert!(polls < 200, "draining does not end");
        if items.is_empty() {
            empty += 1;
        } else {
            empty = 0;
            record(&items);
        }
    }
    eprintln!("{polls} polls, worst growth {} MiB", worst >> 20);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(
        got.len(),
        PARTITIONS as usize,
        "every message once: {got:?}"
    );
    assert_eq!(unique.len(), PARTITIONS as usize, "no duplicates: {got:?}");
    if reset {
        assert!(
            worst <= BOUND,
            "a poll grew the broker by {} MiB",
            worst >> 20
        );
    }
}
