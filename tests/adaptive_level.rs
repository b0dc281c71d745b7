//! The adaptive zstd level (`--zstd-min-level`) against a real broker: a core saturated by
//! compression at a slow level steps down (seen in `/metrics`), steps back up once the load
//! stops, and every message written across the changes reads back in order.

mod common;

use std::time::{Duration, Instant};

use common::http::HttpClient;
use common::{read_topic, Broker, Client, Response};

/// The shard's level as `/metrics` reports it.
fn level(http: &mut HttpClient) -> i64 {
    let text = http.request("GET", "/metrics", &[], b"").text();
    let line = text
        .lines()
        .find(|l| l.starts_with("shardlog_zstd_level{"))
        .unwrap_or_else(|| panic!("no shardlog_zstd_level in /metrics:\n{text}"));
    line.rsplit_once(' ')
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("bad sample: {line}"))
}

/// 200 log-like lines that level 19 compresses slowly.
fn frame_messages(frame: u64) -> Vec<Vec<u8>> {
    (0..200u64)
        .map(|m| {
            let x = (frame * 200 + m).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            format!(
                "{{\"frame\":{frame},\"m\":{m},\"user\":\"u{}\",\"path\":\"/api/v{}/items/{}\",\"ms\":{}}}",
                x % 9973,
                x % 3,
                x >> 40,
                x % 1000
            )
            .into_bytes()
        })
        .collect()
}

#[test]
fn a_saturated_shard_steps_its_level_down_and_back_up() {
    let mut broker = Broker::start_with(1, &["--zstd-level", "19", "--zstd-min-level", "1"]);
    let mut http = HttpClient::connect(broker.http);
    assert_eq!(level(&mut http), 19);

    // Keep 16 frames in flight until the level has dropped (level 19 saturates any core).
    let mut c = Client::startup(broker.framed, "adapt");
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let (mut frame, mut in_flight) = (0u64, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let lowered = loop {
        while in_flight < 16 {
            let msgs = frame_messages(frame);
            let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
            c.send_produce((frame % 60_000) as u16 + 1, b"", &refs);
            sent.extend(msgs);
            frame += 1;
            in_flight += 1;
        }
        assert!(matches!(c.recv(), Some(Response::Produced(_))));
        in_flight -= 1;
        if frame % 8 == 0 {
            let now = level(&mut http);
            if now < 19 {
                break now;
            }
        }
        assert!(Instant::now() < deadline, "the level never moved from 19");
    };
    for _ in 0..in_flight {
        assert!(matches!(c.recv(), Some(Response::Produced(_))));
    }
    assert!((1..19).contains(&lowered), "{lowered}");

    // Idle: it climbs back toward 19.
    let deadline = Instant::now() + Duration::from_secs(60);
    let low = level(&mut http);
    while level(&mut http) <= low {
        assert!(Instant::now() < deadline, "the level stayed at {low}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Chunks of several levels: every message, in order.
    drop(c);
    broker.kill9();
    let stored: Vec<Vec<u8>> = read_topic(&broker.data_dir, "adapt")
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(stored.len(), sent.len());
    assert!(
        stored == sent,
        "the messages came back changed or out of order"
    );
}

#[test]
fn a_minimum_above_the_level_is_refused() {
    let out = Broker::new(1, &["--zstd-level", "1", "--zstd-min-level", "3"])
        .command()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zstd-min-level") && err.contains("above"),
        "{err}"
    );
}
