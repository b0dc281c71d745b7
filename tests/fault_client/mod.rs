//! For the injected I/O error tests (`tests/io_faults*.rs`): one produce or read on any of the
//! three transports, with the answer the client got written down as text, so a test can both
//! check it and print the table the docs show; and the names of one topic's partition
//! directories, so a fail point can be put under one partition.
#![allow(dead_code)]

use std::fmt;
use std::net::SocketAddr;

use shardlog::ring::{ShardOwnership, TopicLayout};

use super::common::framed::FramedProducer;
use super::common::http::HttpClient;
use super::grpc_client::{connect, runtime, Client};

/// Shards and ranges per shard of the brokers these tests start: four partitions per topic,
/// 0 and 1 on shard 0, 2 and 3 on shard 1.
pub const SHARDS: usize = 2;
pub const RANGES: u32 = 2;

/// The transports a produce can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Framed,
    Rest,
    Grpc,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Framed, Transport::Rest, Transport::Grpc];

    pub fn name(self) -> &'static str {
        match self {
            Transport::Framed => "framed",
            Transport::Rest => "rest",
            Transport::Grpc => "grpc",
        }
    }
}

/// What a client was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Acknowledged (READY/PRODUCE_RESPONSE, HTTP 2xx, gRPC OK).
    Ok,
    /// Framed ERROR code and message.
    Framed(u8, String),
    /// HTTP status and body.
    Http(u16, String),
    /// gRPC status code and message.
    Grpc(tonic::Code, String),
}

impl Answer {
    pub fn is_ok(&self) -> bool {
        *self == Answer::Ok
    }

    /// The code alone: `5`, `500`, `Internal`.
    pub fn code(&self) -> String {
        match self {
            Answer::Ok => "ok".into(),
            Answer::Framed(c, _) => c.to_string(),
            Answer::Http(s, _) => s.to_string(),
            Answer::Grpc(c, _) => format!("{c:?}"),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Answer::Ok => "",
            Answer::Framed(_, m) | Answer::Http(_, m) | Answer::Grpc(_, m) => m,
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.message())
    }
}

/// The partition directory name of partition `j` of a topic of these brokers.
pub fn partition_dir(j: u32) -> String {
    TopicLayout::new(SHARDS as u32, RANGES)
        .partition_id(j)
        .dir_name()
}

/// A key whose messages go to partition `j`, and the shard that owns it.
pub fn key_of(j: u32) -> (String, usize) {
    let layout = TopicLayout::new(SHARDS as u32, RANGES);
    let keys = super::common::keys_per_partition(&layout);
    let key = keys
        .into_iter()
        .find(|k| layout.partition_of_key(k.as_bytes()) == j)
        .expect("a key for every partition");
    (key, layout.owner(j, SHARDS))
}

/// Producers on every transport to one broker.
pub struct Producers {
    framed: SocketAddr,
    http: SocketAddr,
    rt: tokio::runtime::Runtime,
    grpc: Client,
    rest: HttpClient,
    /// One framed connection per topic (STARTUP names the topic).
    connections: Vec<(String, FramedProducer)>,
}

impl Producers {
    pub fn new(framed: SocketAddr, http: SocketAddr) -> Producers {
        let rt = runtime();
        let grpc = Client::new(rt.block_on(connect(http)));
        Producers {
            framed,
            http,
            rt,
            grpc,
            rest: HttpClient::connect(http),
            connections: Vec::new(),
        }
    }

    /// Produces one message `body` with `key` to `topic` over `t`. A framed connection is
    /// started for the topic on first use (its STARTUP must be answered READY).
    pub fn produce(&mut self, t: Transport, topic: &str, key: &str, body: &[u8]) -> Answer {
        match t {
            Transport::Framed => {
                let framed = self.framed;
                let i = match self.connections.iter().position(|(n, _)| n == topic) {
                    Some(i) => i,
                    None => {
                        let p = FramedProducer::startup(framed, topic);
                        self.connections.push((topic.to_string(), p));
                        self.connections.len() - 1
                    }
                };
                match self.connections[i].1.produce(key.as_bytes(), &[body]) {
                    Ok(()) => Answer::Ok,
                    Err((code, message)) => Answer::Framed(code, message),
                }
            }
            Transport::Rest => {
                let json = format!("\"{}\"", String::from_utf8_lossy(body));
                let r = self
                    .rest
                    .produce(topic, Some(key), "application/json", json.as_bytes());
                if (200..300).contains(&r.status) {
                    Answer::Ok
                } else {
                    Answer::Http(r.status, r.text())
                }
            }
            Transport::Grpc => {
                let md = [("topic", topic), ("partition-key", key)];
                let r = self
                    .rt
                    .block_on(self.grpc.produce(&md, vec![body.to_vec()]));
                match r {
                    Ok(_) => Answer::Ok,
                    Err(s) => Answer::Grpc(s.code(), s.message().to_string()),
                }
            }
        }
    }

    /// Reads from `offset` of partition `j` of `topic` with gRPC Consume: the first record's
    /// value, or the status the call ended with.
    pub fn grpc_read(&mut self, topic: &str, j: u32, offset: u64) -> Result<Vec<u8>, Answer> {
        let p = j.to_string();
        let md = [("topic", topic), ("partition", p.as_str())];
        self.rt
            .block_on(self.grpc.consume_n(&md, offset, 1))
            .map(|mut records| records.remove(0).value.to_vec())
            .map_err(|s| Answer::Grpc(s.code(), s.message().to_string()))
    }

    /// The HTTP port's address (for a REST consumer of the test's own).
    pub fn http(&self) -> SocketAddr {
        self.http
    }
}

/// Text of `len` letters and digits (about 6 bits of entropy a byte, so zstd shrinks it only a
/// little), starting with `tag`; valid inside a JSON string.
pub fn text(tag: &str, len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut b = tag.as_bytes().to_vec();
    let mut x = seed | 1;
    while b.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.push(ALPHABET[(x % ALPHABET.len() as u64) as usize]);
    }
    b
}
