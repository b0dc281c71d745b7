//! A producer's connections for one topic ([`TopicConns`]): a few slots per topic, each with
//! a connection per broker address it sends to (one, unless the producer routes by the
//! cluster map), made (and remade after a failure) on demand and started with STARTUP; and
//! the order in which batches take turns on a slot, which keeps one key's frames in order
//! (first attempts by the slot's line, retries by its [`SlotOrder`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use shardlog_wire::OpCode;

use crate::batch::Route;
use crate::mux::Mux;
use crate::producer::ProducerConfig;
use crate::slot_order::{SlotOrder, Ticket};
use crate::ClientError;

/// A topic's connections, made (and remade after a failure) on demand, each starting with
/// STARTUP for the topic.
pub(crate) struct TopicConns {
    topic: String,
    brokers: Vec<String>,
    max_in_flight: usize,
    timeout: Duration,
    slots: Vec<Slot>,
    keyless: std::sync::atomic::AtomicUsize,
}

struct Slot {
    /// Its connection to each broker address it sent to (closed ones are dropped when another
    /// is made, so at most one per broker of the cluster).
    conns: tokio::sync::Mutex<HashMap<String, Arc<Mux>>>,
    /// Frames take turns on a slot in the order they were dispatched (see [`TopicConns::order`]).
    line: Arc<tokio::sync::Mutex<()>>,
    /// Keeps retried frames in dispatch order too.
    retries: Arc<SlotOrder>,
}

/// A dispatched batch's place on its slot: its turn in line for the first attempt (taken at
/// dispatch, released once that attempt is handed over) and its ticket in the slot's order.
pub(crate) struct Place {
    slot: usize,
    line: Option<Pin<Box<dyn Future<Output = Turn> + Send>>>,
    ticket: Ticket,
    retry: bool,
}

impl Place {
    /// The attempt failed and the batch will be sent again (after the batches before it).
    pub(crate) fn failed(&mut self) {
        self.line = None;
        self.retry = true;
        self.ticket.failed();
    }
}

/// A place in a slot's line: holding it, a frame is the next to be written on the slot.
pub(crate) type Turn = tokio::sync::OwnedMutexGuard<()>;

impl TopicConns {
    pub(crate) fn new(topic: &str, config: &ProducerConfig) -> TopicConns {
        let n = config.connections_per_topic.max(1);
        TopicConns {
            topic: topic.to_string(),
            brokers: config.brokers.clone(),
            max_in_flight: config.max_in_flight,
            timeout: config.request_timeout,
            slots: (0..n)
                .map(|_| Slot {
                    conns: tokio::sync::Mutex::new(HashMap::new()),
                    line: Arc::new(tokio::sync::Mutex::new(())),
                    retries: Arc::default(),
                })
                .collect(),
            keyless: Default::default(),
        }
    }

    /// The connection a route uses: keyless batches take turns; a keyed route always the same.
    pub(crate) fn slot_for(&self, route: &Route) -> usize {
        use std::hash::{Hash, Hasher};
        let n = self.slots.len();
        match route {
            Route::Keyless => {
                self.keyless
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    % n
            }
            r => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                r.hash(&mut h);
                (h.finish() as usize) % n
            }
        }
    }

    /// Takes a place on `slot`, synchronously, so batches dispatched one after another are
    /// written in that order even though each is sent by its own task, retries included.
    pub(crate) fn enter(&self, slot: usize) -> Place {
        Place {
            slot,
            line: Some(self.line_turn(slot)),
            ticket: self.slots[slot].retries.enter(),
            retry: false,
        }
    }

    fn line_turn(&self, slot: usize) -> Pin<Box<dyn Future<Output = Turn> + Send>> {
        let line = self.slots[slot].line.clone();
        // `lock_owned` queues fairly (FIFO) from the moment the future is first polled; poll it
        // here once so the place is taken now.
        let mut fut = Box::pin(line.lock_owned());
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(turn) => Box::pin(async move { turn }),
            Poll::Pending => fut,
        }
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// The broker address `slot` uses when no route names one: the configured brokers in turn.
    pub(crate) fn default_addr(&self, slot: usize) -> &str {
        &self.brokers[slot % self.brokers.len()]
    }

    /// Sends one PRODUCE body on its `place`'s connection to `addr` when its turn comes, and
    /// waits for its answer. On an error, the caller says [`Place::failed`] before trying again.
    pub(crate) async fn produce(
        &self,
        place: &mut Place,
        addr: &str,
        flags: u8,
        body: &[u8],
    ) -> Result<(), ClientError> {
        // The first attempt's place in line is let go once the frame is handed over (or the
        // attempt failed before that); a retry has none.
        let line = match place.line.take() {
            Some(t) => Some(t.await),
            None => None,
        };
        place.ticket.turn(place.retry).await;
        let conn = self.connection(place.slot, addr).await?;
        let pending = conn.send(OpCode::Produce, flags, body).await;
        if pending.is_ok() {
            place.ticket.handed_over(place.retry);
        }
        drop(line);
        let answer = pending?.answer().await?;
        match answer.opcode()? {
            OpCode::ProduceResponse => Ok(()),
            other => Err(ClientError::ConnectionLost(format!(
                "unexpected {other:?} to PRODUCE"
            ))),
        }
    }

    async fn connection(&self, slot: usize, addr: &str) -> Result<Arc<Mux>, ClientError> {
        let mut conns = self.slots[slot].conns.lock().await;
        if let Some(c) = conns.get(addr).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        conns.retain(|_, c| !c.is_closed());
        let mux = Mux::connect(addr, 1 << 20, self.max_in_flight, self.timeout).await?;
        let mut body = Vec::new();
        shardlog_wire::startup::StartupBody { topic: &self.topic }.encode(&mut body);
        let ready = mux.call(OpCode::Startup, 0, &body).await?;
        if ready.opcode()? != OpCode::Ready {
            return Err(ClientError::ConnectionLost("no READY to STARTUP".into()));
        }
        let mux = Arc::new(mux);
        conns.insert(addr.to_string(), mux.clone());
        Ok(mux)
    }
}

/// A waker that does nothing: polling a future once to start it, not to be woken by it.
fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}
