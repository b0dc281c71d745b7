//! Cluster mode: the consumer operations of a group whose coordinator is one broker of the
//! cluster (`cluster::group_link` says which). The broker serving the consumer passes the
//! group's bookkeeping (register, the poll's plan and the positions it returned, commit,
//! goodbye) to the coordinator — on its own shard 0 when it is the coordinator, else as a
//! GROUP request — and reads the poll's data itself.
//!
//! When the coordinator changes (it went down, or a broker came up that the hash prefers),
//! the consumers registered at the old one are not carried over: their next POLL, COMMIT or
//! GOODBYE is refused with `unknown-consumer` (code 7), and the consumer registers again, as
//! after its expiry. The new coordinator reads the group's committed offsets from etcd.

use std::rc::Rc;
use std::time::Duration;

use super::api::on_coordinator;
use super::assign::PartitionKey;
use super::coordinator::StartAt;
use super::group::ReadTarget;
use super::ConsumerError;
use crate::cluster::group_link::GroupLinkError;
use crate::cluster::Cluster;
use crate::shard::Shard;
use crate::wire::group::{
    GroupAnswer, GroupOp, GroupPosition, GroupRequest, GroupStart, GroupTarget,
};

/// How long the asker waits for its view to catch up before asking again, when the broker it
/// asked says it does not coordinate the group.
const VIEW_CATCH_UP: Duration = Duration::from_millis(250);

impl From<StartAt> for GroupStart {
    fn from(s: StartAt) -> GroupStart {
        match s {
            StartAt::Earliest => GroupStart::Earliest,
            StartAt::Latest => GroupStart::Latest,
            StartAt::Time(t) => GroupStart::Time(t),
        }
    }
}

impl From<GroupStart> for StartAt {
    fn from(s: GroupStart) -> StartAt {
        match s {
            GroupStart::Earliest => StartAt::Earliest,
            GroupStart::Latest => StartAt::Latest,
            GroupStart::Time(t) => StartAt::Time(t),
        }
    }
}

fn to_wire(positions: Vec<(PartitionKey, i64)>) -> Vec<GroupPosition> {
    positions
        .into_iter()
        .map(|((topic, partition), offset)| GroupPosition {
            topic,
            partition,
            offset,
        })
        .collect()
}

fn from_wire(positions: Vec<GroupPosition>) -> Vec<(PartitionKey, i64)> {
    positions
        .into_iter()
        .map(|p| ((p.topic, p.partition), p.offset))
        .collect()
}

/// On the coordinator's broker (any shard): applies a group operation on shard 0. An
/// operation other than REGISTER for a consumer that is not a member of the group there is
/// refused as an unknown consumer.
pub async fn apply(shard: &Rc<Shard>, request: GroupRequest) -> Result<GroupAnswer, ConsumerError> {
    let GroupRequest {
        group,
        consumer,
        op,
    } = request;
    on_coordinator(shard, move |c, core| async move {
        c.release_moved();
        let registering = matches!(op, GroupOp::Register { .. });
        if !registering && c.member_of(&consumer).as_deref() != Some(group.as_str()) {
            return Err(ConsumerError::UnknownConsumer(consumer));
        }
        match op {
            GroupOp::Register { start, topics } => c
                .register(&core, &consumer, &group, &topics, start.into())
                .await
                .map(|()| GroupAnswer::Done),
            GroupOp::Plan => {
                let (targets, session) = c.plan(&consumer).await?;
                let targets = targets
                    .into_iter()
                    .map(|t| GroupTarget {
                        topic: t.topic,
                        partition: t.partition,
                        offset: t.offset,
                    })
                    .collect();
                Ok(GroupAnswer::Plan { session, targets })
            }
            GroupOp::Returned { session, positions } => c
                .returned(&consumer, session, from_wire(positions))
                .map(|()| GroupAnswer::Done),
            GroupOp::Commit => c.commit(&consumer).await.map(|()| GroupAnswer::Done),
            GroupOp::CommitPositions(ps) => c
                .commit_positions(&consumer, from_wire(ps))
                .await
                .map(|()| GroupAnswer::Done),
            GroupOp::Goodbye => c.goodbye(&consumer).await.map(|()| GroupAnswer::Done),
        }
    })
    .await
}

