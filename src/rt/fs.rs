//! The real [`FileSystem`]: segments on glommio `DmaFile` (O_DIRECT), indexes and small files
//! on glommio's `BufferedFile`, rename and removal through glommio's async calls, and what
//! glommio has no async call for (listing, metadata, creating and removing directory trees)
//! on the runtime's blocking pool, so that no shard thread blocks on the file system.

use std::io;
use std::path::Path;

use glommio::io::{BufferedFile as GlommioBuffered, OpenOptions};

use super::dma::{probe_device, DmaSegmentFile};
pub use super::fs_host::free_space;
use super::fs_host::{list, lock, stat};
use super::spawn_blocking;
use crate::storage::fs::{BufferedFile, DirEntry, FileSystem, Metadata};

/// The broker's files on the local disk, through glommio's io_uring reactor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs {
    /// Open segment files with `O_DSYNC`: every write is durable when it completes, with no
    /// separate fdatasync. With preallocated space, ext4 then issues the write straight from
    /// io_uring and does the sync in its completion work, instead of two operations that both
    /// go through io_uring's worker threads (measured on a 64 KiB append: p50 297 µs and no
    /// worker time, against 472 µs for write + fdatasync).
    pub durable_writes: bool,
}

/// A file written through the page cache (glommio `BufferedFile`).
#[derive(Debug)]
pub struct RealBuffered(GlommioBuffered);

/// The data directory's lock: an exclusive `flock` held on the open lock file.
#[derive(Debug)]
pub struct RealLock(#[allow(dead_code)] std::fs::File);

impl RealFs {
    fn flags(&self) -> i32 {
        if self.durable_writes {
            libc::O_DSYNC
        } else {
            0
        }
    }

    async fn open_segment(&self, path: &Path, create: bool) -> io::Result<DmaSegmentFile> {
        probe_device(path).await?;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .custom_flags(self.flags())
            .dma_open(path)
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
            .buffered_open(path)
            .await?;
        Ok(RealBuffered(f))
    }

    async fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let f = OpenOptions::new().read(true).buffered_open(path).await?;
        let read = async {
            let mut out = Vec::new();
            loop {
                let got = f.read_at(out.len() as u64, 64 << 10).await?;
                if got.is_empty() {
                    return io::Result::Ok(out);
                }
                out.extend_from_slice(&got);
            }
        }
        .await;
        let closed = f.close().await;
        let out = read?;
        closed?;
        Ok(out)
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
        Ok(glommio::io::rename(from, to).await?)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        // unlink of a big file can take milliseconds: glommio runs it on its blocking pool.
        Ok(glommio::io::remove(path).await?)
    }

    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        blocking(dir, |d| std::fs::remove_dir_all(d)).await
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let d = glommio::io::Directory::open(dir).await?;
        let synced = d.sync().await;
        let closed = d.close().await;
        synced?;
        Ok(closed?)
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
        Ok(self.0.write_at(bytes, pos).await?)
    }

    async fn fdatasync(&self) -> io::Result<()> {
        Ok(self.0.fdatasync().await?)
    }

    async fn close(self) -> io::Result<()> {
        Ok(self.0.close().await?)
    }
}

#[cfg(test)]
#[path = "fs_tests.rs"]
mod tests;
