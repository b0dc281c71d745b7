//! One coordinator per consumer group across the cluster. The coordinator of a group is the
//! broker with the highest weight `murmur3(group | 0x00 | broker id)` among the brokers up in
//! the etcd view (rendezvous hashing): every broker computes the same answer from the same
//! view, and only the groups of a broker that goes down or comes up move.
//!
//! The broker serving a consumer passes its group operations to the coordinator over a framed
//! connection per coordinator (the client crate's [`Mux`], pipelined), whose STARTUP names no
//! topic and says it is a broker's; each request is a GROUP frame (`wire::group`). It remembers
//! which group each of its consumers registered in and at which coordinator
//! ([`Registrations`]), since POLL, COMMIT and GOODBYE name only the consumer.
//!
//! Bounds: the remembered registrations (`--max-consumers`, entries idle past
//! `--consumer-timeout` dropped first), the GROUP requests in flight from this broker
//! (`--max-group-requests`, more refused at once rather than queued), one connection per
//! coordinator, and a timeout on each request ([`ANSWER_TIMEOUT`]). The coordinator serves a
//! connection's requests within its `--max-in-flight`, so one broker's link costs it bounded
//! tasks too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardlog_client::mux::Mux;
use shardlog_client::ClientError;

use super::Cluster;
use crate::error::{Classify, ErrorClass};
use crate::wire::forward::Startup;
use crate::wire::group::{GroupAnswer, GroupRequest};
use crate::wire::ring::murmur3_x64_128;
use crate::wire::{ErrorCode, OpCode, WireError};

/// How long a GROUP request waits for its answer (group operations never long-poll; a commit
/// waits for etcd).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest GROUP_ANSWER taken (a plan lists a consumer's partitions).
const MAX_ANSWER: u32 = 16 << 20;

/// The broker that coordinates `group` among the brokers `up`: the highest weight wins (ties,
/// which need equal 64-bit hashes, go to the higher id).
pub fn coordinator_of(group: &str, up: impl IntoIterator<Item = u32>) -> Option<u32> {
    up.into_iter().max_by_key(|&b| (weight(group, b), b))
}

fn weight(group: &str, broker: u32) -> u64 {
    let mut data = Vec::with_capacity(group.len() + 5);
    data.extend_from_slice(group.as_bytes());
    data.push(0);
    data.extend_from_slice(&broker.to_be_bytes());
    murmur3_x64_128(&data).0
}

/// Why a group operation could not be passed to the group's coordinator.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupLinkError {
    #[error("this broker does not hold its cluster lease now (cut off from etcd)")]
    NoLease,
    #[error("no broker is up to coordinate group '{0}'")]
    NoBroker(String),
    #[error("passing an operation of group '{group}' to its coordinator, broker {broker} at {addr}: {source}")]
    Link {
        group: String,
        broker: u32,
        addr: String,
        #[source]
        source: ClientError,
    },
    /// The coordinator's own refusal (its code and message, passed on).
    #[error("{message}")]
    Refused { code: u8, message: String },
    #[error(
        "broker {broker} answered a GROUP request with bytes that are not an answer: {source}"
    )]
    BadAnswer {
        broker: u32,
        #[source]
        source: WireError,
    },
    #[error("broker {asked} does not coordinate group '{group}' in its view of the cluster (it names {named:?}); the views differ for now: retry")]
    NotCoordinator {
        group: String,
        asked: u32,
        named: Option<u32>,
    },
    #[error("{max} group operations of this broker already wait for their coordinators (--max-group-requests); retry")]
    Busy { max: usize },
    #[error("this broker already remembers {max} consumers registered through it (--max-consumers); retry once one has left")]
    TooManyRemembered { max: usize },
    #[error("the cluster thread stopped")]
    Stopped,
}

impl Classify for GroupLinkError {
    fn class(&self) -> ErrorClass {
        match self {
            // The coordinator's own answer, by its code.
            GroupLinkError::Refused { code, .. } => match ErrorCode::from_u8(*code) {
                Some(ErrorCode::UnknownConsumer) => ErrorClass::UnknownConsumer,
                Some(ErrorCode::BadRequest | ErrorCode::Protocol) => ErrorClass::Invalid,
                Some(ErrorCode::NotFound) => ErrorClass::NotFound,
                Some(ErrorCode::OutOfRange) => ErrorClass::OutOfRange,
                Some(ErrorCode::Storage) => ErrorClass::Storage,
                Some(ErrorCode::ResourceExhausted) => ErrorClass::LimitReached,
                _ => ErrorClass::Unavailable,
            },
            GroupLinkError::TooManyRemembered { .. } => ErrorClass::LimitReached,
            _ => ErrorClass::Unavailable,
        }
    }
}

