//! Reading and resetting by time against a real broker: three batches produced with pauses
//! between them, then every interface that takes a time lands on the first record of the
//! right batch — FETCH with the by-time flag (through `PartitionReader`), the REST offset
//! lookup, gRPC `Consume` with `shardlog-start-time`, a REST consumer's `startTime`, a group
//! reset to a time, and the two `shardlogctl` commands. A restart after the time index files
//! were deleted rebuilds them with the same answers; bad times are refused clearly.

mod common;
mod grpc_client;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::http::HttpClient;
use common::{Broker, Client, Response};
use shardlog::wire::time::format_time_us;

const TOPIC: &str = "clock";
/// Records per batch: batch b holds offsets `b*PER_BATCH .. (b+1)*PER_BATCH`.
const PER_BATCH: i64 = 12;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Creates the one-partition topic and produces three batches of [`PER_BATCH`] records (4
/// frames of 3) with pauses between them. Returns four times: before batch 0, between 0 and
/// 1, between 1 and 2, after batch 2 — each at least 50 ms from the records around it.
fn three_batches(broker: &Broker) -> [i64; 4] {
    let mut http = HttpClient::connect(broker.http);
    let r = http.request(
        "POST",
        &format!("/v1/topics/{TOPIC}"),
        &[],
        br#"{"partitions":1}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let pause = || std::thread::sleep(Duration::from_millis(60));
    let mut c = Client::startup(broker.framed, TOPIC);
    let mut times = [0; 4];
    for (b, time) in times.iter_mut().enumerate().take(3) {
        pause();
        *time = now_us();
        pause();
        for f in 0..4 {
            let msgs: Vec<String> = (0..3).map(|i| format!("b{b}-f{f}-m{i}")).collect();
            let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_bytes()).collect();
            assert_eq!(c.produce(1, b"", &refs), Response::Produced(1));
        }
    }
    pause();
    times[3] = now_us();
    times
}

/// The offset of the first record of batch `b` (3: the end).
fn first_of(b: usize) -> i64 {
    b as i64 * PER_BATCH
}

/// `GET /v1/topics/{topic}/partitions/{p}/offset?time=`.
fn lookup(http: &mut HttpClient, topic: &str, p: &str, time: &str) -> common::http::Response {
    http.request(
        "GET",
        &format!("/v1/topics/{topic}/partitions/{p}/offset?time={time}"),
        &[],
        b"",
    )
}

fn offset_of(r: &common::http::Response) -> i64 {
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["offset"].as_i64().unwrap()
}

fn time_index_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(time_index_files(&p));
        } else if p.extension().is_some_and(|x| x == "timeindex") {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_rest_lookup_finds_each_batch_and_survives_losing_the_time_index() {
    let mut broker = Broker::start(2);
    let times = three_batches(&broker);
    let mut http = HttpClient::connect(broker.http);
    let check = |http: &mut HttpClient| {
        for (b, &t) in times.iter().enumerate() {
            let r = lookup(http, TOPIC, "0", &format_time_us(t));
            assert_eq!(offset_of(&r), first_of(b), "batch {b}: {}", r.text());
            // Unix milliseconds too (the pauses are far longer than a millisecond).
            let r = lookup(http, TOPIC, "0", &(t / 1000).to_string());
            assert_eq!(offset_of(&r), first_of(b), "batch {b} in ms: {}", r.text());
        }
    };
    check(&mut http);
    let r = lookup(&mut http, TOPIC, "0", &format_time_us(times[1]));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["firstOffset"], 0);
    assert_eq!(v["nextOffset"], 3 * PER_BATCH);
    assert_eq!(v["timestampUs"], times[1]);
    assert_eq!(v["topic"], TOPIC);

    // Bad requests: a clear 400 or 404, never a topic created.
    for (topic, p, time, status, says) in [
        (TOPIC, "0", "yesterday", 400, "RFC 3339"),
        (TOPIC, "0", "2025-13-01T00:00:00Z", 400, "RFC 3339"),
        (TOPIC, "0", "-5", 400, "RFC 3339"),
        (TOPIC, "0", "", 400, "time"),
        (TOPIC, "x", "0", 400, "partition"),
        (TOPIC, "1", "0", 404, "partition 1"),
        ("nope", "0", "0", 404, "nope"),
    ] {
        let r = lookup(&mut http, topic, p, time);
        assert_eq!(r.status, status, "{topic}/{p}?time={time}: {}", r.text());
        assert!(r.text().contains(says), "{}", r.text());
    }
    assert!(!broker.data_dir.join("nope").exists());

    // A restart after the time index files are gone rebuilds them, with the same answers.
    broker.terminate(Duration::from_secs(60));
    let files = time_index_files(&broker.data_dir);
    assert!(!files.is_empty());
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    broker.restart();
    let mut http = HttpClient::connect(broker.http);
    check(&mut http);
    assert_eq!(time_index_files(&broker.data_dir), files, "rebuilt");
}

