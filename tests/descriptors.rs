//! Descriptors are bounded by a flag, not by history (issue 13, item 13). A client writing to
//! hundreds of topics (every partition of each) must not make the broker hold a descriptor per
//! partition ever used: partitions are opened on first use and the least recently used idle
//! ones are closed past `--max-open-files` (per shard), while a well-behaved producer keeps
//! being answered. A restart under a low `RLIMIT_NOFILE` starts (partitions are not all
//! opened at start), serves every topic, and everything acknowledged is still readable.

mod common;

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use common::consumer::ConsumerClient;
use common::framed::FramedProducer;
use common::proc::open_fds;
use common::{keys_per_partition, peak_rss, Broker};
use shardlog::ring::TopicLayout;
use shardlog::wire::consumer::StartPolicy;

const SHARDS: usize = 2;
const RANGES: u32 = 2;
const TOPICS: usize = 300;
/// Per shard.
const MAX_OPEN_FILES: usize = 32;
/// Descriptors the broker holds besides its partitions' files: io_uring rings, listeners,
/// connections, the lock and log files, the offsets files.
const OTHERS: usize = 80;
/// What the descriptors must stay under.
const FD_BOUND: usize = SHARDS * MAX_OPEN_FILES + OTHERS;
/// The peak RSS allowed (debug build): the per-topic state of 300 topics is small.
const RSS_BOUND: u64 = 256 << 20;

/// Writes `round` to every partition of every topic; returns the most descriptors seen.
fn write_every_partition(broker: &Broker, keys: &[String], round: &str) -> usize {
    let pid = broker.pid();
    let mut good = FramedProducer::startup(broker.framed, "good");
    let mut most = 0;
    for t in 0..TOPICS {
        let topic = format!("topic-{t}");
        let mut c = FramedProducer::startup(broker.framed, &topic);
        let frames: Vec<(Vec<u8>, Vec<u8>)> = keys
            .iter()
            .map(|k| {
                (
                    k.clone().into_bytes(),
                    format!("{topic}|{k}|{round}").into_bytes(),
                )
            })
            .collect();
        for answer in c.produce_each(&frames) {
            assert_eq!(answer, Ok(()), "{topic}");
        }
        // The well-behaved producer is answered throughout.
        assert_eq!(good.produce(b"g", &[b"good"]), Ok(()));
        if t % 10 == 0 {
            most = most.max(open_fds(pid));
        }
    }
    most.max(open_fds(pid))
}

/// Every record of every topic, through a consumer: (topic, body).
fn consume_everything(broker: &Broker) -> BTreeSet<(String, String)> {
    let topics: Vec<String> = (0..TOPICS).map(|t| format!("topic-{t}")).collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("reader", "readers", &names, StartPolicy::Earliest)
        .expect("register");
    let mut all = BTreeSet::new();
    let mut empty = 0;
    while empty < 3 {
        let items = c.poll("reader", None).expect("poll");
        if items.is_empty() {
            empty += 1;
            thread::sleep(Duration::from_millis(50));
        }
        for item in items {
            for (_, _, body) in item.records {
                let body = String::from_utf8(body).unwrap();
                assert!(
                    all.insert((item.topic.clone(), body.clone())),
                    "twice: {body}"
                );
            }
        }
        c.commit("reader").expect("commit");
    }
    all
}

#[test]
fn descriptors_follow_max_open_files_not_the_topic_count() {
    let keys = keys_per_partition(&TopicLayout::new(SHARDS as u32, RANGES));
    let mut broker = Broker::start_with(
        SHARDS,
        &[
            "--ranges-per-shard",
            &RANGES.to_string(),
            "--max-open-files",
            &MAX_OPEN_FILES.to_string(),
            // One consumer reads every topic.
            "--max-topics-per-consumer",
            "1000",
            "--segment-size",
            "256KiB",
            "--durability",
            "write",
        ],
    );
    let at_start = open_fds(broker.pid());
    let most = write_every_partition(&broker, &keys, "first");
    let partitions = TOPICS * keys.len();
    eprintln!(
        "{partitions} partitions written: {at_start} descriptors at start, at most {most} \
         (bound {FD_BOUND}), peak RSS {} MiB",
        peak_rss(broker.pid()) >> 20
    );
    assert!(
        most < FD_BOUND,
        "{most} descriptors for {partitions} partitions"
    );
    assert!(peak_rss(broker.pid()) < RSS_BOUND);

    // A restart under a soft and hard limit far below one descriptor per partition.
    broker.nofile = Some((256, 256));
    broker.restart();
    let after_start = open_fds(broker.pid());
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", broker.pid())).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("256")),
        "{limits}"
    );
    let most = write_every_partition(&broker, &keys, "second");
    let read = consume_everything(&broker);
    let fds = open_fds(broker.pid());
    eprintln!(
        "after a restart under RLIMIT_NOFILE 256: {after_start} descriptors at start, at most \
         {most} while writing, {fds} after reading everything back"
    );
    assert!(most < FD_BOUND && fds < FD_BOUND, "{most}, {fds}");
    let mut expected = BTreeSet::new();
    for t in 0..TOPICS {
        let topic = format!("topic-{t}");
        for k in &keys {
            for round in ["first", "second"] {
                expected.insert((topic.clone(), format!("{topic}|{k}|{round}")));
            }
        }
    }
    assert_eq!(read.len(), expected.len());
    assert_eq!(read, expected);
}

/// The broker raises its soft open-files limit to the hard one at start, and says so.
#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let mut broker = Broker::start(1);
    broker.kill9();
    broker.nofile = Some((200, 4096));
    broker.spawn();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", broker.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((fields[3], fields[4]), ("4096", "4096"), "{line}");
}
