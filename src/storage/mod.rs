//! TODO
pub struct PartitionLog;
