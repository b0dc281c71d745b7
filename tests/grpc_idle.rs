//! `--idle-timeout` closes connections that do nothing, not HTTP/2 connections whose streams
//! carry data: a Produce stream that keeps sending and a Consume that keeps receiving run past
//! the timeout, while a connection that sends nothing is still closed.

mod common;
mod grpc_client;

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::Broker;
use grpc_client::{connect, runtime, Client};
use shardlog::proto::log::ProduceRequest;

/// The idle timeout the broker runs with; the calls last three times as long.
const IDLE: Duration = Duration::from_secs(2);
/// Values the Produce stream sends, one per [`GAP`].
const VALUES: u64 = 24;
const GAP: Duration = Duration::from_millis(250);

#[test]
fn streams_carrying_data_outlive_the_idle_timeout_but_idle_connections_do_not() {
    let broker = Broker::start_with(1, &["--idle-timeout", "2s"]);
    let http = broker.http;
    let md = [("topic", "live"), ("partition", "0")];

    // A connection that sends nothing after the HTTP/2 preface and its SETTINGS.
    let mut idle = TcpStream::connect(http).unwrap();
    std::io::Write::write_all(
        &mut idle,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    )
    .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    runtime().block_on(async {
        let mut producer = Client::new(connect(http).await);
        let mut consumer = Client::new(connect(http).await);
        // The Consume starts first, tailing the empty partition.
        producer
            .produce(&md, vec![b"first".to_vec()])
            .await
            .unwrap();
        let mut records = consumer.consume(&md, 0, None).await.unwrap();
        assert_eq!(records.message().await.unwrap().unwrap().offset, 0);

        // One Produce call on its own connection, sending for 3 × the idle timeout.
        let values = futures_util::stream::unfold(0u64, |i| async move {
            if i == VALUES {
                return None;
            }
            tokio::time::sleep(GAP).await;
            let value = Bytes::from(format!("v{i}"));
            Some((ProduceRequest { value }, i + 1))
        });
        let produce = tokio::spawn(async move { producer.produce_stream(&md, values, None).await });

        // The Consume receives every value as it is written.
        for i in 0..VALUES {
            let r = tokio::time::timeout(Duration::from_secs(20), records.message())
                .await
                .expect("records keep coming")
                .unwrap_or_else(|s| panic!("the Consume was ended at record {i}: {s:?}"))
                .expect("the Consume stream stays open");
            assert_eq!(r.offset, i + 1);
            assert_eq!(&r.value[..], format!("v{i}").as_bytes());
        }
        let produced = produce.await.unwrap();
        assert!(
            produced.is_ok(),
            "the Produce stream was ended: {produced:?}"
        );
        assert!(GAP * VALUES as u32 > 2 * IDLE);
    });

    // The idle connection was closed meanwhile (its reads see the end of the stream).
    let mut buf = [0u8; 4096];
    loop {
        match idle.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the idle connection is still open: {e}"),
        }
    }
}
