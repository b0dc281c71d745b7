//! The real [`FileSystem`] on compio: segments as O_DIRECT files ([`super::dma`]), indexes
//! and small files as compio files through the page cache, and what has no io_uring call
//! here (listing, metadata, rename, removal, directory sync) on the runtime's blocking pool,
//! so that no shard thread blocks on the file system.

use std::io;
use std::path::Path;

use compio::fs::{File, OpenOptions};
use compio::io::AsyncWriteAt;

use super::dma::DmaSegmentFile;
pub use super::fs_host::free_space;
use super::fs_host::{list, lock, stat};
use super::spawn_blocking;
use crate::storage::fs::{BufferedFile, DirEntry, FileSystem, Metadata};

/// The broker's files on the local disk, through compio's io_uring driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs {
    /// Open segment files with `O_DSYNC`: every write is durable when it completes, with no
    /// separate fdatasync (see the glommio build's `RealFs` for the measurement).
    pub durable_writes: bool,
}

/// A file written through the page cache.
#[derive(Debug)]
pub struct RealBuffered(File);

/// The data directory's lock: an exclusive `flock` held on the open lock file.
#[derive(Debug)]
pub struct RealLock(#[allow(dead_code)] std::fs::File);

impl RealFs {
    async fn open_segment(&self, path: &Path, create: bool) -> io::Result<DmaSegmentFile> {
        let sync = if self.durable_writes {
            libc::O_DSYNC
        } else {
            0
        };
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .custom_flags(libc::O_DIRECT | sync)
            .open(path)
            .await?;
        Ok(DmaSegmentFile::new(f, self.durable_writes))
    }
}

/// Runs `f(path)` on the blocking pool.
async fn blocking<T, F>(path: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Path) -> io::Result<T> + Send + 'static,
{
    let path = path.to_path_buf();
    spawn_blocking(move || f(&path)).await
}

impl FileSystem for RealFs {
    type File = DmaSegmentFile;
    type Buffered = RealBuffered;
    type Lock = RealLock;

    async fn create(&self, path: &Path) -> io::Result<DmaSegmentFile> {
        self.open_segment(path, true).await
    }

    async fn open(&self, path: &Path) -> io::Result<DmaSegmentFile> {
        self.open_segment(path, false).await
    }

    async fn open_buffered(&self, path: &Path, truncate: bool) -> io::Result<RealBuffered> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(path)
            .await?;
        Ok(RealBuffered(f))
    }

    async fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        blocking(path, |p| std::fs::read(p)).await
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        blocking(dir, list).await
    }

    async fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        blocking(path, stat).await
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        blocking(dir, |d| std::fs::create_dir_all(d)).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let to = to.to_path_buf();
        blocking(from, move |f| std::fs::rename(f, to)).await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        // unlink of a big file can take milliseconds.
        blocking(path, |p| std::fs::remove_file(p)).await
    }

    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        blocking(dir, |d| std::fs::remove_dir_all(d)).await
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        blocking(dir, |d| std::fs::File::open(d)?.sync_all()).await
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<RealLock> {
        lock(dir).map(RealLock)
    }

    async fn free_space(&self, dir: &Path) -> io::Result<u64> {
        blocking(dir, free_space).await
    }
}

impl BufferedFile for RealBuffered {
    async fn write_at(&self, bytes: Vec<u8>, pos: u64) -> io::Result<usize> {
        let mut file = &self.0;
        file.write_at(bytes, pos).await.0
    }

    async fn fdatasync(&self) -> io::Result<()> {
        self.0.sync_data().await
    }

    async fn close(self) -> io::Result<()> {
        self.0.close().await
    }
}

#[cfg(test)]
#[path = "../fs_tests.rs"]
mod tests;
