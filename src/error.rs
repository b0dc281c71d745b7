//! How failures are classified, once, for every transport.
//!
//! Each layer has its own error enum with typed causes (`StorageError`, `ProduceError`,
//! `ReadError`, `ConsumerError`, …). Each of them says which [`ErrorClass`] a failure belongs
//! to, in one `class()` match next to its definition. A transport never looks at the variants:
//! it maps the class to its own answer with one table (`server::framed::errors`,
//! `server::http::errors`, `server::grpc::status`), so the same failure gets the same answer
//! on every transport. `docs/protocol.md` ("Errors") shows the three tables side by side.

/// What kind of failure an error is, from the client's point of view: whether retrying can
/// help, and whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request is malformed or asks for something impossible (a bad topic name, an offset
    /// never written, a body that does not parse). Retrying it unchanged fails again.
    Invalid,
    /// The request names something that does not exist (a partition index past the topic's
    /// count).
    NotFound,
    /// The request asks for an offset outside what the partition holds (removed by retention).
    OutOfRange,
    /// The consumer is not a registered member of its group (never registered, said goodbye, or
    /// was dropped after a silence): it should register again.
    UnknownConsumer,
    /// The broker cannot serve the request now, but the same request may succeed later (the
    /// broker is shutting down, a shard could not be reached).
    Unavailable,
    /// A limit was reached (the data disk is nearly full, a message is too large for the
    /// configured maximum). Retrying later, or with less, may succeed. Also a write that failed
    /// with ENOSPC: its partition refuses writes until a restart, but the client learns that
    /// the disk is full rather than that it broke.
    ResourceExhausted,
    /// A configured count limit was reached: `--max-topics`, the broker's groups, a group's
    /// consumers, the topics one consumer reads. Unlike [`ErrorClass::ResourceExhausted`]
    /// nothing is short on the host: the client asked for more than its share, and may retry
    /// once others have left, an operator raised the limit, or it asks for less. HTTP tells it
    /// apart (429, not 507).
    LimitReached,
    /// The storage failed (an I/O or fsync error, a corrupt file): a partition whose write
    /// failed refuses writes until the broker restarts and recovers it. Nothing of the failed request was acknowledged.
    Storage,
    /// A failure inside the broker that no client request should cause.
    Internal,
}

impl ErrorClass {
    /// Every class, for the transports' table tests.
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::Invalid,
        ErrorClass::NotFound,
        ErrorClass::OutOfRange,
        ErrorClass::UnknownConsumer,
        ErrorClass::Unavailable,
        ErrorClass::ResourceExhausted,
        ErrorClass::LimitReached,
        ErrorClass::Storage,
        ErrorClass::Internal,
    ];

    /// Whether the same request, sent again later, may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Unavailable | ErrorClass::ResourceExhausted | ErrorClass::LimitReached
        )
    }
}

/// An error that knows its [`ErrorClass`].
pub trait Classify: std::error::Error {
    fn class(&self) -> ErrorClass;
}
