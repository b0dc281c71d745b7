//! Opening a partition once (issue 13, item 5): first writes and first reads of many new
//! topics, all at the same moment, race to open the same partitions. Every request succeeds
//! (no STORAGE "File exists" for the loser of the race), the broker stays up, and everything
//! produced can be read back.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::consumer::{bodies, ConsumerClient};
use common::framed::FramedProducer;
use common::Broker;
use shardlog::wire::consumer::StartPolicy;

const TOPICS: usize = 30;
const MESSAGES: usize = 16;

#[test]
fn concurrent_first_reads_and_writes_of_new_topics_all_succeed() {
    let mut broker = Broker::start(2);
    let addr = broker.framed;
    // Each topic gets a producer and two readers; all start at the same moment.
    let barrier = Arc::new(Barrier::new(TOPICS * 3));
    let mut producers = Vec::new();
    let mut readers = Vec::new();
    for t in 0..TOPICS {
        let topic = format!("fresh-{t}");
        let b = barrier.clone();
        let tp = topic.clone();
        producers.push(thread::spawn(move || {
            // STARTUP creates the topic; its partitions are opened by the first request.
            let mut c = FramedProducer::startup(addr, &tp);
            b.wait();
            let frames: Vec<(Vec<u8>, Vec<u8>)> = (0..MESSAGES)
                .map(|i| {
                    (
                        format!("k{i}").into_bytes(),
                        format!("{tp}|{i}").into_bytes(),
                    )
                })
                .collect();
            let mut errors = Vec::new();
            for answer in c.produce_each(&frames) {
                if let Err(refused) = answer {
                    errors.push(format!("{tp}: produce: {refused:?}"));
                }
            }
            errors
        }));
        for r in 0..2 {
            let b = barrier.clone();
            let tp = topic.clone();
            readers.push(thread::spawn(move || {
                // Make sure the topic exists before the race, without opening a partition.
                drop(FramedProducer::startup(addr, &tp));
                let mut c = ConsumerClient::connect(addr);
                let id = format!("{tp}-c{r}");
                b.wait();
                let mut errors = Vec::new();
                if let Err(e) = c.register(&id, &id, &[&tp], StartPolicy::Earliest) {
                    errors.push(format!("{tp}: register: {e:?}"));
                    return (errors, Vec::new());
                }
                // Read until every message is there (the produces race with these reads).
                let mut got = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(30);
                while got.len() < MESSAGES && Instant::now() < deadline {
                    match c.poll(&id, Some(200)) {
                        Ok(items) => got.extend(bodies(&items)),
                        Err(e) => {
                            errors.push(format!("{tp}: poll: {e:?}"));
                            break;
                        }
                    }
                }
                (errors, got)
            }));
        }
    }
    let mut errors: Vec<String> = Vec::new();
    // A client thread panics when the broker closes its connection (a broker that died).
    for p in producers {
        match p.join() {
            Ok(e) => errors.extend(e),
            Err(_) => errors.push("a producer lost its connection".into()),
        }
    }
    let mut reads = Vec::new();
    for r in readers {
        match r.join() {
            Ok((e, got)) => {
                errors.extend(e);
                reads.push(got);
            }
            Err(_) => {
                errors.push("a reader lost its connection".into());
                reads.push(Vec::new());
            }
        }
    }
    assert!(broker.is_running(), "the broker died");
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    for (i, got) in reads.iter().enumerate() {
        let t = i / 2;
        let want: HashSet<String> = (0..MESSAGES).map(|m| format!("fresh-{t}|{m}")).collect();
        let have: HashSet<String> = got.iter().cloned().collect();
        assert_eq!(have, want, "reader {i} of fresh-{t}");
        assert_eq!(got.len(), MESSAGES, "reader {i}: each message once");
    }
    // And the broker still serves.
    let mut c = FramedProducer::startup(addr, "after");
    assert_eq!(c.produce(b"k", &[b"x"]), Ok(()));
    assert!(broker.is_running());
}
