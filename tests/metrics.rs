//! Metrics end to end: produce and consume over framed TCP, then check what a scrape reports.
//!
//! The detailed test scrapes through `shardlog::metrics::gather` on a broker run in-process
//! (the same shard threads, mesh and framed listeners `broker::run` starts, with a hook to run
//! a scrape on a chosen shard), so it can pick the scraping shard; the last test scrapes a
//! real broker process with `GET /metrics` over HTTP/1.1.

mod common;
mod grpc_client;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use futures_channel::{mpsc as fmpsc, oneshot};
use futures_util::StreamExt;

use common::consumer::{drain, produce_keyed, ConsumerClient};
use common::{free_addr, Client, Response};
use shardlog::config::{Cli, Config};
use shardlog::rt::{self, pool, ShardMesh};
use shardlog::server::framed;
use shardlog::shard::msg::ShardMsg;
use shardlog::storage::fs::BrokerFs;
use shardlog::wire::consumer::StartPolicy;
use shardlog::wire::ErrorCode;

type ScrapeTx = fmpsc::UnboundedSender<oneshot::Sender<String>>;

/// A broker running in this process: one thread per shard, as `broker::run` starts them.
struct InProcess {
    framed: SocketAddr,
    /// Per shard: ask it to run a scrape.
    scrape: Vec<ScrapeTx>,
    _tmp: tempfile::TempDir,
}

impl InProcess {
    fn start(shards: usize) -> InProcess {
        let tmp = tempfile::tempdir().unwrap();
        let framed_addr = free_addr();
        let config = Config::from_cli(Cli {
            data_dir: Some(tmp.path().join("data")),
            framed_listen: Some(framed_addr.to_string()),
            http_listen: Some(free_addr().to_string()),
            shards: Some(shards.to_string()),
            ..Cli::default()
        })
        .expect("config");
        std::fs::create_dir_all(&config.data_dir).unwrap();
        let mesh = ShardMesh::<ShardMsg>::new(shards, 1024);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let mut scrape = Vec::new();
        let load = shardlog::server::balance::ConnLoad::new(shards);
        for id in 0..shards {
            let load = load.clone();
            let (tx, mut rx) = fmpsc::unbounded::<oneshot::Sender<String>>();
            scrape.push(tx);
            let (config, mesh, ready) = (config.clone(), mesh.clone(), ready_tx.clone());
            // Detached: the shard threads end with the test process.
            let _ = pool::spawn_shard(id, None, Duration::ZERO, move || async move {
                let fs = BrokerFs::real(config.durability);
                let shard = match shardlog::broker::start_core(id, Rc::new(config), fs, mesh).await
                {
                    Ok(s) => s,
                    Err(e) => return drop(ready.send(Err(e.to_string()))),
                };
                let listener = match framed::bind(&shard) {
                    Ok(l) => l,
                    Err(e) => return drop(ready.send(Err(e.to_string()))),
                };
                let s = shard.clone();
                rt::spawn_detached(async move {
                    while let Some(reply) = rx.next().await {
                        let _ = reply.send(shardlog::metrics::gather(&s).await);
                    }
                });
                let _ = ready.send(Ok(()));
                shardlog::server::listener::accept_loop(shard, listener, framed::SERVER, load)
                    .await;
            })
            .expect("shard thread");
        }
        for _ in 0..shards {
            ready_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("shard start")
                .expect("shard start");
        }
        InProcess {
            framed: framed_addr,
            scrape,
            _tmp: tmp,
        }
    }

    /// Runs a scrape on shard `id` and returns the text.
    fn scrape(&self, id: usize) -> String {
        let (tx, rx) = oneshot::channel();
        self.scrape[id].unbounded_send(tx).unwrap();
        futures_lite::future::block_on(rx).expect("scrape answered")
    }
}

/// Sample lines of a text exposition: (name, labels, value). Comments are skipped; a line
/// that does not parse fails the test.
fn parse(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value = if value == "+Inf" {
            f64::INFINITY
        } else {
            value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"))
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").expect("label");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name, labels)
            }
        };
        out.push((name.to_string(), labels, value));
    }
    out
}

