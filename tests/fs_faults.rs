//! The `fs.*` fail points under the broker's file system: in process, each makes its named
//! call fail (or come back short) on the paths it names and no other; and in a real broker
//! process, a write fault under one topic's files fails that topic's produces while another
//! topic keeps being served.

mod common;

use std::io::ErrorKind;

use common::consumer::{bodies, drain, produce_keyed, ConsumerClient};
use common::framed::FramedProducer;
use common::Broker;
use shardlog::rt::block_on;
use shardlog::storage::fs::{
    replace_file, BrokerFs, BufferedFile, DmaBuf, FileSystem, SegmentFile,
};
use shardlog::wire::consumer::StartPolicy;

/// Every test of this process runs under these points (they are set once per process); each
/// test works under a directory named for its own.
const SPEC: &str = "fs.rename=eio(path=/rename-fails/);\
    fs.write_buffered=short(path=/short-buffered/,nth=1);\
    fs.write=short(path=/short-segment/,nth=1);\
    fs.fdatasync=eio(path=/sync-fails/,nth=2);\
    fs.sync_dir=enospc(path=/dir-full)";

/// A fresh directory `name` in a temporary directory, with the fail points on.
fn setup(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    shardlog::failpoint::init(SPEC).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    (tmp, dir)
}

#[test]
fn a_failing_rename_fails_replace_file_there_only() {
    let (tmp, dir) = setup("rename-fails");
    let healthy = tmp.path().join("healthy");
    std::fs::create_dir(&healthy).unwrap();
    block_on(async move {
        let fs = BrokerFs::default();
        let e = replace_file(&fs, &dir, "f", b"new").await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        assert!(!dir.join("f").exists(), "the rename never happened");
        // Elsewhere the same call goes through.
        replace_file(&fs, &healthy, "f", b"new").await.unwrap();
        assert_eq!(std::fs::read(healthy.join("f")).unwrap(), b"new");
    });
}

#[test]
fn a_short_buffered_write_writes_half_and_says_so() {
    let (_tmp, dir) = setup("short-buffered");
    block_on(async move {
        let fs = BrokerFs::default();
        let f = fs.open_buffered(&dir.join("f"), true).await.unwrap();
        assert_eq!(f.write_at(b"abcdef".to_vec(), 0).await.unwrap(), 3);
        assert_eq!(
            f.write_at(b"def".to_vec(), 3).await.unwrap(),
            3,
            "nth=1: once"
        );
        f.close().await.unwrap();
        assert_eq!(fs.read_file(&dir.join("f")).await.unwrap(), b"abcdef");
    });
}

#[test]
fn a_short_segment_write_stays_aligned() {
    let (_tmp, dir) = setup("short-segment");
    block_on(async move {
        let fs = BrokerFs::default();
        let f = fs.create(&dir.join("s.log")).await.unwrap();
        let mut b = f.alloc_buf(8192);
        b.as_bytes_mut().fill(1);
        assert_eq!(f.write_at(b, 0).await.unwrap(), 4096);
        assert_eq!(f.file_size().await.unwrap(), 4096);
        let mut b = f.alloc_buf(8192);
        b.as_bytes_mut().fill(2);
        assert_eq!(f.write_at(b, 0).await.unwrap(), 8192);
        f.close().await.unwrap();
    });
}

#[test]
fn the_nth_fdatasync_fails_and_only_that_one() {
    let (_tmp, dir) = setup("sync-fails");
    block_on(async move {
        let fs = BrokerFs::default();
        let f = fs.open_buffered(&dir.join("f"), true).await.unwrap();
        f.write_at(b"x".to_vec(), 0).await.unwrap();
        f.fdatasync().await.unwrap();
        let e = f.fdatasync().await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        f.fdatasync().await.unwrap();
        f.close().await.unwrap();
    });
}

#[test]
fn a_directory_sync_fails_with_enospc_on_its_directory_only() {
    let (tmp, dir) = setup("dir-full");
    block_on(async move {
        let fs = BrokerFs::default();
        let e = fs.sync_dir(&dir).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageFull, "{e}");
        fs.sync_dir(tmp.path()).await.unwrap();
    });
}

/// An I/O error under one topic's segment writes: its produces are refused (never
/// acknowledged), another topic on the same shard is still served, and after a restart
/// without the fault the topic takes writes again.
#[test]
fn a_write_fault_under_one_topic_leaves_the_others_served() {
    let mut broker = Broker::new(1, &[]);
    broker.env.push((
        shardlog::failpoint::ENV.into(),
        "fs.write=eio(path=/faulty/)".into(),
    ));
    broker.spawn();
    let mut faulty = FramedProducer::startup(broker.framed, "faulty");
    let mut healthy = FramedProducer::startup(broker.framed, "healthy");
    for round in 0..3 {
        let refused = faulty.produce(b"k", &[b"lost"]);
        assert!(refused.is_err(), "round {round}: {refused:?}");
        assert_eq!(healthy.produce(b"k", &[b"kept"]), Ok(()), "round {round}");
    }
    let (code, message) = faulty.produce(b"k", &[b"lost"]).unwrap_err();
    assert!(message.contains("faulty"), "code {code}: {message}");

    broker.env.clear();
    broker.restart();
    let mut faulty = FramedProducer::startup(broker.framed, "faulty");
    assert_eq!(faulty.produce(b"k", &[b"after"]), Ok(()));
}

/// A failing rename under the consumer offsets: COMMIT is refused (never reported durable)
/// and leaves no offsets file, while produces go on.
#[test]
fn a_commit_whose_offsets_file_cannot_be_renamed_is_refused() {
    let mut broker = Broker::new(1, &[]);
    broker.env.push((
        shardlog::failpoint::ENV.into(),
        "fs.rename=eio(path=/@consumer_offsets/)".into(),
    ));
    broker.spawn();
    let sent = produce_keyed(broker.framed, "events", 10, 3, "m");
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("c", "g", &["events"], StartPolicy::Earliest)
        .unwrap();
    assert_eq!(bodies(&drain(&mut c, "c")).len(), sent.len());
    let refused = c.commit("c");
    assert!(refused.is_err(), "{refused:?}");
    let file = broker.data_dir.join("@consumer_offsets").join("g.offsets");
    assert!(!file.exists());
    let mut p = FramedProducer::startup(broker.framed, "events");
    assert_eq!(p.produce(b"k", &[b"after"]), Ok(()));
}
