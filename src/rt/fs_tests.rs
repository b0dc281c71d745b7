//! [`RealFs`] method by method, on a temporary directory.

use std::io::ErrorKind;
use std::path::Path;

use super::*;
use crate::rt::block_on;
use crate::storage::fs::{replace_file, BrokerFs, DirLocked, SegmentFile, LOCK_FILE};

#[test]
fn segment_files_are_created_once_and_reopened() {
    block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let fs = RealFs::default();
        let path = tmp.path().join("s.log");
        let f = fs.create(&path).await.unwrap();
        let mut b = f.alloc_buf(4096);
        b.as_bytes_mut().fill(3);
        assert_eq!(f.write_at(b, 0).await.unwrap(), 4096);
        f.fdatasync().await.unwrap();
        f.close().await.unwrap();
        let e = fs.create(&path).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        let f = fs.open(&path).await.unwrap();
        assert_eq!(&f.read_at(10, 2).await.unwrap()[..], &[3, 3]);
        f.close().await.unwrap();
        let e = fs.open(&tmp.path().join("none.log")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    });
}

#[test]
fn buffered_files_write_anywhere_and_read_back_whole() {
    block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let fs = RealFs::default();
        let path = tmp.path().join("small");
        let f = fs.open_buffered(&path, false).await.unwrap();
        assert_eq!(f.write_at(b"hello".to_vec(), 0).await.unwrap(), 5);
        assert_eq!(f.write_at(b"!".to_vec(), 7).await.unwrap(), 1);
        f.fdatasync().await.unwrap();
        f.close().await.unwrap();
        assert_eq!(fs.read_file(&path).await.unwrap(), b"hello\0\0!");
        // Reopened without truncating, the bytes stay; with it, they go.
        let f = fs.open_buffered(&path, false).await.unwrap();
        f.write_at(b"J".to_vec(), 0).await.unwrap();
        f.close().await.unwrap();
        assert_eq!(fs.read_file(&path).await.unwrap(), b"Jello\0\0!");
        let f = fs.open_buffered(&path, true).await.unwrap();
        f.close().await.unwrap();
        assert_eq!(fs.read_file(&path).await.unwrap(), b"");
        // Bigger than one read.
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let f = fs.open_buffered(&path, true).await.unwrap();
        crate::storage::fs::write_all_at(&f, &big, 0).await.unwrap();
        f.close().await.unwrap();
        assert_eq!(fs.read_file(&path).await.unwrap(), big);
        let e = fs.read_file(&tmp.path().join("none")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    });
}

#[test]
fn directories_list_stat_rename_and_remove() {
    block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let fs = RealFs::default();
        let d = tmp.path().join("a/b");
        fs.create_dir_all(&d).await.unwrap();
        fs.create_dir_all(&d).await.unwrap();
        std::fs::write(d.join("f"), b"12345").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink(d.join("sub"), d.join("link")).unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling")).unwrap();
        let mut names = fs.list_dir(&d).await.unwrap();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        let got: Vec<(&str, bool)> = names.iter().map(|e| (&*e.name, e.is_dir)).collect();
        assert_eq!(
            got,
            [
                ("dangling", false),
                ("f", false),
                ("link", true),
                ("sub", true)
            ]
        );
        let m = fs.metadata(&d.join("f")).await.unwrap();
        assert_eq!((m.len, m.is_dir), (5, false));
        assert!(m.modified.elapsed().is_ok());
        assert!(fs.metadata(&d.join("link")).await.unwrap().is_dir);
        let e = fs.metadata(&d.join("dangling")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let e = fs.list_dir(&d.join("none")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

        fs.rename(&d.join("f"), &d.join("g")).await.unwrap();
        assert_eq!(std::fs::read(d.join("g")).unwrap(), b"12345");
        let e = fs.rename(&d.join("f"), &d.join("h")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        fs.sync_dir(&d).await.unwrap();
        fs.remove_file(&d.join("g")).await.unwrap();
        let e = fs.remove_file(&d.join("g")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let e = fs.sync_dir(&d.join("none")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        fs.remove_dir_all(&tmp.path().join("a")).await.unwrap();
        assert!(!tmp.path().join("a").exists());
        let e = fs.remove_dir_all(&tmp.path().join("a")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    });
}

#[test]
fn the_lock_is_exclusive_and_names_its_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = RealFs::default();
    let held = fs.lock_dir(tmp.path()).unwrap();
    let me = std::process::id();
    let text = std::fs::read_to_string(tmp.path().join(LOCK_FILE)).unwrap();
    assert_eq!(text, format!("{me}\n"));
    // flock conflicts between open files, even within one process.
    let e = fs.lock_dir(tmp.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    let locked = e.get_ref().and_then(|r| r.downcast_ref::<DirLocked>());
    assert_eq!(locked, Some(&DirLocked { holder: Some(me) }));
    drop(held);
    let _again = fs.lock_dir(tmp.path()).unwrap();
    let e = fs.lock_dir(&tmp.path().join("missing")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("@lock"), "{e}");
}

#[test]
fn replace_file_swaps_the_whole_file_and_leaves_no_temporary() {
    block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let fs = BrokerFs::Real(RealFs::default());
        replace_file(&fs, tmp.path(), "f", b"one, longer")
            .await
            .unwrap();
        replace_file(&fs, tmp.path(), "f", b"two").await.unwrap();
        assert_eq!(fs.read_file(&tmp.path().join("f")).await.unwrap(), b"two");
        let names: Vec<String> = fs
            .list_dir(tmp.path())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["f"]);
        let e = replace_file(&fs, &tmp.path().join("none"), "f", b"x")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    });
}

#[test]
fn free_space_of_a_real_directory() {
    let dir = tempfile::tempdir().unwrap();
    assert!(free_space(dir.path()).unwrap() > 0);
    assert!(free_space(Path::new("/does/not/exist")).is_err());
    let fs = BrokerFs::default();
    let d = dir.path().to_path_buf();
    let free = block_on(async move { fs.free_space(&d).await.unwrap() });
    assert!(free > 0 && free < u64::MAX, "{free}");
}