#[test]
fn fetch_by_time_grpc_and_shardlogctl_consume_start_at_the_right_batch() {
    use shardlog_client::{PartitionReader, ReaderConfig};

    let broker = Broker::start(2);
    let times = three_batches(&broker);
    let addr = broker.framed.to_string();
    common::runtime().block_on(async {
        for (b, &t) in times.iter().enumerate() {
            let mut config = ReaderConfig::new(&addr, TOPIC, 0, 0);
            config.start_time_us = Some(t);
            config.max_wait = Duration::from_millis(50);
            let mut reader = PartitionReader::connect(config).await.unwrap();
            assert_eq!(reader.position(), None);
            let got = reader.next_batch().await.unwrap();
            if b == 3 {
                assert!(got.is_empty(), "nothing is that recent");
                assert_eq!(reader.position(), None);
                continue;
            }
            assert_eq!(got[0].offset, first_of(b), "batch {b}");
            assert_eq!(got[0].value, format!("b{b}-f0-m0").as_bytes());
            assert_eq!(reader.position(), Some(got.last().unwrap().offset + 1));
        }
    });

    // A FETCH by time with a truncated body is BAD_REQUEST, and the connection goes on.
    let mut c = Client::connect(broker.framed);
    let mut frame = Vec::new();
    let mut body = Vec::new();
    shardlog::wire::fetch::FetchBody {
        topic: TOPIC.into(),
        partition: 0,
        from: shardlog::wire::fetch::FetchFrom::Time(times[1]),
        max_bytes: 1 << 20,
        max_wait_ms: None,
    }
    .encode(&mut body);
    shardlog::wire::frame::encode_frame(
        &mut frame,
        shardlog::wire::OpCode::Fetch,
        shardlog::wire::Flags::BY_TIME,
        5,
        &body[..body.len() - 2],
    );
    c.send_raw(&frame);
    match c.recv().unwrap() {
        Response::Error {
            stream_id, code, ..
        } => assert_eq!((stream_id, code), (5, 4)),
        other => panic!("{other:?}"),
    }
    c.send_frame(shardlog::wire::OpCode::Heartbeat, 6, b"");
    assert_eq!(c.recv().unwrap(), Response::Ready(6));

    // gRPC Consume with the metadata key; a bad value is INVALID_ARGUMENT.
    let http = broker.http;
    grpc_client::runtime().block_on(async move {
        let mut client = grpc_client::Client::new(grpc_client::connect(http).await);
        for (b, &t) in times.iter().enumerate().take(3) {
            let t = format_time_us(t);
            let md = [
                ("topic", TOPIC),
                ("partition", "0"),
                ("shardlog-start-time", t.as_str()),
            ];
            // The request's offset is not used when the key is there.
            let got = client.consume_n(&md, 5, 2).await.unwrap();
            assert_eq!(got[0].offset, first_of(b) as u64, "batch {b}");
            assert_eq!(got[0].value, format!("b{b}-f0-m0").as_bytes());
        }
        let md = [("topic", TOPIC), ("shardlog-start-time", "noon")];
        let err = client.consume_n(&md, 0, 1).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("shardlog-start-time"), "{err:?}");
    });

    // shardlogctl consume --from-time.
    for (b, &t) in times.iter().enumerate().take(3) {
        let t = format_time_us(t);
        let out = common::ctl::ok(
            &broker,
            &[
                "consume",
                TOPIC,
                "--partition",
                "0",
                "--from-time",
                &t,
                "--count",
                "1",
                "--format",
                "json",
            ],
            b"",
        );
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["offset"], first_of(b), "batch {b}: {out}");
    }
    let bad = common::ctl::ctl(
        &broker,
        &["consume", TOPIC, "--partition", "0", "--from-time", "soon"],
        b"",
    );
    assert_eq!(bad.status.code(), Some(2), "bad usage");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
}