/// Passes `request` to the group's coordinator in this broker's view (this broker: shard 0
/// here), asking the view again once if the broker asked says it is not the coordinator.
/// With `expected`, a member's operation: refused as [`ConsumerError::CoordinatorMoved`] if
/// the view names another coordinator than the one the consumer registered at. Returns the
/// coordinator that answered, and its answer.
async fn at_coordinator(
    shard: &Rc<Shard>,
    cluster: &Cluster,
    expected: Option<u32>,
    request: GroupRequest,
) -> Result<(u32, GroupAnswer), ConsumerError> {
    let group = request.group.clone();
    let mut refused = None;
    for _ in 0..2 {
        if refused.is_some() {
            crate::rt::sleep(VIEW_CATCH_UP).await;
        }
        let (now, addr) = cluster.group_coordinator(&group).map_err(coordination)?;
        if expected.is_some_and(|at| at != now) {
            // The view moved the group since the consumer registered: it registers again.
            return Err(ConsumerError::CoordinatorMoved {
                consumer: request.consumer.clone(),
                group,
            });
        }
        if now == cluster.broker {
            return Ok((now, apply(shard, request).await?));
        }
        match cluster
            .ask_coordinator(now, addr, request.clone())
            .await
            .map_err(coordination)?
        {
            GroupAnswer::NotCoordinator { coordinator } => {
                tracing::debug!(group, asked = now, ?coordinator, "not the coordinator");
                refused = Some((now, coordinator));
            }
            answer => return Ok((now, answer)),
        }
    }
    let (asked, named) = refused.unwrap_or((0, None));
    Err(coordination(GroupLinkError::NotCoordinator {
        group,
        asked,
        named,
    }))
}

fn coordination(e: GroupLinkError) -> ConsumerError {
    ConsumerError::Coordination(Box::new(e))
}

/// Runs `op` for a consumer registered through this broker, at the coordinator it registered
/// at; forgets the consumer when the coordinator does not know it (any more).
async fn for_member(
    shard: &Rc<Shard>,
    cluster: &Cluster,
    consumer: &str,
    op: GroupOp,
) -> Result<GroupAnswer, ConsumerError> {
    let Some(r) = cluster.registrations().get(consumer) else {
        return Err(ConsumerError::UnknownConsumer(consumer.to_string()));
    };
    let request = GroupRequest {
        group: r.group,
        consumer: consumer.to_string(),
        op,
    };
    let answer = at_coordinator(shard, cluster, Some(r.coordinator), request)
        .await
        .map(|(_, a)| a);
    if let Err(e) = &answer {
        if crate::error::Classify::class(e) == crate::error::ErrorClass::UnknownConsumer {
            cluster.registrations().forget(consumer);
        }
    }
    answer
}

/// Registers `consumer` in `group` at the group's coordinator and remembers where.
pub async fn register(
    shard: &Rc<Shard>,
    cluster: &Cluster,
    consumer: String,
    group: String,
    topics: Vec<(String, u32)>,
    start: StartAt,
) -> Result<(), ConsumerError> {
    cluster
        .registrations()
        .admits(&consumer)
        .map_err(coordination)?;
    let request = GroupRequest {
        group: group.clone(),
        consumer: consumer.clone(),
        op: GroupOp::Register {
            start: start.into(),
            topics,
        },
    };
    let (at, _) = at_coordinator(shard, cluster, None, request).await?;
    cluster
        .registrations()
        .remember(&consumer, &group, at)
        .map_err(coordination)
}

/// The poll's plan: what to read, in which session.
pub async fn plan(
    shard: &Rc<Shard>,
    cluster: &Cluster,
    consumer: &str,
) -> Result<(Vec<ReadTarget>, u64), ConsumerError> {
    match for_member(shard, cluster, consumer, GroupOp::Plan).await? {
        GroupAnswer::Plan { session, targets } => Ok((
            targets
                .into_iter()
                .map(|t| ReadTarget {
                    topic: t.topic,
                    partition: t.partition,
                    offset: t.offset,
                })
                .collect(),
            session,
        )),
        other => Err(unexpected(other)),
    }
}

fn unexpected(answer: GroupAnswer) -> ConsumerError {
    coordination(GroupLinkError::Refused {
        code: crate::wire::ErrorCode::Unavailable as u8,
        message: format!("the coordinator answered {answer:?} where it should not"),
    })
}

/// Any operation whose answer is [`GroupAnswer::Done`].
pub async fn done(
    shard: &Rc<Shard>,
    cluster: &Cluster,
    consumer: &str,
    op: GroupOp,
) -> Result<(), ConsumerError> {
    let goodbye = matches!(op, GroupOp::Goodbye);
    match for_member(shard, cluster, consumer, op).await? {
        GroupAnswer::Done => {
            if goodbye {
                cluster.registrations().forget(consumer);
            }
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// The positions a poll returned, as the GROUP body carries them.
pub fn returned(session: u64, positions: Vec<(PartitionKey, i64)>) -> GroupOp {
    GroupOp::Returned {
        session,
        positions: to_wire(positions),
    }
}

/// An explicit commit's positions, as the GROUP body carries them.
pub fn commit_positions(positions: Vec<(PartitionKey, i64)>) -> GroupOp {
    GroupOp::CommitPositions(to_wire(positions))
}
