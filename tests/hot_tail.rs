//! The hot tail is bounded per shard, not per topic (issue 13, item 13): a client writing
//! past `--hot-tail` into many topics must not make each topic keep its own `--hot-tail` of
//! chunks in memory. All topics of a shard share one budget, the least recently appended
//! chunks going first, so the broker's memory stays within shards × `--hot-tail` plus a
//! constant however many topics are written; a well-behaved producer keeps being answered and
//! a consumer that keeps up is still served.

mod common;

use common::consumer::ConsumerClient;
use common::framed::FramedProducer;
use common::{incompressible, peak_rss, rss, Broker};
use shardlog::wire::consumer::StartPolicy;

const SHARDS: usize = 2;
const HOT_TAIL: u64 = 8 << 20;
const TOPICS: usize = 40;
/// Written to each topic: more than the whole budget.
const PER_TOPIC: usize = 12 << 20;
const FRAME: usize = 512 << 10;
/// What the broker may hold besides the hot tails: buffers of the chunks in flight, the
/// allocator's slack, per-topic state (a debug build).
const CONSTANT: u64 = 48 << 20;

#[test]
fn many_topics_written_past_the_budget_share_one_hot_tail_per_shard() {
    let broker = Broker::start_with(
        SHARDS,
        &[
            "--hot-tail",
            &HOT_TAIL.to_string(),
            "--ranges-per-shard",
            "1",
            "--durability",
            "write",
        ],
    );
    let pid = broker.pid();
    // A consumer that keeps up with a small topic, and its producer.
    let mut good = FramedProducer::startup(broker.framed, "good");
    assert_eq!(good.produce(b"g", &[b"g0"]), Ok(()));
    let mut consumer = ConsumerClient::connect(broker.framed);
    consumer
        .register("c", "g", &["good"], StartPolicy::Earliest)
        .unwrap();
    assert_eq!(consumer.poll("c", None).unwrap().len(), 1);
    let start = rss(pid);

    let chunk = incompressible(b"", FRAME, 42);
    for t in 0..TOPICS {
        let topic = format!("big-{t}");
        let mut c = FramedProducer::startup(broker.framed, &topic);
        for i in 0..PER_TOPIC / FRAME {
            let key = format!("k{i}");
            assert_eq!(c.produce(key.as_bytes(), &[&chunk]), Ok(()));
        }
        assert_eq!(good.produce(b"g", &[b"g"]), Ok(()));
        let items = consumer.poll("c", Some(1000)).unwrap();
        assert_eq!(items.len(), 1, "the keeping-up consumer gets its message");
        consumer.commit("c").unwrap();
    }
    let (now, peak) = (rss(pid), peak_rss(pid));
    let bound = start + SHARDS as u64 * HOT_TAIL + CONSTANT;
    eprintln!(
        "{TOPICS} topics × {} MiB written: RSS {} MiB at start, {} MiB now, peak {} MiB \
         (bound {} MiB)",
        PER_TOPIC >> 20,
        start >> 20,
        now >> 20,
        peak >> 20,
        bound >> 20
    );
    assert!(now < bound, "RSS {} MiB", now >> 20);
    assert!(peak < bound, "peak RSS {} MiB", peak >> 20);
}
