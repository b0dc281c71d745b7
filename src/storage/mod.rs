//! TEMPORARY compile stub; replaced by the storage branch.
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
#[derive(Debug, Clone, Copy)]
pub enum Durability {
    Fsync,
    Write,
}
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub segment_size: u64,
    pub durability: Durability,
    pub zstd_level: i32,
    pub retention_age: Option<Duration>,
    pub retention_bytes: Option<u64>,
}
pub trait RecordBatch {
    fn record_count(&self) -> u32;
    fn raw_len(&self) -> usize;
    fn for_each_piece(&self, f: &mut dyn FnMut(&[u8]));
}
#[derive(Debug)]
pub struct StorageError;
impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "x")
    }
}
#[derive(Debug)]
pub struct RecoveryReport;
pub struct AppendInfo {
    pub start_offset: i64,
}
pub struct PartitionLog;
impl PartitionLog {
    pub async fn open(
        _d: PathBuf,
        _c: LogConfig,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        todo!()
    }
    pub async fn append(&self, _b: &dyn RecordBatch) -> Result<AppendInfo, StorageError> {
        todo!()
    }
    pub async fn enforce_retention(&self, _n: SystemTime) -> Result<(), StorageError> {
        todo!()
    }
}

#[derive(Debug, Clone)]
pub struct StoredChunk {
    pub start_offset: i64,
    pub record_count: u32,
    pub payload: bytes::Bytes,
}
impl PartitionLog {
    pub fn start_offset(&self) -> i64 {
        0
    }
    pub fn next_offset(&self) -> i64 {
        0
    }
    pub async fn read(&self, _o: i64, _m: usize) -> Result<Vec<StoredChunk>, StorageError> {
        todo!()
    }
    pub async fn read_all_records(&self) -> Result<Vec<(i64, i64, Vec<u8>)>, StorageError> {
        todo!()
    }
}
