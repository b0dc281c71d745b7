//! Storage (module docs come with the log).

pub mod chunk;

pub use chunk::{ChunkEncoder, ChunkError, ChunkHeader, RecordBatch, RecordBuf};

/// Placeholder until the log lands.
pub struct PartitionLog;