#[test]
fn rest_consumers_and_group_resets_start_at_a_time() {
    let broker = Broker::start(2);
    let times = three_batches(&broker);
    let mut http = HttpClient::connect(broker.http);
    let first_read = |http: &mut HttpClient, id: &str, group: &str| {
        let items = http.drain(id);
        let r = http.goodbye(id);
        assert_eq!(r.status, 200, "{}", r.text());
        let offsets: Vec<i64> = items
            .iter()
            .flat_map(|i| i.records.iter().map(|r| r.0))
            .collect();
        assert!(!offsets.is_empty(), "{group} read nothing");
        offsets
    };

    // A REST consumer of a new group starting at the time between batches 0 and 1.
    let t1 = format_time_us(times[1]);
    let r = http.request(
        "PUT",
        &format!("/v1/consumer/register?consumerId=c1&group=g1&topic={TOPIC}&startTime={t1}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let offsets = first_read(&mut http, "c1", "g1");
    assert_eq!(offsets.iter().min(), Some(&first_of(1)), "{offsets:?}");

    for (query, says) in [
        ("startTime=later", "startTime"),
        ("startTime=0&onNewGroup=startFromLatest", "exclude"),
    ] {
        let r = http.request(
            "PUT",
            &format!("/v1/consumer/register?consumerId=c2&group=g2&topic={TOPIC}&{query}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert!(r.text().contains(says), "{}", r.text());
    }

    // The group, now without members, reset to the time between batches 1 and 2.
    let t2 = format_time_us(times[2]);
    let r = http.request(
        "POST",
        &format!("/v1/groups/g1/reset?topic={TOPIC}&to=time:{t2}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["partitions"][0]["offset"], first_of(2).to_string());
    let r = http.register("c1", "g1", &[TOPIC], "startFromEarliest");
    assert_eq!(r.status, 200, "{}", r.text());
    let offsets = first_read(&mut http, "c1", "g1");
    assert_eq!(offsets.iter().min(), Some(&first_of(2)), "{offsets:?}");
    let r = http.request(
        "POST",
        &format!("/v1/groups/g1/reset?topic={TOPIC}&to=time:noon"),
        &[],
        b"",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("RFC 3339"), "{}", r.text());

    // shardlogctl group reset --to-time, back to batch 0.
    let t0 = format_time_us(times[0]);
    let out = common::ctl::ok(
        &broker,
        &["group", "reset", "g1", "--topic", TOPIC, "--to-time", &t0],
        b"",
    );
    assert!(
        out.lines().any(|l| l.split_whitespace().eq(["0", "0"])),
        "{out}"
    );
    let t1 = format_time_us(times[1]);
    let out = common::ctl::ok(
        &broker,
        &["group", "reset", "g1", "--topic", TOPIC, "--to-time", &t1],
        b"",
    );
    let want = first_of(1).to_string();
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().eq(["0", want.as_str()])),
        "{out}"
    );
    let r = http.register("c1", "g1", &[TOPIC], "startFromEarliest");
    assert_eq!(r.status, 200, "{}", r.text());
    let offsets = first_read(&mut http, "c1", "g1");
    assert_eq!(offsets.iter().min(), Some(&first_of(1)), "{offsets:?}");
}
