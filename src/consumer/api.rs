//! The consumer operations as transports call them (framed TCP, HTTP), on whichever shard
//! serves the client. Group bookkeeping runs on the coordinator's shard through
//! `Shard::submit_to`; the data of a poll is read from here ([`super::fetch`]). In cluster
//! mode the group's coordinator is one broker of the cluster ([`super::coordinated`]).

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use super::coordinated;
use super::coordinator::{Coordinator, StartAt, COORDINATOR_SHARD};
use super::fetch::fetch;
use super::poll::{PollResponse, Positions};
use super::ConsumerError;
use crate::ring::PartitionId;
use crate::shard::Shard;
use crate::wire::commit::CommitPosition;
use crate::wire::consumer::RegisterBody;
use crate::wire::group::GroupOp;

/// The longest a long poll waits, whatever the client asks (and at most half the consumer
/// timeout).
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// Runs `work` against the coordinator, on its shard, and returns its answer here.
pub(super) async fn on_coordinator<T, F, Fut>(
    shard: &Rc<Shard>,
    work: F,
) -> Result<T, ConsumerError>
where
    F: FnOnce(Rc<Coordinator>, Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, ConsumerError>> + 'static,
    T: Send + 'static,
{
    shard
        .submit_to(COORDINATOR_SHARD, move |core| async move {
            let coordinator = Coordinator::on(&core)?;
            work(coordinator, core).await
        })
        .await?
}

/// Registers a consumer in a group (creating its topics if needed) and rebalances the group.
pub async fn register(shard: &Rc<Shard>, body: RegisterBody) -> Result<(), ConsumerError> {
    let start = body.policy.into();
    register_at(shard, body, start).await
}

/// Registers like [`register`], a group new to a topic starting at `start` there (the REST
/// register's `startTime` gives [`StartAt::Time`]; `body.policy` is then not used).
pub async fn register_at(
    shard: &Rc<Shard>,
    body: RegisterBody,
    start: StartAt,
) -> Result<(), ConsumerError> {
    // Refused before any topic is created; the coordinator checks the other limits.
    let max = shard.config.max_topics_per_consumer;
    if body.topics.len() > max {
        return Err(ConsumerError::TooManyTopics {
            count: body.topics.len(),
            max,
        });
    }
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in &body.topics {
        let state = shard.topic(t).await?;
        topics.push((t.clone(), state.layout.partitions()));
        // Up to --max-topics-per-consumer (at most 65,535) topics: let the shard's other
        // connections be served.
        crate::rt::yield_if_needed().await;
    }
    let RegisterBody {
        consumer_id, group, ..
    } = body;
    if let Some(cluster) = crate::cluster::installed() {
        return coordinated::register(shard, cluster, consumer_id, group, topics, start).await;
    }
    on_coordinator(shard, move |c, core| async move {
        c.register(&core, &consumer_id, &group, &topics, start)
            .await
    })
    .await
}

/// Polls: commits the consumer's previous poll, reads its partitions (waiting up to `wait`
/// for data when there is none), records the positions of all the items, and returns the
/// response body.
pub async fn poll(
    shard: &Rc<Shard>,
    consumer: &str,
    wait: Option<Duration>,
) -> Result<PollResponse, ConsumerError> {
    let polled = read_poll(shard, consumer, wait).await?;
    let items = polled.response.items as usize;
    polled.record(shard, items).await
}

/// A poll read but not yet recorded: the caller decides how many of its items reach the
/// client, and records those ([`Polled::record`]) before the client sees them.
#[derive(Debug)]
pub struct Polled {
    pub response: PollResponse,
    positions: Positions,
    consumer: String,
    session: u64,
}

/// The first half of [`poll`]: commits the consumer's previous poll and reads its partitions,
/// recording nothing yet. A poll never recorded returns nothing: its items are read again.
pub async fn read_poll(
    shard: &Rc<Shard>,
    consumer: &str,
    wait: Option<Duration>,
) -> Result<Polled, ConsumerError> {
    let id = consumer.to_string();
    let (targets, session) = match crate::cluster::installed() {
        Some(cluster) => coordinated::plan(shard, cluster, consumer).await?,
        None => on_coordinator(shard, move |c, _| async move { c.plan(&id).await }).await?,
    };
    // Never wait so long that the consumer would time out during its own poll.
    let cap = MAX_POLL_WAIT.min(shard.config.consumer_timeout / 2);
    let wait = wait.map(|w| w.min(cap));
    let (response, positions) = fetch(shard, targets, shard.config.max_poll_bytes, wait).await?;
    Ok(Polled {
        response,
        positions,
        consumer: consumer.to_string(),
        session,
    })
}

impl Polled {
    /// Records the positions of the response's first `items` items (the partitions they end
    /// stay there; the items after them are read by the next poll) and returns the response.
    /// Called before the client sees the response, so its next request commits them whichever
    /// shard it arrives on — unless the consumer registered again meanwhile.
    pub async fn record(
        self,
        shard: &Rc<Shard>,
        items: usize,
    ) -> Result<PollResponse, ConsumerError> {
        let positions = self.positions.first(items);
        let (id, session) = (self.consumer, self.session);
        if let Some(cluster) = crate::cluster::installed() {
            let op = coordinated::returned(session, positions);
            coordinated::done(shard, cluster, &id, op).await?;
            return Ok(self.response);
        }
        on_coordinator(shard, move |c, _| async move {
            c.returned(&id, session, positions)
        })
        .await?;
        Ok(self.response)
    }
}

/// Commits the positions the consumer's last poll returned.
pub async fn commit(shard: &Rc<Shard>, consumer: &str) -> Result<(), ConsumerError> {
    if let Some(cluster) = crate::cluster::installed() {
        return coordinated::done(shard, cluster, consumer, GroupOp::Commit).await;
    }
    let id = consumer.to_string();
    on_coordinator(shard, move |c, _| async move { c.commit(&id).await }).await
}

/// Commits exactly `positions` — partitions named as poll items name them, with the next
/// offset to read — instead of everything the last poll returned: a manual commit of what
/// was processed. The records after them are read again by the next poll.
pub async fn commit_positions(
    shard: &Rc<Shard>,
    consumer: &str,
    positions: &[CommitPosition],
) -> Result<(), ConsumerError> {
    let mut keys = Vec::with_capacity(positions.len());
    for p in positions {
        let topic = shard.existing_topic(&p.topic).await?;
        let l = topic.layout;
        // The item's token is its token range's start; the range index picks the partition.
        let j = l
            .partition_of_token(p.token)
            .checked_add(u32::from(p.range_index))
            .filter(|&j| j < l.partitions());
        let id = PartitionId {
            gen: p.gen,
            token: p.token,
            range_index: p.range_index,
        };
        match j {
            Some(j) if l.partition_id(j) == id => keys.push(((p.topic.clone(), j), p.offset)),
            _ => {
                return Err(ConsumerError::NoSuchPartition {
                    topic: p.topic.clone(),
                    token: p.token,
                    range_index: p.range_index,
                    gen: p.gen,
                })
            }
        }
    }
    if let Some(cluster) = crate::cluster::installed() {
        let op = coordinated::commit_positions(keys);
        return coordinated::done(shard, cluster, consumer, op).await;
    }
    let id = consumer.to_string();
    on_coordinator(shard, move |c, _| async move {
        c.commit_positions(&id, keys).await
    })
    .await
}

/// Commits, leaves the group and rebalances it.
pub async fn goodbye(shard: &Rc<Shard>, consumer: &str) -> Result<(), ConsumerError> {
    if let Some(cluster) = crate::cluster::installed() {
        return coordinated::done(shard, cluster, consumer, GroupOp::Goodbye).await;
    }
    let id = consumer.to_string();
    on_coordinator(shard, move |c, _| async move { c.goodbye(&id).await }).await
}

/// At shutdown, on the coordinator's shard: waits until committed offsets are on disk.
pub async fn flush(shard: &Shard) {
    if let Ok(c) = Coordinator::on(shard) {
        c.flush().await;
    }
}