/// The sum of every sample named `name` whose labels include `labels`.
fn sum(
    samples: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// The raw (uncompressed) size of one stored record with this body.
fn raw_len(body: &str) -> usize {
    8 + 4 + body.len()
}

#[test]
fn a_scrape_reports_what_was_produced_and_consumed() {
    const N: usize = 500;
    const MORE: usize = 20;
    let broker = InProcess::start(2);

    let produced = produce_keyed(broker.framed, "orders", N, 37, "a");
    // A frame refused as a bad request: PRODUCE before STARTUP.
    let mut bad = Client::connect(broker.framed);
    match bad.produce(9, b"k", &[b"x"]) {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::BadRequest as u8),
        other => panic!("expected an error, got {other:?}"),
    }
    // A consumer reads everything and commits, then more is produced: that is the lag.
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("c1", "g1", &["orders"], StartPolicy::Earliest)
        .unwrap();
    let items = drain(&mut c, "c1");
    let polled: usize = items.iter().map(|i| i.records.len()).sum();
    assert_eq!(polled, N);
    c.commit("c1").unwrap();
    let more = produce_keyed(broker.framed, "orders", MORE, 5, "b");

    // Scrape from shard 1: it gathers shard 0 (and the lag) over the mesh.
    let text = broker.scrape(1);
    let s = parse(&text);
    let orders = [("topic", "orders")];
    let total = (N + MORE) as f64;
    assert_eq!(
        sum(&s, "shardlog_messages_in_total", &orders),
        total,
        "{text}"
    );
    let raw: usize = produced.iter().chain(&more).map(|(_, b)| raw_len(b)).sum();
    assert_eq!(sum(&s, "shardlog_raw_bytes_in_total", &orders), raw as f64);
    let chunks = sum(&s, "shardlog_chunks_written_total", &orders);
    assert!(chunks >= 2.0 && chunks <= total, "chunks {chunks}");
    let compressed = sum(&s, "shardlog_compressed_bytes_in_total", &orders);
    assert!(compressed > 0.0, "{compressed}");
    assert!(sum(&s, "shardlog_disk_bytes", &orders) >= compressed);
    assert_eq!(
        sum(&s, "shardlog_partitions", &orders),
        8.0,
        "2 shards × 4 ranges"
    );
    assert_eq!(sum(&s, "shardlog_segments", &orders), 8.0);
    // Both shards wrote: keys spread over every partition.
    for shard in ["0", "1"] {
        let l = [("topic", "orders"), ("shard", shard)];
        assert!(
            sum(&s, "shardlog_messages_in_total", &l) > 0.0,
            "shard {shard}"
        );
    }
    assert_eq!(sum(&s, "shardlog_messages_out_total", &orders), N as f64);
    assert!(sum(&s, "shardlog_bytes_out_total", &orders) > 0.0);

    // One PRODUCE frame per message, plus the refused one.
    let produce = [("protocol", "framed"), ("type", "produce")];
    assert_eq!(sum(&s, "shardlog_requests_total", &produce), total + 1.0);
    assert_eq!(
        sum(&s, "shardlog_requests_total", &[("type", "register")]),
        1.0
    );
    assert_eq!(
        sum(&s, "shardlog_requests_total", &[("type", "commit")]),
        1.0
    );
    let polls = sum(&s, "shardlog_requests_total", &[("type", "poll")]);
    assert!(polls >= 3.0);
    assert_eq!(
        sum(&s, "shardlog_frames_total", &[("result", "bad-request")]),
        1.0
    );
    // ok: every PRODUCE_RESPONSE, both STARTUPs' READY, REGISTER, polls, COMMIT.
    let ok = total + 2.0 + 1.0 + polls + 1.0;
    assert_eq!(sum(&s, "shardlog_frames_total", &[("result", "ok")]), ok);

    // Histograms: one ack per acknowledged frame, one write per chunk. Segment files are
    // O_DSYNC (durability fsync), so each write is durable by itself: no separate fdatasync.
    assert_eq!(sum(&s, "shardlog_ack_latency_seconds_count", &[]), total);
    let inf = [("le", "+Inf")];
    assert_eq!(sum(&s, "shardlog_ack_latency_seconds_bucket", &inf), total);
    assert_eq!(sum(&s, "shardlog_chunk_write_seconds_count", &[]), chunks);
    assert_eq!(sum(&s, "shardlog_fdatasync_seconds_count", &[]), 0.0);
    assert_eq!(sum(&s, "shardlog_poll_latency_seconds_count", &[]), polls);

    // The consumer's connection and the refused one are still open; nothing is buffered.
    assert!(sum(&s, "shardlog_open_connections", &[]) >= 2.0);
    assert_eq!(sum(&s, "shardlog_buffered_bytes", &[]), 0.0);
    // Lag: the MORE messages produced after the commit.
    let g1 = [("group", "g1"), ("topic", "orders")];
    assert_eq!(sum(&s, "shardlog_consumer_lag", &g1), MORE as f64, "{text}");
    assert_eq!(
        s.iter()
            .filter(|(n, _, _)| n == "shardlog_consumer_lag")
            .count(),
        8,
        "one lag per partition of the group"
    );
    // Recovery at start found fresh, empty logs.
    assert_eq!(sum(&s, "shardlog_recovery_torn_tails_total", &[]), 0.0);
    assert_eq!(sum(&s, "shardlog_recovery_corrupt_chunks_total", &[]), 0.0);

    // Shard 0 sees the same picture (counters only grow; nothing ran in between).
    let s0 = parse(&broker.scrape(0));
    assert_eq!(sum(&s0, "shardlog_messages_in_total", &orders), total);
    assert_eq!(sum(&s0, "shardlog_consumer_lag", &g1), MORE as f64);
    drop((bad, c));
}