/// What this broker remembers of a consumer registered through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub group: String,
    /// The coordinator it was registered at.
    pub coordinator: u32,
    used: Instant,
}

/// The consumers registered through this broker, bounded.
pub struct Registrations {
    max: usize,
    idle_after: Duration,
    map: Mutex<HashMap<String, Registered>>,
}

impl Registrations {
    pub fn new(max: usize, idle_after: Duration) -> Registrations {
        Registrations {
            max,
            idle_after,
            map: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Registered>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `consumer` can be remembered (checked before it registers, so the coordinator
    /// holds no member this broker could not serve). When full, entries idle past the
    /// consumer timeout (their coordinator has dropped them) make room first.
    pub fn admits(&self, consumer: &str) -> Result<(), GroupLinkError> {
        Self::make_room(&mut self.lock(), consumer, self.max, self.idle_after)
    }

    fn make_room(
        map: &mut HashMap<String, Registered>,
        consumer: &str,
        max: usize,
        idle_after: Duration,
    ) -> Result<(), GroupLinkError> {
        if map.len() >= max && !map.contains_key(consumer) {
            let now = Instant::now();
            map.retain(|_, r| now.duration_since(r.used) <= idle_after);
            if map.len() >= max {
                return Err(GroupLinkError::TooManyRemembered { max });
            }
        }
        Ok(())
    }

    /// Remembers that `consumer` registered in `group` at `coordinator` (room is made as in
    /// [`Registrations::admits`]).
    pub fn remember(
        &self,
        consumer: &str,
        group: &str,
        coordinator: u32,
    ) -> Result<(), GroupLinkError> {
        let now = Instant::now();
        let mut map = self.lock();
        Self::make_room(&mut map, consumer, self.max, self.idle_after)?;
        map.insert(
            consumer.to_string(),
            Registered {
                group: group.to_string(),
                coordinator,
                used: now,
            },
        );
        Ok(())
    }

    /// The registration of `consumer`, marked used now.
    pub fn get(&self, consumer: &str) -> Option<Registered> {
        let mut map = self.lock();
        let r = map.get_mut(consumer)?;
        r.used = Instant::now();
        Some(r.clone())
    }

    pub fn forget(&self, consumer: &str) {
        self.lock().remove(consumer);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The connections to coordinators, by broker id and address, and the bound on requests.
pub struct GroupLinks {
    links: Mutex<HashMap<(u32, String), Arc<Mux>>>,
    max_in_flight: usize,
    in_flight: Arc<tokio::sync::Semaphore>,
    pub registrations: Registrations,
}

impl GroupLinks {
    /// Links allowing `max_in_flight` requests at once (`--max-group-requests`), remembering
    /// at most `max_consumers` registrations.
    pub fn new(
        max_consumers: usize,
        consumer_timeout: Duration,
        max_in_flight: usize,
    ) -> GroupLinks {
        let max_in_flight = max_in_flight.max(1);
        GroupLinks {
            links: Mutex::default(),
            max_in_flight,
            in_flight: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
            registrations: Registrations::new(max_consumers, consumer_timeout),
        }
    }

    /// A connection to `broker` at `addr`, opened (STARTUP as broker `me`, no topic) if none
    /// is open.
    async fn link(&self, me: u32, broker: u32, addr: &str) -> Result<Arc<Mux>, ClientError> {
        let key = (broker, addr.to_string());
        if let Some(m) = self.lock().get(&key).filter(|m| !m.is_closed()) {
            return Ok(m.clone());
        }
        let mux = Mux::connect(addr, MAX_ANSWER, self.max_in_flight, ANSWER_TIMEOUT).await?;
        let mut body = Vec::new();
        Startup {
            topic: "",
            forwarded_by: Some(me),
        }
        .encode(&mut body);
        mux.call(OpCode::Startup, 0, &body).await?;
        let mux = Arc::new(mux);
        self.lock().insert(key, mux.clone());
        Ok(mux)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u32, String), Arc<Mux>>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn ask(
        &self,
        me: u32,
        broker: u32,
        addr: String,
        request: GroupRequest,
    ) -> Result<GroupAnswer, GroupLinkError> {
        let _slot =
            self.in_flight
                .clone()
                .try_acquire_owned()
                .map_err(|_| GroupLinkError::Busy {
                    max: self.max_in_flight,
                })?;
        let link = |source| GroupLinkError::Link {
            group: request.group.clone(),
            broker,
            addr: addr.clone(),
            source,
        };
        let mux = self.link(me, broker, &addr).await.map_err(link)?;
        let mut body = Vec::new();
        request.encode(&mut body);
        let answer = match mux.call(OpCode::Group, 0, &body).await {
            Ok(a) => a,
            Err(ClientError::Broker { code, message }) => {
                return Err(GroupLinkError::Refused { code, message })
            }
            Err(e) => return Err(link(e)),
        };
        match answer.opcode() {
            Ok(OpCode::GroupAnswer) => {}
            _ => {
                return Err(link(ClientError::ConnectionLost(
                    "no GROUP_ANSWER to GROUP".into(),
                )))
            }
        }
        GroupAnswer::decode(&answer.body)
            .map_err(|source| GroupLinkError::BadAnswer { broker, source })
    }
}

impl Cluster {
    /// The broker that coordinates `group` in this broker's view, and its framed address.
    pub fn group_coordinator(&self, group: &str) -> Result<(u32, String), GroupLinkError> {
        if !self.fence.holds_lease() {
            return Err(GroupLinkError::NoLease);
        }
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        coordinator_of(group, state.live.keys().copied())
            .and_then(|id| state.live.get(&id).map(|b| (id, b.framed.clone())))
            .ok_or_else(|| GroupLinkError::NoBroker(group.to_string()))
    }

    /// Passes `request` to `broker` (at framed `addr`) and returns its answer; callable from
    /// any runtime (the work runs on the cluster thread).
    pub async fn ask_coordinator(
        &self,
        broker: u32,
        addr: String,
        request: GroupRequest,
    ) -> Result<GroupAnswer, GroupLinkError> {
        let cluster = super::installed().cloned();
        let me = self.broker;
        let work = async move {
            match cluster {
                Some(c) => c.group_links.ask(me, broker, addr, request).await,
                None => Err(GroupLinkError::Stopped),
            }
        };
        self.on_cluster_thread(work)
            .await
            .ok_or(GroupLinkError::Stopped)?
    }

    /// The live-broker sets of this broker's view after generation `after`, and the latest
    /// generation; `None` for the sets if some of them are no longer kept.
    pub fn live_since(&self, after: u64) -> (u64, Option<Vec<Vec<u32>>>) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let log = &state.live_log;
        let sets = log
            .since(after)
            .map(|sets| sets.into_iter().map(<[u32]>::to_vec).collect());
        (log.generation(), sets)
    }

    /// The consumers registered through this broker.
    pub fn registrations(&self) -> &Registrations {
        &self.group_links.registrations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_names_one_coordinator_and_only_a_dead_brokers_groups_move() {
        assert_eq!(coordinator_of("g", []), None);
        let groups: Vec<String> = (0..300).map(|i| format!("group-{i}")).collect();
        let before: Vec<u32> = groups
            .iter()
            .map(|g| coordinator_of(g, [1, 2, 3]).unwrap())
            .collect();
        // The order brokers are listed in does not matter.
        for (g, c) in groups.iter().zip(&before) {
            assert_eq!(coordinator_of(g, [3, 1, 2]), Some(*c));
        }
        // Spread over all three.
        for b in 1..=3 {
            let n = before.iter().filter(|&&c| c == b).count();
            assert!(n > 50, "broker {b} coordinates {n} of 300");
        }
        // Broker 3 down: only its groups move; broker 4 up: groups move only to it.
        for (g, c) in groups.iter().zip(&before) {
            let after = coordinator_of(g, [1, 2]).unwrap();
            if *c != 3 {
                assert_eq!(after, *c, "{g}");
            }
            let joined = coordinator_of(g, [1, 2, 3, 4]).unwrap();
            assert!(joined == *c || joined == 4, "{g}");
        }
    }

    #[test]
    fn registrations_are_bounded_and_idle_ones_make_room() {
        let r = Registrations::new(2, Duration::ZERO);
        r.remember("a", "g", 1).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        r.remember("b", "g", 1).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        // Both idle past a zero timeout: they make room.
        r.remember("c", "h", 2).unwrap();
        assert_eq!(r.get("c").unwrap().group, "h");
        let full = Registrations::new(1, Duration::from_secs(3600));
        full.remember("a", "g", 1).unwrap();
        full.remember("a", "g2", 2).unwrap();
        assert!(full.admits("a").is_ok() && full.admits("b").is_err());
        assert!(matches!(
            full.remember("b", "g", 1),
            Err(GroupLinkError::TooManyRemembered { max: 1 })
        ));
        full.forget("a");
        assert!(full.is_empty());
    }
}
