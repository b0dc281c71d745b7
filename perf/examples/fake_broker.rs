//! The tests' fake broker as a program, to measure the harness's own ceiling on loopback:
//!
//! ```text
//! cargo run --release -p shardlog-perf --example fake_broker -- 127.0.0.1:9254 [delay]
//! cargo run --release -p shardlog-perf -- produce --duration 10s
//! ```
//!
//! It answers STARTUP with READY and every PRODUCE with PRODUCE_RESPONSE (after `delay`, e.g.
//! `2ms`), checking each frame with the broker's codecs; it stores nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9254".into());
    let delay = args
        .next()
        .map(|d| humantime::parse_duration(&d).expect("a delay such as 2ms"))
        .unwrap_or(Duration::ZERO);
    let fake = common::FakeBroker::start_on(
        &addr,
        common::FakeOptions {
            delay,
            ..common::FakeOptions::default()
        },
    );
    eprintln!("fake broker on {} (answer delay {delay:?})", fake.addr);
    loop {
        std::thread::sleep(Duration::from_secs(5));
        let v = fake.stats.violations();
        if !v.is_empty() {
            eprintln!("protocol violations: {v:?}");
        }
    }
}
