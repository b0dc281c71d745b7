//! [`Producer`]: messages are batched per partition (per key when the topic's layout is not
//! known, keyless ones together), each batch sent as one PRODUCE frame when it is full or has
//! lingered, frames pipelined on a few connections per topic. Every message gets a
//! [`Delivery`] that resolves once the broker acknowledged it durably.
//!
//! Delivery is **at-least-once**: a batch whose answer was lost (the connection dropped, the
//! request timed out) or that the broker refused retryably is sent again, so it may be stored
//! twice. Messages of one key stay in order: a route (partition or key) always uses the same
//! connection slot, whose frames the broker applies in order, and a slot re-sends failed
//! batches in the order they were first dispatched, ahead of any dispatched later (see
//! `slot_order.rs`). The one exception: a batch the broker refused retryably while it
//! stored a later one from the same connection lands after it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use shardlog_wire::produce::encode_produce_body;
use shardlog_wire::produce_compressed::CompressedEncoder;
use shardlog_wire::ring::TopicLayout;
use shardlog_wire::startup::validate_topic;
use shardlog_wire::Flags;

use crate::admin::{Admin, Layouts};
use crate::batch::{Batch, Batches, Route};
use crate::cluster::Routes;
use crate::conns::TopicConns;
use crate::ClientError;

/// How a [`Producer`] batches, pipelines, retries and bounds memory.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Framed-protocol addresses (`host:port`) of the brokers; connections go to them in turn.
    pub brokers: Vec<String>,
    /// How long a batch waits for more messages before it is sent.
    pub linger: Duration,
    /// Largest PRODUCE body; at most the broker's `--max-frame-size`.
    pub max_batch_bytes: usize,
    /// Connections per topic (keyless messages spread over them).
    pub connections_per_topic: usize,
    /// Frames waiting for an answer per connection.
    pub max_in_flight: usize,
    /// Message bytes sent or batched but not yet acknowledged; `send` waits past it.
    pub max_unacked_bytes: usize,
    /// Times a batch is sent again after a retryable failure.
    pub retries: u32,
    /// Wait before the first retry; doubles each time, up to 5 s.
    pub retry_backoff: Duration,
    /// How long one request (and one connect) may take.
    pub request_timeout: Duration,
    /// The broker's HTTP address (`host:port`, its admin API), if any. With it, the producer
    /// asks for a topic's layout once, when the topic is first sent to, and batches keyed
    /// messages per partition (several keys share a batch) instead of per key. A topic that
    /// does not exist yet at that moment stays batched per key; create it first
    /// (`Admin::create_topic`) to have it routed by partition. When the broker is one of a
    /// cluster, the producer also reads the cluster's map (`GET /v1/cluster`) and sends each
    /// partition's batches straight to its leader, keyless batches to the brokers that are up
    /// in turn (see [`crate::cluster`]).
    pub admin: Option<String>,
    /// Compress each batch here, at this zstd level, and send it as a compressed PRODUCE
    /// (flag `0x08`): the broker checks and stores the bytes as they came instead of
    /// compressing them on its own core. `None` (the default) sends plain frames. Records
    /// are stamped with this client's clock when the batch is sent.
    pub compression: Option<i32>,
}

impl ProducerConfig {
    /// Defaults for a broker at `broker` (e.g. `127.0.0.1:9254`).
    pub fn new(broker: impl Into<String>) -> ProducerConfig {
        ProducerConfig {
            brokers: vec![broker.into()],
            linger: Duration::from_millis(5),
            max_batch_bytes: 1 << 20,
            connections_per_topic: 4,
            max_in_flight: 32,
            max_unacked_bytes: 64 << 20,
            retries: 5,
            retry_backoff: Duration::from_millis(50),
            request_timeout: Duration::from_secs(30),
            admin: None,
            compression: None,
        }
    }
}

/// Resolves when the message is acknowledged (durable on the broker), or failed for good.
#[must_use = "a delivery says whether the message was stored"]
pub struct Delivery(oneshot::Receiver<Result<(), ClientError>>);

impl Future for Delivery {
    type Output = Result<(), ClientError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

/// Told the outcome of one message; holds its share of the unacknowledged-bytes budget.
struct Waiter {
    reply: oneshot::Sender<Result<(), ClientError>>,
    _budget: OwnedSemaphorePermit,
}

enum Command {
    Send {
        route: Route,
        key: Bytes,
        value: Bytes,
        waiter: Waiter,
    },
    /// Send every open batch now.
    Flush(oneshot::Sender<()>),
}

/// A producer for any number of topics. Cheap to clone; all clones share batches and
/// connections. Needs a tokio runtime.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProducerConfig,
    topics: Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>,
    layouts: Layouts,
    routes: Arc<Routes>,
    budget: Arc<Semaphore>,
    budget_total: u32,
}

