//! Requests to the consumer-group coordinator (shard 0). They travel over the shard mesh
//! inside [`crate::shard::msg::ShardMsg::Consumer`] (or are handled in place on shard 0); each
//! carries a `Send` one-shot for its answer.

use futures_channel::oneshot;

use super::assign::PartitionKey;
use super::group::ReadTarget;
use super::ConsumerError;
use crate::wire::consumer::StartPolicy;

pub type Reply<T> = oneshot::Sender<Result<T, ConsumerError>>;

pub enum CoordinatorRequest {
    /// Join (or re-join) a group; `topics` carries each topic's partition count.
    Register {
        consumer: String,
        group: String,
        topics: Vec<(String, u32)>,
        policy: StartPolicy,
        reply: Reply<()>,
    },
    /// Commit the previous poll's positions and say what to read now.
    Plan {
        consumer: String,
        reply: Reply<Vec<ReadTarget>>,
    },
    /// The positions a poll returned to the consumer (committed by its next request).
    Returned {
        consumer: String,
        positions: Vec<(PartitionKey, i64)>,
        reply: Reply<()>,
    },
    Commit {
        consumer: String,
        reply: Reply<()>,
    },
    Goodbye {
        consumer: String,
        reply: Reply<()>,
    },
}
