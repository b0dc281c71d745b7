//! The producers of a chaos run, each a tokio task paced to its share of `--rate`: the
//! framed `shardlog-client` [`Producer`] (keyed and keyless; it retries across a crash) and
//! gRPC `Produce` calls (keyed and unkeyed; a failed call is not retried, its values are
//! "maybe"). Every message gets its id from the ledger and its outcome is written back there.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shardlog::proto::log::{ProduceRequest, ProduceResponse};
use shardlog_client::{Producer, ProducerConfig};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::tokio_stream;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::Request;
use tonic_prost::ProstCodec;

use super::ledger::{key_name, lock, SharedLedger, Source, State, KEYS, NO_KEY};
use crate::client::grpc::{ascii, connect, PRODUCE_PATH};

/// What every producer task shares.
#[derive(Clone)]
pub struct LoadContext {
    pub topic: String,
    pub framed: String,
    pub http: String,
    pub ledger: SharedLedger,
    /// Even while the broker is up, odd from a kill until it is ready again.
    pub epoch: Arc<AtomicU32>,
    pub stop: Arc<AtomicBool>,
    /// Messages per second for each producer.
    pub rate_each: f64,
    pub seed: u64,
    /// Largest filler after a message's id.
    pub max_pad: usize,
}

/// How long one tick of pacing is.
const TICK: Duration = Duration::from_millis(20);

impl LoadContext {
    fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn per_tick(&self) -> usize {
        ((self.rate_each * TICK.as_secs_f64()).round() as usize).max(1)
    }

    fn rng(&self, source: Source) -> SmallRng {
        SmallRng::seed_from_u64(
            self.seed ^ 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(source.index() as u64 + 1),
        )
    }
}

/// Starts the four producers; they run until `stop`.
pub fn spawn_all(ctx: &LoadContext, producer: Producer) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(framed(ctx.clone(), producer.clone(), Source::FramedKeyed)),
        tokio::spawn(framed(ctx.clone(), producer, Source::FramedKeyless)),
        tokio::spawn(grpc(ctx.clone(), Source::GrpcKeyed)),
        tokio::spawn(grpc(ctx.clone(), Source::GrpcUnkeyed)),
    ]
}

/// The framed producer's settings for a chaos run: retries enough to outlast a restart, a
/// request timeout longer than any SIGSTOP pause (so only a crash makes it retry).
pub fn producer_config(ctx: &LoadContext) -> ProducerConfig {
    let mut c = ProducerConfig::new(ctx.framed.clone());
    c.admin = Some(ctx.http.clone());
    c.retries = 40;
    c.retry_backoff = Duration::from_millis(20);
    c.request_timeout = Duration::from_secs(120);
    c.connections_per_topic = 2;
    c
}

async fn framed(ctx: LoadContext, producer: Producer, source: Source) {
    let mut rng = ctx.rng(source);
    let mut next_key = 0u8;
    while !ctx.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(TICK).await;
        for _ in 0..ctx.per_tick() {
            let key = match source {
                Source::FramedKeyed => {
                    next_key = (next_key + 1) % KEYS;
                    next_key
                }
                _ => NO_KEY,
            };
            let Some(ids) = lock(&ctx.ledger).issue(source, key, 1, ctx.epoch()) else {
                break;
            };
            let id = ids[0];
            let body = Bytes::from(id.body(rng.gen_range(0..=ctx.max_pad)));
            let key_bytes = id.key_bytes();
            match producer.send(&ctx.topic, key_bytes.as_deref(), body).await {
                Ok(delivery) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let state = match delivery.await {
                            Ok(()) => State::Acked,
                            Err(_) => State::Maybe,
                        };
                        lock(&ctx.ledger).answer(id, state, ctx.epoch());
                    });
                }
                Err(_) => lock(&ctx.ledger).answer(id, State::NotSent, ctx.epoch()),
            }
        }
    }
}

async fn grpc(ctx: LoadContext, source: Source) {
    let mut rng = ctx.rng(source);
    let mut channel: Option<Channel> = None;
    let mut next_key = 0u8;
    while !ctx.stop.load(Ordering::SeqCst) {
        let ch = match &channel {
            Some(c) => c.clone(),
            None => match connect(&ctx.http, Duration::from_secs(2), None).await {
                Ok(c) => {
                    channel = Some(c.clone());
                    c
                }
                Err(_) => {
                    tokio::time::sleep(TICK).await;
                    continue;
                }
            },
        };
        let n = rng.gen_range(1..=16usize);
        let key = match source {
            Source::GrpcKeyed => {
                next_key = (next_key + 1) % KEYS;
                next_key
            }
            _ => NO_KEY,
        };
        let Some(ids) = lock(&ctx.ledger).issue(source, key, n, ctx.epoch()) else {
            tokio::time::sleep(TICK).await;
            continue;
        };
        let values: Vec<ProduceRequest> = ids
            .iter()
            .map(|id| ProduceRequest {
                value: Bytes::from(id.body(rng.gen_range(0..=ctx.max_pad))),
            })
            .collect();
        let ok = call(ch, &ctx.topic, key, values).await;
        let state = if ok { State::Acked } else { State::Maybe };
        {
            let mut l = lock(&ctx.ledger);
            let epoch = ctx.epoch();
            for id in &ids {
                l.answer(*id, state, epoch);
            }
        }
        if !ok {
            channel = None;
        }
        let pause = TICK.mul_f64(n as f64 / ctx.per_tick() as f64);
        tokio::time::sleep(pause).await;
    }
}

/// One `Produce` call; `true` once the broker answered OK (every value durable).
async fn call(ch: Channel, topic: &str, key: u8, values: Vec<ProduceRequest>) -> bool {
    let mut md = MetadataMap::new();
    let (Ok(t), Ok(k)) = (
        ascii(topic, "topic"),
        ascii(&key_name(key), "partition-key"),
    ) else {
        return false;
    };
    md.insert("topic", t);
    if key != NO_KEY {
        md.insert("partition-key", k);
    }
    let mut req = Request::new(tokio_stream::iter(values));
    *req.metadata_mut() = md;
    let mut grpc = tonic::client::Grpc::new(ch);
    let answer = tokio::time::timeout(Duration::from_secs(120), async {
        grpc.ready().await.map_err(|e| e.to_string())?;
        grpc.client_streaming(
            req,
            PathAndQuery::from_static(PRODUCE_PATH),
            ProstCodec::<ProduceRequest, ProduceResponse>::default(),
        )
        .await
        .map_err(|s| s.to_string())
    })
    .await;
    matches!(answer, Ok(Ok(_)))
}
