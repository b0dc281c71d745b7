//! Seed inputs for every fuzz target, made by the project's own encoders (so the fuzzer
//! starts from valid frames, bodies, chunks and files and mutates from there).
//! `fuzz/seeds.sh` writes them to `fuzz/corpus/{target}/`.

use std::collections::BTreeMap;

use crate::config::example_file;
use crate::consumer::offsets;
use crate::ring::TopicLayout;
use crate::storage::chunk::{ChunkEncoder, HEADER_LEN};
use crate::storage::{
    index_file_name, log_file_name, Durability, LogConfig, PartitionLog, RecordBuf,
};
use crate::wire::commit::{CommitBody, CommitPosition};
use crate::wire::consumer::{ConsumerIdBody, PollBody, RegisterBody, StartPolicy};
use crate::wire::error::ErrorBody;
use crate::wire::fetch::{FetchBody, FetchFrom};
use crate::wire::frame::encode_frame;
use crate::wire::poll::{PollItem, PollItemHeader, PollResponse};
use crate::wire::produce::encode_produce_body;
use crate::wire::startup::StartupBody;
use crate::wire::{grpc, ErrorCode, Flags, OpCode};

use super::storage_targets::DirFile;

/// One seed: the target it is for, a file name, and its bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push(Seed {
            target,
            name: name.to_string(),
            bytes,
        })
    };
    let bodies = request_bodies();
    for (name, op, flags, body) in &bodies {
        let mut frame = Vec::new();
        encode_frame(&mut frame, *op, *flags, 7, body);
        add("frame_header", name, frame[..13].to_vec());
        let target = match op {
            OpCode::Startup => "startup",
            OpCode::Produce => "produce",
            OpCode::Register => "register",
            OpCode::Poll => "poll",
            OpCode::Commit => "commit",
            OpCode::Goodbye => "goodbye",
            OpCode::Fetch => "fetch",
            OpCode::Error => "error_body",
            _ => "frames",
        };
        if target == "produce" || target == "fetch" {
            let mut b = vec![*flags];
            b.extend_from_slice(body);
            add(target, name, b);
            if target == "produce" {
                // The same body on a forwarding connection: control bit 1, the head first.
                let head = crate::wire::forward::ForwardedHead {
                    partition: 2,
                    leader_epoch: 7,
                };
                let mut b = vec![*flags | 2];
                b.extend_from_slice(&head.encode());
                b.extend_from_slice(body);
                add(target, &format!("{name}-forwarded"), b);
            }
        } else if target != "frames" {
            add(target, name, body.clone());
        }
    }
    // A connection's whole conversation, then each request alone.
    let mut stream = Vec::new();
    for (_, op, flags, body) in &bodies {
        encode_frame(&mut stream, *op, *flags, 1, body);
    }
    add("frames", "conversation", stream);
    let (response, payload, raw) = poll_response();
    add("poll_response", "two-items", response.clone());
    let mut framed = Vec::new();
    encode_frame(&mut framed, OpCode::PollResponse, 0, 3, &response);
    add("frames", "poll-response", framed);
    add("records", "raw", [vec![0], raw].concat());
    add("records", "compressed", [vec![1], payload].concat());
    for (name, bytes) in http_heads() {
        add("http1_head", name, bytes.into_bytes());
    }
    add(
        "rest_commit",
        "positions",
        br#"{"positions":[{"topic":"orders","token":"-9223372036854775808","rangeIndex":0,"version":1,"offset":"42"},{"topic":"t","token":5,"rangeIndex":3,"version":1,"offset":7}]}"#.to_vec(),
    );
    add("rest_commit", "empty", b" ".to_vec());
    add(
        "rest_topic_create",
        "partitions",
        br#"{"partitions": 8}"#.to_vec(),
    );
    add("rest_topic_create", "empty", Vec::new());
    add("grpc_messages", "produce-stream", grpc_stream());
    let (chunk, records_chunk) = chunks();
    add("chunk", "small", chunk);
    add("chunk", "many-records", records_chunk);
    for (name, dir) in segment_dirs() {
        let mut bytes = vec![0u8];
        for f in &dir {
            f.encode(&mut bytes);
        }
        add("recovery", &name, bytes);
    }
    for (name, bytes) in offsets_files() {
        add("offsets_file", name, bytes);
    }
    for (t, r) in [(1, 4), (3, 7), (1024, 256)] {
        let text = toml::to_string(&TopicLayout::new(t, r)).unwrap_or_default();
        add("topic_layout", &format!("{t}x{r}"), text.into_bytes());
    }
    add("config_toml", "example", example_file().into_bytes());
    add(
        "config_toml",
        "some",
        b"shards = 2\nsegment-size = \"64MiB\"\nretention-age = \"12h\"\ndurability = \"write\"\n"
            .to_vec(),
    );
    out
}

