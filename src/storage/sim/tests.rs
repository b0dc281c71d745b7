use std::path::Path;

use super::*;

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// `/d` exists durably; returns the fs.
fn with_dir() -> SimFs {
    let fs = SimFs::new();
    fs.do_create_dir_all(p("/d")).unwrap();
    fs.do_sync_dir(p("/")).unwrap();
    fs
}

fn durable_file(fs: &SimFs, path: &str, bytes: &[u8]) -> SimFile {
    let f = fs.do_open_buffered(p(path), false).unwrap();
    f.write_bytes(bytes, 0).unwrap();
    f.sync().unwrap();
    fs.do_sync_dir(p("/d")).unwrap();
    f
}

const SEEDS: u64 = 200;

#[test]
fn an_unsynced_write_may_vanish() {
    let fs = with_dir();
    let f = durable_file(&fs, "/d/f", b"old");
    f.write_bytes(b"new!", 0).unwrap();
    let at = fs.op_count();
    let cut = fs.power_cut(at, CutPolicy::SyncedOnly);
    assert_eq!(cut.do_read_file(p("/d/f")).unwrap(), b"old");
    let cut = fs.power_cut(at, CutPolicy::AllWritten);
    assert_eq!(cut.do_read_file(p("/d/f")).unwrap(), b"new!");
    let seen: std::collections::BTreeSet<Vec<u8>> = (0..SEEDS)
        .map(|s| {
            fs.power_cut(at, CutPolicy::RandomSubset(s))
                .do_read_file(p("/d/f"))
                .unwrap()
        })
        .collect();
    // The old or new bytes at either size: "old", "new!", "new" (new data, old size), and
    // "old\0" (old data, new size).
    assert!(seen.contains(b"old".as_slice()), "{seen:?}");
    assert!(seen.contains(b"new!".as_slice()), "{seen:?}");
    for s in &seen {
        assert!(
            [&b"old"[..], b"new!", b"new", b"old\0"].contains(&s.as_slice()),
            "{s:?}"
        );
    }
}

#[test]
fn a_synced_write_never_vanishes() {
    let fs = with_dir();
    let f = durable_file(&fs, "/d/f", &[1; 3 * BLOCK]);
    f.write_bytes(&[2; 2 * BLOCK], BLOCK as u64).unwrap();
    f.sync().unwrap();
    f.write_bytes(&[3; BLOCK], 0).unwrap();
    let synced = fs.op_count() - 1;
    for at in [synced, fs.op_count()] {
        for seed in 0..SEEDS {
            let got = fs
                .power_cut(at, CutPolicy::RandomSubset(seed))
                .do_read_file(p("/d/f"))
                .unwrap();
            assert_eq!(got.len(), 3 * BLOCK);
            assert!(got[BLOCK..].iter().all(|b| *b == 2), "seed {seed}");
        }
    }
}

#[test]
fn a_create_without_a_directory_sync_may_vanish_even_with_its_data_synced() {
    let fs = with_dir();
    let f = fs.do_create(p("/d/seg")).unwrap();
    f.write_bytes(&[7; BLOCK], 0).unwrap();
    f.sync().unwrap();
    let cut = fs.power_cut(fs.op_count(), CutPolicy::SyncedOnly);
    assert!(cut.do_read_file(p("/d/seg")).is_err());
    assert!(cut.do_list_dir(p("/d")).unwrap().is_empty());
    fs.do_sync_dir(p("/d")).unwrap();
    for seed in 0..SEEDS {
        let cut = fs.power_cut(fs.op_count(), CutPolicy::RandomSubset(seed));
        assert_eq!(cut.do_read_file(p("/d/seg")).unwrap(), vec![7; BLOCK]);
    }
}

#[test]
fn a_new_directory_may_vanish_with_everything_in_it() {
    let fs = SimFs::new();
    fs.do_create_dir_all(p("/a/b")).unwrap();
    let f = fs.do_open_buffered(p("/a/b/f"), false).unwrap();
    f.write_bytes(b"x", 0).unwrap();
    f.sync().unwrap();
    fs.do_sync_dir(p("/a/b")).unwrap();
    fs.do_sync_dir(p("/a")).unwrap();
    let cut = fs.power_cut(fs.op_count(), CutPolicy::SyncedOnly);
    assert!(cut.do_list_dir(p("/")).unwrap().is_empty());
    fs.do_sync_dir(p("/")).unwrap();
    let cut = fs.power_cut(fs.op_count(), CutPolicy::SyncedOnly);
    assert_eq!(cut.do_read_file(p("/a/b/f")).unwrap(), b"x");
}