impl Producer {
    /// A producer; connections are made when a topic is first sent to.
    pub fn new(config: ProducerConfig) -> Result<Producer, ClientError> {
        if config.brokers.is_empty() {
            return Err(ClientError::Invalid("no broker address".into()));
        }
        let budget_total = config.max_unacked_bytes.clamp(1, u32::MAX as usize) as u32;
        let admin = config
            .admin
            .as_ref()
            .map(|a| Admin::new(a.clone()).with_timeout(config.request_timeout));
        Ok(Producer {
            inner: Arc::new(Inner {
                budget: Arc::new(Semaphore::new(budget_total as usize)),
                budget_total,
                layouts: Layouts::new(admin.clone()),
                routes: Arc::new(Routes::new(admin)),
                config,
                topics: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Routes `topic`'s keyed messages by its layout (as the admin API describes it), so that
    /// messages of different keys in one partition share batches.
    pub fn set_layout(&self, topic: &str, layout: TopicLayout) {
        self.inner.layouts.set(topic, layout);
    }

    /// Queues one message (`key` picks its partition; `None` or empty: keyless) and returns
    /// its [`Delivery`]. Waits while `max_unacked_bytes` are unacknowledged.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: impl Into<Bytes>,
    ) -> Result<Delivery, ClientError> {
        let value = value.into();
        let key = key.unwrap_or_default();
        validate_topic(topic).map_err(|e| ClientError::Invalid(e.to_string()))?;
        if key.len() > u8::MAX as usize {
            return Err(ClientError::Invalid("a key is at most 255 bytes".into()));
        }
        let frame = 1 + key.len() + 4 + value.len();
        if frame > self.inner.config.max_batch_bytes.max(1) && frame > (4 << 20) {
            return Err(ClientError::Invalid(format!(
                "a message of {} bytes does not fit in a frame",
                value.len()
            )));
        }
        let cost = (value.len() + 4).clamp(1, self.inner.budget_total as usize) as u32;
        let permit = self
            .inner
            .budget
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| ClientError::Closed)?;
        // One copy of the key per message (the route shares it).
        let key_bytes = Bytes::copy_from_slice(key);
        let route = if key.is_empty() {
            Route::Keyless
        } else {
            match self.inner.layouts.get(topic).await {
                Some(l) => Route::Partition(l.partition_of_key(key)),
                None => Route::Key(key_bytes.clone()),
            }
        };
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Send {
            route,
            key: key_bytes,
            value,
            waiter: Waiter {
                reply,
                _budget: permit,
            },
        };
        self.topic(topic)
            .send(cmd)
            .map_err(|_| ClientError::Closed)?;
        Ok(Delivery(rx))
    }

    /// Sends every open batch now and waits until every message sent before the call is
    /// acknowledged or failed.
    pub async fn flush(&self) {
        let senders: Vec<_> = lock(&self.inner.topics).values().cloned().collect();
        for s in senders {
            let (tx, rx) = oneshot::channel();
            if s.send(Command::Flush(tx)).is_ok() {
                let _ = rx.await;
            }
        }
        // Every unacknowledged message holds part of the budget: all of it back means none is.
        if let Ok(all) = self
            .inner
            .budget
            .acquire_many(self.inner.budget_total)
            .await
        {
            drop(all);
        }
    }

    /// The sender of `topic`'s task, started on first use.
    fn topic(&self, topic: &str) -> mpsc::UnboundedSender<Command> {
        let mut topics = lock(&self.inner.topics);
        if let Some(s) = topics.get(topic) {
            if !s.is_closed() {
                return s.clone();
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let conns = Arc::new(TopicConns::new(topic, &self.inner.config));
        let routes = self.inner.routes.clone();
        tokio::spawn(run_topic(self.inner.config.clone(), conns, routes, rx));
        topics.insert(topic.to_string(), tx.clone());
        tx
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One topic's batching loop: adds messages, sends batches that are full or due.
async fn run_topic(
    config: ProducerConfig,
    conns: Arc<TopicConns>,
    routes: Arc<Routes>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut batches: Batches<Waiter> = Batches::new(config.max_batch_bytes, config.linger);
    loop {
        let cmd = match batches.next_due() {
            Some(due) => tokio::select! {
                c = commands.recv() => c,
                _ = tokio::time::sleep_until(due.into()) => {
                    for b in batches.take_due(Instant::now()) {
                        dispatch(&config, &conns, &routes, b);
                    }
                    continue;
                }
            },
            None => commands.recv().await,
        };
        match cmd {
            Some(Command::Send {
                route,
                key,
                value,
                waiter,
            }) => {
                for b in batches.add(route, key, value, waiter) {
                    dispatch(&config, &conns, &routes, b);
                }
            }
            Some(Command::Flush(done)) => {
                for b in batches.take_all() {
                    dispatch(&config, &conns, &routes, b);
                }
                let _ = done.send(());
            }
            None => {
                // Every producer handle is gone: send what is left.
                for b in batches.take_all() {
                    dispatch(&config, &conns, &routes, b);
                }
                return;
            }
        }
    }
}

/// Sends one batch on its route's connection (in a task of its own, so frames pipeline) and
/// tells its messages the outcome.
fn dispatch(
    config: &ProducerConfig,
    conns: &Arc<TopicConns>,
    routes: &Arc<Routes>,
    batch: Batch<Waiter>,
) {
    let slot = conns.slot_for(&batch.route);
    let (conns, retries, backoff) = (conns.clone(), config.retries, config.retry_backoff);
    let routes = routes.clone();
    // The connection's order is the order frames are handed to it: take a place in line now.
    let mut place = conns.enter(slot);
    let compression = config.compression;
    tokio::spawn(async move {
        let (body, flags) = match encode_body(&batch, compression) {
            Ok(encoded) => encoded,
            Err(e) => {
                for w in batch.waiters {
                    let _ = w.reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let mut delay = backoff;
        let mut attempt = 0;
        let result = loop {
            let addr = match route_addr(&routes, conns.topic(), &batch.route, slot).await {
                Some(addr) => addr,
                None => conns.default_addr(slot).to_string(),
            };
            let r = conns.produce(&mut place, &addr, flags, &body).await;
            match r {
                Err(e) if e.is_retryable() && attempt < retries => {
                    place.failed();
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    // A leader may have moved or gone: read the map again (at most once a
                    // second, and never from a single host).
                    routes.refresh().await;
                }
                r => break r,
            }
        };
        // Later batches of the slot stop waiting for this one before its messages are told.
        drop(place);
        for w in batch.waiters {
            let _ = w.reply.send(result.clone());
        }
    });
}

thread_local! {
    /// This thread's encoder for compressed batches, and its level.
    static ENCODER: RefCell<Option<(i32, CompressedEncoder)>> = const { RefCell::new(None) };
}

/// A batch's PRODUCE body and header flags: plain, or compressed here at `compression`.
fn encode_body(
    batch: &Batch<Waiter>,
    compression: Option<i32>,
) -> Result<(Vec<u8>, u8), ClientError> {
    let messages = batch.messages.iter().map(|m| &m[..]);
    let mut body = Vec::with_capacity(batch.bytes);
    let Some(level) = compression else {
        encode_produce_body(None, &batch.key, messages, &mut body);
        return Ok((body, 0));
    };
    let now = crate::reader::unix_micros(std::time::SystemTime::now());
    ENCODER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let mut encoder = match cell.take() {
            Some((l, encoder)) if l == level => encoder,
            _ => CompressedEncoder::new(level)
                .map_err(|e| ClientError::Invalid(format!("compression level {level}: {e}")))?,
        };
        let encoded = encoder.encode(&batch.key, now, messages, &mut body);
        *cell = Some((level, encoder));
        encoded.map_err(|e| ClientError::Invalid(format!("cannot compress the batch: {e}")))?;
        Ok((body, Flags::COMPRESSED))
    })
}

/// Where the cluster map sends a batch of `route`: its partition's leader, or for keyless
/// batches the up brokers in turn by `slot`. `None` without a map (a single host, no admin
/// address, the map not reachable) or for a key whose partition is not known.
async fn route_addr(routes: &Routes, topic: &str, route: &Route, slot: usize) -> Option<String> {
    match route {
        Route::Keyless => routes.keyless(slot).await,
        Route::Partition(p) => routes.leader(topic, *p).await,
        Route::Key(_) => None,
    }
}