/// `(name, opcode, flags, body)` of one request or answer of each kind.
fn request_bodies() -> Vec<(&'static str, OpCode, u8, Vec<u8>)> {
    let mut v = Vec::new();
    let mut body = |name, op, flags, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Vec::new();
        f(&mut b);
        v.push((name, op, flags, b));
    };
    body("startup", OpCode::Startup, 0, &|b| {
        StartupBody { topic: "orders" }.encode(b)
    });
    body("startup-default", OpCode::Startup, 0, &|_| {});
    body("startup-forwarded", OpCode::Startup, 0, &|b| {
        crate::wire::forward::Startup {
            topic: "orders",
            forwarded_by: Some(3),
        }
        .encode(b)
    });
    body("produce-keyed", OpCode::Produce, 0, &|b| {
        encode_produce_body(None, b"user-1", [&b"hello"[..], b"{\"a\":1}"], b)
    });
    body(
        "produce-timestamp",
        OpCode::Produce,
        Flags::WITH_TIMESTAMP,
        &|b| encode_produce_body(Some(1_700_000_000_000_000), b"", [&b"m"[..]], b),
    );
    body(
        "produce-compressed",
        OpCode::Produce,
        Flags::COMPRESSED,
        &|b| {
            let mut enc =
                crate::wire::produce_compressed::CompressedEncoder::new(1).expect("a zstd context");
            let msgs = [&b"hello"[..], b"{\"a\":1}", b""];
            enc.encode(b"user-1", 1_700_000_000_000_000, msgs, b)
                .expect("messages encode");
        },
    );
    body("register", OpCode::Register, 0, &|b| {
        RegisterBody {
            policy: StartPolicy::Earliest,
            consumer_id: "c1".into(),
            group: "g".into(),
            topics: vec!["orders".into(), "audit".into()],
        }
        .encode(b)
    });
    body("poll", OpCode::Poll, 0, &|b| {
        PollBody {
            consumer_id: "c1".into(),
            max_wait_ms: Some(500),
        }
        .encode(b)
    });
    body("commit-all", OpCode::Commit, 0, &|b| {
        CommitBody {
            consumer_id: "c1".into(),
            positions: None,
        }
        .encode(b)
    });
    body("commit-positions", OpCode::Commit, 0, &|b| {
        CommitBody {
            consumer_id: "c1".into(),
            positions: Some(vec![CommitPosition {
                topic: "orders".into(),
                token: i64::MIN,
                range_index: 2,
                gen: 1,
                offset: 42,
            }]),
        }
        .encode(b)
    });
    body("goodbye", OpCode::Goodbye, 0, &|b| {
        ConsumerIdBody {
            consumer_id: "c1".into(),
        }
        .encode(b)
    });
    body("fetch", OpCode::Fetch, 0, &|b| {
        FetchBody {
            topic: "orders".into(),
            partition: 3,
            from: FetchFrom::Offset(100),
            max_bytes: 1 << 20,
            max_wait_ms: Some(100),
        }
        .encode(b)
    });
    body("fetch-by-time", OpCode::Fetch, Flags::BY_TIME, &|b| {
        FetchBody {
            topic: "orders".into(),
            partition: 1,
            from: FetchFrom::Time(1_796_073_772_666_405),
            max_bytes: 1 << 16,
            max_wait_ms: None,
        }
        .encode(b)
    });
    body("error", OpCode::Error, 0, &|b| {
        ErrorBody::new(ErrorCode::Routing, "no partition owns this key").encode(b)
    });
    body("heartbeat", OpCode::Heartbeat, 0, &|_| {});
    body("group-register", OpCode::Group, 0, &|b| {
        use crate::wire::group::{GroupOp, GroupRequest, GroupStart};
        GroupRequest {
            group: "g".into(),
            consumer: "c1".into(),
            op: GroupOp::Register {
                start: GroupStart::Earliest,
                topics: vec![("orders".into(), 6)],
            },
        }
        .encode(b)
    });
    body("group-returned", OpCode::Group, 0, &|b| {
        use crate::wire::group::{GroupOp, GroupPosition, GroupRequest};
        GroupRequest {
            group: "g".into(),
            consumer: "c1".into(),
            op: GroupOp::Returned {
                session: 3,
                positions: vec![GroupPosition {
                    topic: "orders".into(),
                    partition: 2,
                    offset: 40,
                }],
            },
        }
        .encode(b)
    });
    body("group-answer-plan", OpCode::GroupAnswer, 0, &|b| {
        use crate::wire::group::{GroupAnswer, GroupTarget};
        GroupAnswer::Plan {
            session: 3,
            targets: vec![GroupTarget {
                topic: "orders".into(),
                partition: 2,
                offset: Some(40),
            }],
        }
        .encode(b)
    });
    v
}