#[test]
fn a_rename_leaves_the_old_or_the_new_content_never_a_mix() {
    let fs = with_dir();
    let old = vec![1u8; 2 * BLOCK];
    let new = vec![2u8; 2 * BLOCK + 10];
    durable_file(&fs, "/d/a", &old);
    let start = fs.op_count();
    // The replace protocol: tmp, write, fdatasync, rename, directory sync.
    let t = fs.do_open_buffered(p("/d/a.tmp"), true).unwrap();
    t.write_bytes(&new, 0).unwrap();
    t.sync().unwrap();
    fs.do_rename(p("/d/a.tmp"), p("/d/a")).unwrap();
    fs.do_sync_dir(p("/d")).unwrap();
    let (mut saw_old, mut saw_new) = (false, false);
    for at in start..=fs.op_count() {
        for seed in 0..SEEDS {
            let got = fs
                .power_cut(at, CutPolicy::RandomSubset(seed))
                .do_read_file(p("/d/a"))
                .unwrap();
            saw_old |= got == old;
            saw_new |= got == new;
            assert!(got == old || got == new, "op {at} seed {seed}");
        }
    }
    assert!(saw_old && saw_new);
    // Without the fdatasync before the rename, the new name can hold a torn file.
    let fs = with_dir();
    durable_file(&fs, "/d/a", &old);
    let t = fs.do_open_buffered(p("/d/a.tmp"), true).unwrap();
    t.write_bytes(&new, 0).unwrap();
    fs.do_rename(p("/d/a.tmp"), p("/d/a")).unwrap();
    fs.do_sync_dir(p("/d")).unwrap();
    let torn = (0..SEEDS).any(|seed| {
        let got = fs
            .power_cut(fs.op_count(), CutPolicy::RandomSubset(seed))
            .do_read_file(p("/d/a"))
            .unwrap();
        got != new
    });
    assert!(torn);
}

#[test]
fn unsynced_blocks_survive_one_by_one() {
    let fs = with_dir();
    let f = durable_file(&fs, "/d/f", &[0; 2 * BLOCK]);
    f.write_bytes(&[9; 2 * BLOCK], 0).unwrap();
    let images: std::collections::BTreeSet<(u8, u8)> = (0..SEEDS)
        .map(|seed| {
            let got = fs
                .power_cut(fs.op_count(), CutPolicy::RandomSubset(seed))
                .do_read_file(p("/d/f"))
                .unwrap();
            (got[0], got[BLOCK])
        })
        .collect();
    assert_eq!(images.len(), 4, "{images:?}");
}

