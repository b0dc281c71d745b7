//! The storage layer's error type.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::chunk::ChunkError;
use crate::error::{Classify, ErrorClass};

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The log stopped accepting writes after a write or fdatasync error. Never cleared while
    /// the log is open: the failed chunk may or may not be on disk, so nothing is acknowledged
    /// after it; reopening the log runs recovery, which settles the question. `disk_full`: the
    /// failing call said the file system is full, so the client is told that rather than that
    /// the storage broke.
    #[error("partition log refuses writes: {reason}")]
    Failed { reason: String, disk_full: bool },
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// A chunk was handed to `write_chunk` out of the order it was encoded in (a bug in the
    /// caller); it is not written and the log stays usable.
    #[error("chunk numbered from offset {chunk} is not the next one: the log is at offset {next}")]
    OutOfOrder { chunk: i64, next: i64 },
    /// A chunk that needs a new segment was placed while `in_flight` writes to the active
    /// one were not finished (a bug in the caller: it finishes them first, so that the sealed
    /// segment is durable before the new one takes writes); nothing is written.
    #[error("a segment roll was asked for with {in_flight} chunk writes still in flight")]
    RollInFlight { in_flight: usize },
    /// Retention removed the offset (or it is negative): the log starts at `start`.
    #[error("offset {requested} is not stored: the partition starts at offset {start} (older segments were removed by retention)")]
    OffsetBeforeStart { requested: i64, start: i64 },
    #[error(
        "{path} needs O_DIRECT alignment {need}, which does not divide the chunk alignment {chunk}"
    )]
    Alignment {
        path: PathBuf,
        need: u64,
        chunk: u64,
    },
    #[error("invalid log configuration: {0}")]
    Config(String),
    /// A small metadata file (a topic layout, an offsets file) that does not parse.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
}

impl Classify for StorageError {
    fn class(&self) -> ErrorClass {
        match self {
            StorageError::OffsetBeforeStart { .. } => ErrorClass::OutOfRange,
            StorageError::OutOfOrder { .. }
            | StorageError::RollInFlight { .. }
            | StorageError::Config(_) => ErrorClass::Internal,
            e if e.is_disk_full() => ErrorClass::ResourceExhausted,
            StorageError::Io { .. }
            | StorageError::Failed { .. }
            | StorageError::Chunk(_)
            | StorageError::Alignment { .. }
            | StorageError::BadFile { .. } => ErrorClass::Storage,
        }
    }
}

/// Whether an I/O error says the file system is full (ENOSPC, or EDQUOT: a quota is).
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

impl StorageError {
    /// Whether this failure is the file system being full (see [`is_disk_full`]).
    pub(crate) fn is_disk_full(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => is_disk_full(source),
            StorageError::Failed { disk_full, .. } => *disk_full,
            _ => false,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }
}
