//! The partition log on the simulator: what it acknowledges survives any power cut.

use std::path::Path;

use super::{CutPolicy, SimFs};
use crate::rt::block_on;
use crate::storage::testing::config;
use crate::storage::{PartitionLog, RecordBuf};

#[test]
fn a_new_partitions_directory_survives_a_power_cut_after_its_first_append() {
    block_on(async {
        let fs = SimFs::new();
        fs.do_create_dir_all(Path::new("/data/t")).unwrap();
        fs.do_sync_dir(Path::new("/data")).unwrap();
        fs.do_sync_dir(Path::new("/")).unwrap();
        let dir = Path::new("/data/t/p0");
        let (log, _) = PartitionLog::open_with(fs.clone(), dir, config(64 << 10))
            .await
            .unwrap();
        let mut batch = RecordBuf::default();
        batch.push(1, b"acknowledged");
        log.append(&batch).await.unwrap();
        // Nothing the log did since may survive but what it synced.
        let image = fs.power_cut(fs.op_count(), CutPolicy::SyncedOnly);
        let (log, _) = PartitionLog::open_with(image, dir, config(64 << 10))
            .await
            .unwrap();
        let records = log.read_all_records().await.unwrap();
        assert_eq!(records.len(), 1, "the acknowledged record is lost");
        assert_eq!(records[0].2, b"acknowledged");
    });
}
