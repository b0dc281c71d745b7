//! The consumer operations as transports call them (framed TCP today, HTTP next), on whichever
//! shard serves the client. Group bookkeeping goes to the coordinator on shard 0; the data of
//! a poll is read from here ([`super::fetch`]).

use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;

use super::fetch::fetch;
use super::msg::{CoordinatorRequest, Reply};
use super::poll::PollResponse;
use super::ConsumerError;
use crate::shard::msg::ShardMsg;
use crate::shard::Shard;
use crate::wire::consumer::RegisterBody;

/// The longest a long poll waits, whatever the client asks (and at most half the consumer
/// timeout).
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// Sends a request to the coordinator (in place on shard 0) and waits for its answer.
async fn ask<T>(
    shard: &Rc<Shard>,
    make: impl FnOnce(Reply<T>) -> CoordinatorRequest,
) -> Result<T, ConsumerError> {
    let (tx, rx) = oneshot::channel();
    let req = make(tx);
    match shard.coordinator() {
        Some(c) => crate::rt::spawn_detached(c.clone().handle(shard.clone(), req)),
        None => shard
            .send_to(0, ShardMsg::Consumer(req))
            .await
            .map_err(ConsumerError::Routing)?,
    }
    rx.await.map_err(|_| {
        ConsumerError::Routing("the consumer coordinator dropped the request".into())
    })?
}

/// Registers a consumer in a group (creating its topics if needed) and rebalances the group.
pub async fn register(shard: &Rc<Shard>, body: RegisterBody) -> Result<(), ConsumerError> {
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in &body.topics {
        let state = shard
            .topic(t)
            .await
            .map_err(|e| ConsumerError::Topic(e.to_string()))?;
        topics.push((t.clone(), state.layout.partitions()));
    }
    ask(shard, |reply| CoordinatorRequest::Register {
        consumer: body.consumer_id,
        group: body.group,
        topics,
        policy: body.policy,
        reply,
    })
    .await
}

/// Polls: commits the consumer's previous poll, reads its partitions (waiting up to `wait`
/// for data when there is none), and returns the response body.
pub async fn poll(
    shard: &Rc<Shard>,
    consumer: &str,
    wait: Option<Duration>,
) -> Result<PollResponse, ConsumerError> {
    let targets = ask(shard, |reply| CoordinatorRequest::Plan {
        consumer: consumer.to_string(),
        reply,
    })
    .await?;
    // Never wait so long that the consumer would time out during its own poll.
    let cap = MAX_POLL_WAIT.min(shard.config.consumer_timeout / 2);
    let wait = wait.map(|w| w.min(cap));
    let (response, positions) = fetch(shard, targets, shard.config.max_poll_bytes, wait).await?;
    // Recorded before the client sees the response, so its next request commits them
    // whichever shard it arrives on.
    ask(shard, |reply| CoordinatorRequest::Returned {
        consumer: consumer.to_string(),
        positions,
        reply,
    })
    .await?;
    Ok(response)
}

/// Commits the positions the consumer's last poll returned.
pub async fn commit(shard: &Rc<Shard>, consumer: &str) -> Result<(), ConsumerError> {
    ask(shard, |reply| CoordinatorRequest::Commit {
        consumer: consumer.to_string(),
        reply,
    })
    .await
}

/// Commits, leaves the group and rebalances it.
pub async fn goodbye(shard: &Rc<Shard>, consumer: &str) -> Result<(), ConsumerError> {
    ask(shard, |reply| CoordinatorRequest::Goodbye {
        consumer: consumer.to_string(),
        reply,
    })
    .await
}