/// A poll response of two items, one chunk payload, and its raw records.
fn poll_response() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut records = RecordBuf::default();
    for i in 0..5 {
        records.push(1_700_000_000_000_000 + i, format!("message {i}").as_bytes());
    }
    let payload = compress(&records);
    let header = |topic, offset| PollItemHeader {
        token: -4_611_686_018_427_387_904,
        range_index: 1,
        gen_version: 1,
        topic,
        offset,
        payload_len: payload.len() as u32,
    };
    let response = PollResponse {
        items: vec![
            PollItem {
                header: header("orders", 0),
                payload: &payload,
            },
            PollItem {
                header: header("audit", 10),
                payload: &payload,
            },
        ],
    };
    let mut out = Vec::new();
    response.encode(&mut out);
    (out, payload.clone(), records.bytes)
}

/// The compressed payload (a zstd frame with checksum) of `records`, as a chunk holds it.
fn compress(records: &RecordBuf) -> Vec<u8> {
    let chunk = encode_chunk(0, records);
    let len = u32::from_be_bytes([chunk[1], chunk[2], chunk[3], chunk[4]]) as usize;
    chunk[HEADER_LEN..HEADER_LEN + len].to_vec()
}

/// A whole chunk (header, payload, padding) of `records` from `start`.
fn encode_chunk(start: i64, records: &RecordBuf) -> Vec<u8> {
    let Ok(mut enc) = ChunkEncoder::new(1) else {
        return Vec::new();
    };
    let mut out = vec![0u8; ChunkEncoder::max_encoded_len(records.bytes.len())];
    match enc.encode(start, records, &mut out) {
        Ok((_, padded)) => {
            out.truncate(padded);
            out
        }
        Err(_) => Vec::new(),
    }
}

/// Two chunks: a small one, and one of many records, both unpadded (the target reads the
/// header and payload).
fn chunks() -> (Vec<u8>, Vec<u8>) {
    let mut small = RecordBuf::default();
    small.push(1, b"one");
    small.push(2, b"two");
    let mut many = RecordBuf::default();
    for i in 0..40 {
        many.push(i, format!("{{\"seq\":{i}}}").as_bytes());
    }
    let trim = |mut c: Vec<u8>| {
        let len = u32::from_be_bytes([c[1], c[2], c[3], c[4]]) as usize;
        c.truncate(HEADER_LEN + len);
        c
    };
    (
        trim(encode_chunk(0, &small)),
        trim(encode_chunk(1000, &many)),
    )
}