/// `GET /metrics` on the HTTP port, with a plain HTTP/1.1 request.
#[test]
fn http_metrics_endpoint_reports_produced_messages() {
    const N: usize = 200;
    let broker = common::Broker::start(2);
    produce_keyed(broker.framed, "orders", N, 11, "h");
    let mut sock = TcpStream::connect(broker.http).expect("connect to the HTTP port");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    sock.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("headers end");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let s = parse(body);
    assert_eq!(
        sum(&s, "shardlog_messages_in_total", &[("topic", "orders")]),
        N as f64
    );

    // A scraper that asks for OpenMetrics gets it.
    let mut http = common::http::HttpClient::connect(broker.http);
    let accept = "application/openmetrics-text; version=1.0.0,text/plain;q=0.5";
    let r = http.request("GET", "/metrics", &[("accept", accept)], b"");
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap_or_default().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = r.text();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert!(text.contains("shardlog_messages_in_total"), "{text}");
}

/// Connections are spread evenly over the shards whichever shard the kernel hands them to,
/// and every one is served: 8 framed producers on 2 shards end up 4 and 4.
#[test]
fn framed_connections_are_spread_evenly_over_the_shards() {
    let broker = common::Broker::start(2);
    // All connected before any says a word, so shards accept and hand over at once.
    let mut clients: Vec<Client> = (0..8).map(|_| Client::connect(broker.framed)).collect();
    for c in clients.iter_mut() {
        c.send_startup(0, "spread");
    }
    for c in clients.iter_mut() {
        assert!(matches!(c.recv(), Some(Response::Ready(0))));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let body = format!("m{i}");
        let r = c.produce(0, b"", &[body.as_bytes()]);
        assert!(matches!(r, Response::Produced(0)), "{r:?}");
    }
    let mut http = common::http::HttpClient::connect(broker.http);
    let text = http.request("GET", "/metrics", &[], b"").text();
    let s = parse(&text);
    let open = |shard: &str| {
        sum(
            &s,
            "shardlog_open_connections",
            &[("shard", shard), ("protocol", "framed")],
        )
    };
    assert_eq!((open("0"), open("1")), (4.0, 4.0), "{text}");
    assert_eq!(
        sum(&s, "shardlog_messages_in_total", &[("topic", "spread")]),
        8.0
    );
}

/// REST and gRPC requests count like framed ones: `requests_total` by protocol and type, and
/// produce and poll latencies in the same histograms.
#[test]
fn rest_and_grpc_requests_are_counted_like_framed_ones() {
    let broker = common::Broker::start(1);
    let mut http = common::http::HttpClient::connect(broker.http);
    let scrape = |http: &mut common::http::HttpClient| {
        parse(&http.request("GET", "/metrics", &[], b"").text())
    };
    let ack_count = |s: &_| sum(s, "shardlog_ack_latency_seconds_count", &[]);
    let poll_count = |s: &_| sum(s, "shardlog_poll_latency_seconds_count", &[]);
    let before = scrape(&mut http);
    for i in 0..3 {
        let r = http.produce(
            "rest",
            None,
            "application/json",
            format!("{{\"n\":{i}}}").as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        http.register("c1", "g1", &["rest"], "startFromEarliest")
            .status,
        200
    );
    assert_eq!(http.drain("c1").len(), 3);
    assert!(http.commit("c1").status < 300);
    let after_rest = scrape(&mut http);
    let http_requests = |s: &_, t: &str| {
        sum(
            s,
            "shardlog_requests_total",
            &[("protocol", "http"), ("type", t)],
        )
    };
    assert_eq!(http_requests(&after_rest, "produce"), 3.0);
    assert_eq!(http_requests(&after_rest, "register"), 1.0);
    assert!(http_requests(&after_rest, "poll") >= 1.0);
    assert_eq!(http_requests(&after_rest, "commit"), 1.0);
    assert_eq!(ack_count(&after_rest) - ack_count(&before), 3.0);
    assert!(poll_count(&after_rest) - poll_count(&before) >= 1.0);

    grpc_client::runtime().block_on(async {
        let mut c = grpc_client::Client::new(grpc_client::connect(broker.http).await);
        for call in 0..2 {
            let values = (0..10)
                .map(|i| format!("v{call}-{i}").into_bytes())
                .collect();
            c.produce(&[("topic", "grpc")], values).await.unwrap();
        }
    });
    let after_grpc = scrape(&mut http);
    let grpc_produce = sum(
        &after_grpc,
        "shardlog_requests_total",
        &[("protocol", "grpc"), ("type", "produce")],
    );
    // A call's values that arrive together are one frame: at least one per call.
    assert!(grpc_produce >= 2.0, "{grpc_produce}");
    assert_eq!(
        ack_count(&after_grpc) - ack_count(&after_rest),
        grpc_produce,
        "one acknowledgement timed per gRPC frame"
    );
    assert_eq!(
        sum(
            &after_grpc,
            "shardlog_requests_total",
            &[("protocol", "framed")]
        ),
        0.0
    );
}
