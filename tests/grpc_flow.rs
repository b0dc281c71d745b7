//! Flow control end to end: a gRPC consumer that reads slower than producers write must not
//! make the broker buffer without limit (h2 windows and send capacity hold the server back),
//! and it must still get every record, in order, once it reads again.

mod common;
mod grpc_client;

use std::time::Duration;

use common::{rss, Broker};
use grpc_client::{connect, runtime, Client};

fn batch(round: usize, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut v = format!("r{round}-{i}-").into_bytes();
            // 1 KiB values that compress (so the log is small but the records are not).
            v.resize(1024, b'a' + (i % 26) as u8);
            v
        })
        .collect()
}

#[test]
fn a_slow_grpc_consumer_keeps_broker_memory_bounded() {
    let broker = Broker::start_with(1, &["--hot-tail", "4MiB", "--shard-buffer", "8MiB"]);
    let pid = broker.child.as_ref().unwrap().id();
    runtime().block_on(async {
        let md = [("topic", "flow"), ("partition", "0")];
        let mut producer = Client::new(connect(broker.http).await);
        // Warm up the broker's allocations with the same pattern first.
        for round in 0..5 {
            producer.produce(&md, batch(round, 1000)).await.unwrap();
        }
        let mut consumer = Client::new(connect(broker.http).await);
        let mut stream = consumer.consume(&md, 0, None).await.unwrap();
        for i in 0..10u64 {
            let r = stream.message().await.unwrap().unwrap();
            assert_eq!(r.offset, i);
        }
        let before = rss(pid);
        // The consumer stops reading while 40 MB of records are written.
        for round in 5..45 {
            producer.produce(&md, batch(round, 1000)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = rss(pid);
        let grown = after.saturating_sub(before);
        assert!(
            grown < 32 << 20,
            "broker RSS grew by {} MiB while the consumer did not read",
            grown >> 20
        );
        // Reading again brings everything, in order.
        let mut next = 10u64;
        while next < 45_000 {
            let r = tokio::time::timeout(Duration::from_secs(30), stream.message())
                .await
                .expect("records keep coming")
                .unwrap()
                .unwrap();
            assert_eq!(r.offset, next);
            let want = format!("r{}-{}-", next / 1000, next % 1000);
            assert!(r.value.starts_with(want.as_bytes()), "offset {next}");
            next += 1;
        }
    });
}

#[test]
fn sigterm_ends_a_tailing_consume_with_unavailable_and_exits_cleanly() {
    let mut broker = Broker::start(1);
    let http = broker.http;
    let rt = runtime();
    let mut stream = rt.block_on(async {
        let md = [("topic", "bye")];
        let mut c = Client::new(connect(http).await);
        c.produce(&md, batch(0, 3)).await.unwrap();
        let mut stream = c.consume(&md, 0, None).await.unwrap();
        for i in 0..3u64 {
            assert_eq!(stream.message().await.unwrap().unwrap().offset, i);
        }
        stream
    });
    // The call is now tailing an idle log.
    let status = broker.terminate(Duration::from_secs(20));
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    rt.block_on(async {
        let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream ends");
        match end {
            Err(s) => assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}"),
            Ok(other) => panic!("expected UNAVAILABLE, got {other:?}"),
        }
    });
}