#[test]
fn a_size_change_not_synced_may_be_undone() {
    let fs = with_dir();
    let f = fs.do_create(p("/d/seg")).unwrap();
    fs.do_sync_dir(p("/d")).unwrap();
    f.set_len(4 * BLOCK as u64).unwrap();
    let sizes: std::collections::BTreeSet<usize> = (0..SEEDS)
        .map(|seed| {
            fs.power_cut(fs.op_count(), CutPolicy::RandomSubset(seed))
                .do_read_file(p("/d/seg"))
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes, [0, 4 * BLOCK].into_iter().collect());
}

#[test]
fn durable_writes_survive_without_fdatasync() {
    let fs = with_dir().with_durable_writes(true);
    let f = fs.do_create(p("/d/seg")).unwrap();
    fs.do_sync_dir(p("/d")).unwrap();
    f.write_bytes(&[5; BLOCK], 0).unwrap();
    assert_eq!(fs.sync_points().last(), Some(&fs.op_count()));
    let cut = fs.power_cut(fs.op_count(), CutPolicy::SyncedOnly);
    assert_eq!(cut.do_read_file(p("/d/seg")).unwrap(), vec![5; BLOCK]);
}

#[test]
fn segment_files_refuse_unaligned_writes_and_buffered_files_take_them() {
    let fs = with_dir();
    let seg = fs.do_create(p("/d/seg")).unwrap();
    for (len, pos) in [(100, 0), (BLOCK, 512), (BLOCK + 1, 0)] {
        let e = seg.write_bytes(&vec![0; len], pos).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
    assert_eq!(seg.write_bytes(&[1; BLOCK], BLOCK as u64).unwrap(), BLOCK);
    let buf = fs.do_open_buffered(p("/d/idx"), false).unwrap();
    assert_eq!(buf.write_bytes(b"abc", 5).unwrap(), 3);
    assert_eq!(fs.do_read_file(p("/d/idx")).unwrap(), b"\0\0\0\0\0abc");
    let aligned512 = SimFs::new().with_alignment(512);
    aligned512.do_create_dir_all(p("/d")).unwrap();
    let seg = aligned512.do_create(p("/d/seg")).unwrap();
    seg.write_bytes(&[1; 512], 512).unwrap();
}

#[test]
fn names_errors_and_handles_behave_like_linux() {
    let fs = with_dir();
    assert_eq!(
        fs.do_open(p("/d/missing")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let f = fs.do_create(p("/d/seg")).unwrap();
    assert_eq!(
        fs.do_create(p("/d/seg")).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    // A removed file's handle still works.
    fs.do_remove_file(p("/d/seg")).unwrap();
    f.write_bytes(&[1; BLOCK], 0).unwrap();
    assert_eq!(f.len().unwrap(), BLOCK as u64);
    fs.do_create_dir_all(p("/d/t/p")).unwrap();
    fs.do_open_buffered(p("/d/t/p/x"), false).unwrap();
    let names: Vec<String> = fs
        .do_list_dir(p("/d"))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["t"]);
    assert!(fs.do_metadata(p("/d/t")).unwrap().is_dir);
    fs.do_remove_dir_all(p("/d/t")).unwrap();
    assert!(fs.do_list_dir(p("/d")).unwrap().is_empty());
    assert!(fs.do_rename(p("/d/nope"), p("/d/x")).is_err());
}

#[test]
fn a_seed_gives_the_same_image_every_time() {
    let fs = with_dir();
    let f = durable_file(&fs, "/d/f", &[0; 8 * BLOCK]);
    for i in 0..8u8 {
        f.write_bytes(&[i + 1; BLOCK], i as u64 * BLOCK as u64)
            .unwrap();
    }
    let a = fs.power_cut(fs.op_count(), CutPolicy::RandomSubset(42));
    let b = fs.power_cut(fs.op_count(), CutPolicy::RandomSubset(42));
    assert_eq!(
        a.files_under(p("/")).unwrap(),
        b.files_under(p("/")).unwrap()
    );
}

#[test]
fn removing_a_directory_tree_can_be_cut_half_way() {
    let fs = with_dir();
    fs.do_create_dir_all(p("/d/t")).unwrap();
    for name in ["a", "b", "c"] {
        fs.do_open_buffered(&Path::new("/d/t").join(name), false)
            .unwrap();
    }
    fs.do_sync_dir(p("/d/t")).unwrap();
    fs.do_sync_dir(p("/d")).unwrap();
    fs.do_remove_dir_all(p("/d/t")).unwrap();
    fs.do_sync_dir(p("/d")).unwrap();
    // After the parent's sync the directory is gone whatever its own entries did.
    let cut = fs.power_cut(fs.op_count(), CutPolicy::SyncedOnly);
    assert!(cut.do_list_dir(p("/d")).unwrap().is_empty());
    // Before it, any prefix of the children's removals.
    let counts: std::collections::BTreeSet<usize> = (0..SEEDS)
        .map(|seed| {
            let cut = fs.power_cut(fs.op_count() - 1, CutPolicy::RandomSubset(seed));
            cut.do_list_dir(p("/d/t")).map(|e| e.len()).unwrap_or(99)
        })
        .collect();
    assert!(counts.contains(&3) && counts.contains(&99), "{counts:?}");
}

#[test]
fn the_broker_runs_on_it_through_brokerfs_with_the_o_direct_rules() {
    use crate::storage::fs::{BrokerFs, DmaBuf, FileSystem, SegmentFile};
    crate::rt::block_on(async {
        let sim = with_dir();
        let fs = BrokerFs::Sim(sim.clone());
        let f = fs.create(p("/d/seg")).await.unwrap();
        assert_eq!(f.alignment(), 4096);
        let e = f.write_at(f.alloc_buf(100), 0).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let mut buf = f.alloc_buf(BLOCK);
        buf.as_bytes_mut().fill(3);
        assert_eq!(f.write_at(buf, 0).await.unwrap(), BLOCK);
        f.fdatasync().await.unwrap();
        fs.sync_dir(p("/d")).await.unwrap();
        let cut = sim.power_cut(sim.op_count(), CutPolicy::SyncedOnly);
        assert_eq!(cut.do_read_file(p("/d/seg")).unwrap(), vec![3; BLOCK]);
    });
}
