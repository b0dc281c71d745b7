//! HTTP/2 request bodies that never end: one connection opens many streams (gRPC Produce calls
//! and REST produces), sends part of a large body on each and then nothing. The broker holds
//! at most `--h2-connection-buffer` of it (flow control holds the rest back in the client),
//! resets every stream once it has been idle for `--stream-idle-timeout`, and answers
//! another client all along, within a stated memory bound.

mod common;
mod grpc_client;

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use common::{peak_rss, Broker};
use grpc_client::{connect, runtime, Client};
use h2::client::SendRequest;
use h2::Reason;
use http::Request;

/// Streams the hostile connection opens, how much each announces, and how much it sends.
const GRPC_STREAMS: usize = 56;
const REST_STREAMS: usize = 8;
const ANNOUNCED: usize = 4 << 20;
const SENT: usize = 1 << 20;
/// The stated bound on the broker's peak RSS growth: the 8 MiB connection budget, the 4 MiB
/// connection window and slack, against the 64 MiB the client tries to send.
const RSS_BOUND: u64 = 32 << 20;

/// Opens a stream with `request`, sends `body` without ending it, and returns what the broker
/// answered (`:status`, `grpc-status`) and how it reset the stream.
async fn never_ending(
    mut send: SendRequest<Bytes>,
    request: Request<()>,
    body: Bytes,
) -> (u16, Option<String>, Reason) {
    let (response, mut stream) = send.send_request(request, false).expect("open a stream");
    // h2 queues what the broker's windows do not take yet.
    stream.send_data(body, false).expect("queue the body");
    let response = tokio::time::timeout(Duration::from_secs(120), response)
        .await
        .expect("an answer within 120 s")
        .expect("a response");
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    let reset = tokio::time::timeout(Duration::from_secs(30), poll_fn(|cx| stream.poll_reset(cx)))
        .await
        .expect("the stream is reset")
        .expect("a reset, not a connection error");
    (response.status().as_u16(), grpc_status, reset)
}

#[test]
fn never_ending_request_bodies_are_bounded_and_reset_when_idle() {
    let broker = Broker::start_with(1, &["--stream-idle-timeout", "2s"]);
    let pid = broker.pid();
    let http = broker.http;
    runtime().block_on(async {
        let md = [("topic", "t"), ("partition", "0")];
        let mut keeper = Client::new(connect(http).await);
        for _ in 0..4 {
            keeper
                .produce(&md, vec![vec![b'w'; 256 << 10]; 4])
                .await
                .unwrap();
        }
        let before = peak_rss(pid);

        let tcp = tokio::net::TcpStream::connect(http).await.unwrap();
        let (send, conn) = h2::client::Builder::new()
            .max_concurrent_reset_streams(1024)
            .handshake::<_, Bytes>(tcp)
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let send = send.ready().await.unwrap();

        // A gRPC message prefix announcing 4 MiB, then 1 MiB of it.
        let mut grpc_body = vec![0u8];
        grpc_body.extend_from_slice(&(ANNOUNCED as u32).to_be_bytes());
        grpc_body.resize(5 + SENT, b'g');
        let grpc_body = Bytes::from(grpc_body);
        let rest_body = Bytes::from(vec![b'r'; SENT]);
        let mut calls = Vec::new();
        for i in 0..GRPC_STREAMS + REST_STREAMS {
            let (request, body) = if i < GRPC_STREAMS {
                let r = Request::post(format!("http://{http}/atomix.log.LogService/Produce"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .header("topic", "t")
                    .body(())
                    .unwrap();
                (r, grpc_body.clone())
            } else {
                let r = Request::post(format!("http://{http}/v1/topic/t/messages"))
                    .header("content-type", "application/json")
                    .header("content-length", ANNOUNCED.to_string())
                    .body(())
                    .unwrap();
                (r, rest_body.clone())
            };
            calls.push(tokio::spawn(never_ending(send.clone(), request, body)));
        }

        // The other client is answered while the hostile streams sit there.
        let mut answered = 0;
        while !calls.iter().all(|c| c.is_finished()) {
            keeper
                .produce(&md, vec![b"still here".to_vec()])
                .await
                .expect("the other client is answered");
            assert_eq!(keeper.health_check("").await.unwrap(), 1);
            answered += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let peak = peak_rss(pid);
        eprintln!(
            "{} never-ending streams sent up to {} MiB; broker peak RSS {} KiB before, {} KiB \
             after (+{} KiB); the other client was answered {answered} times meanwhile",
            GRPC_STREAMS + REST_STREAMS,
            ((GRPC_STREAMS + REST_STREAMS) * SENT) >> 20,
            before >> 10,
            peak >> 10,
            (peak - before) >> 10
        );
        let mut outcomes = Vec::new();
        for c in calls {
            outcomes.push(c.await.unwrap());
        }
        for (i, (status, grpc_status, reset)) in outcomes.iter().enumerate() {
            if i < GRPC_STREAMS {
                assert_eq!(
                    (*status, grpc_status.as_deref()),
                    (200, Some("4")),
                    "DEADLINE_EXCEEDED"
                );
            } else {
                assert_eq!(*status, 408);
            }
            assert_eq!(*reset, Reason::NO_ERROR, "stream {i} is reset");
        }
        assert!(
            peak - before < RSS_BOUND,
            "broker peak RSS grew by {} KiB (bound {} KiB)",
            (peak - before) >> 10,
            RSS_BOUND >> 10
        );
        keeper.produce(&md, vec![b"after".to_vec()]).await.unwrap();
    });
}