/// HTTP/1.1 requests the broker serves.
fn http_heads() -> Vec<(&'static str, String)> {
    vec![
        (
            "produce",
            "POST /v1/topic/orders/messages?partitionKey=k1 HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: 12\r\n\r\n{\"a\":1}\n{}\n\n"
                .to_string(),
        ),
        (
            "register",
            "POST /v1/consumer/register?consumerId=c1&group=g&topic=orders&topic=a%20b \
             HTTP/1.1\r\nHost: x\r\n\r\n"
                .to_string(),
        ),
        (
            "metrics",
            "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_string(),
        ),
        (
            "chunked",
            "POST /v1/topics/t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_string(),
        ),
    ]
}

/// A gRPC request stream: two ProduceRequest messages and a ConsumeRequest.
fn grpc_stream() -> Vec<u8> {
    use prost::Message;
    let mut out = vec![0x2a];
    for v in [&b"first value"[..], b"second"] {
        let m = crate::proto::log::ProduceRequest {
            value: bytes::Bytes::copy_from_slice(v),
        };
        grpc::encode(&m.encode_to_vec(), &mut out);
    }
    let c = crate::proto::log::ConsumeRequest { offset: 12 };
    grpc::encode(&c.encode_to_vec(), &mut out);
    out
}

/// Segment directories written by a real log: one segment with its index, several segments,
/// and a cleanly closed log (with its marker). Empty if the runtime is not available.
fn segment_dirs() -> Vec<(String, Vec<DirFile>)> {
    let tmp = std::env::temp_dir();
    let mut out = Vec::new();
    for (name, segment_size, chunks, clean) in [
        ("one-segment", 1u64 << 20, 4usize, false),
        ("three-segments", 8 << 10, 6, false),
        ("clean", 1 << 20, 3, true),
    ] {
        let dir = tmp.join(format!("shardlog-fuzz-seed-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = LogConfig {
            segment_size,
            durability: Durability::Write,
            zstd_level: 1,
            retention_age: None,
            retention_bytes: None,
            tail_bytes: 0,
            reclaim_step: LogConfig::RECLAIM_STEP,
        };
        let d = dir.clone();
        let written = crate::rt::block_on_reused(async move {
            let (log, _) = PartitionLog::open(&d, config).await.ok()?;
            for c in 0..chunks {
                let mut b = RecordBuf::default();
                for i in 0..3 {
                    b.push(i, format!("chunk {c} record {i}").as_bytes());
                }
                log.append(&b).await.ok()?;
            }
            if clean {
                log.close_clean().await.ok()
            } else {
                log.close().await.ok()
            }
        });
        if written.is_some() {
            out.push((name.to_string(), read_dir_files(&dir)));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    out
}

/// The segment files, indexes and marker of a log directory, by name.
fn read_dir_files(dir: &std::path::Path) -> Vec<DirFile> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let Ok(bytes) = std::fs::read(dir.join(&name)) else {
            continue;
        };
        let base = |ext: &str| name.strip_suffix(ext).and_then(|b| b.parse::<i64>().ok());
        if let Some(base) = base(".log") {
            debug_assert_eq!(log_file_name(base), name);
            files.push(DirFile::Log { base, bytes });
        } else if let Some(base) = base(".index") {
            debug_assert_eq!(index_file_name(base), name);
            files.push(DirFile::Index { base, bytes });
        } else if name == "clean" {
            files.push(DirFile::Clean { bytes });
        }
    }
    files
}

/// Offsets files of both versions.
fn offsets_files() -> Vec<(&'static str, Vec<u8>)> {
    let mut o = BTreeMap::new();
    o.insert(("orders".to_string(), 0u32), 42i64);
    o.insert(("orders".to_string(), 3), 7);
    o.insert(("audit".to_string(), 1), 0);
    let long = "g".repeat(offsets::MAX_NAMED_GROUP + 2);
    vec![
        ("named", offsets::encode("group-1", &o)),
        ("hashed", offsets::encode(&long, &o)),
        ("empty", offsets::encode("g", &BTreeMap::new())),
    ]
}
