//! Every file and directory operation the broker makes, behind one trait, so a test can put
//! faults or a simulated power cut under any of them (as tikv raft-engine does with its
//! `FileSystem`).
//!
//! - [`FileSystem`]: segments ([`SegmentFile`]: aligned O_DIRECT writes), small and index
//!   files ([`BufferedFile`]: unaligned writes through the page cache), whole-file reads,
//!   directory listing, metadata, creation, rename, removal, directory sync, and the data
//!   directory's lock.
//! - [`replace_file`]: a crash-safe replacement of a small file, written on the primitives so
//!   that a fault or a power cut can land between any two of its steps.
//! - [`BrokerFs`]: the one concrete file system the broker passes around (an enum over the
//!   implementations, so `Shard` and the writer need no type parameter), with the `fs.*` fail
//!   points (`crate::failpoint`) under every call, whichever implementation runs it.
//!
//! The real implementation is [`crate::rt::fs::RealFs`] (the runtime's O_DIRECT and buffered files,
//! directory work on the blocking pool); the unit tests' fault injector is
//! `super::testing::FaultyFs`. Everything is single-threaded per shard, so the futures are not
//! `Send` and the traits use plain `async fn`.

mod broker;
mod faults;

use std::io;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;

pub use broker::{BrokerBuf, BrokerBuffered, BrokerFile, BrokerFs, BrokerLock};

/// A buffer aligned for O_DIRECT writes, handed to [`SegmentFile::write_at`] without a copy.
pub trait DmaBuf {
    fn as_bytes(&self) -> &[u8];
    fn as_bytes_mut(&mut self) -> &mut [u8];
    /// Shrinks the buffer to its first `len` bytes (what `write_at` then writes).
    fn trim_to_size(&mut self, len: usize);
}

/// Every file and directory operation the broker makes, so a test can put faults or a
/// simulated power cut under any of them.
#[allow(async_fn_in_trait)]
pub trait FileSystem: Clone + 'static {
    /// Segments: aligned (O_DIRECT) writes.
    type File: SegmentFile;
    /// Indexes and small files: unaligned writes, through the page cache.
    type Buffered: BufferedFile;
    /// Held while the broker runs; dropping it releases the data directory.
    type Lock;
    /// Creates a new, empty segment file for reading and writing; fails if it exists.
    async fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing segment file for reading and writing.
    async fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens for unaligned writes, creating it if missing; `truncate` empties it first.
    async fn open_buffered(&self, path: &Path, truncate: bool) -> io::Result<Self::Buffered>;
    /// A whole (small) file; a missing file is an error of kind NotFound.
    async fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The entries of `dir` (not `.` and `..`), in no particular order.
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;
    /// Follows symbolic links, like `std::fs::metadata`.
    async fn metadata(&self, path: &Path) -> io::Result<Metadata>;
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Renames a file or directory, replacing `to` if it is a file.
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file by name (open handles keep working until dropped).
    async fn remove_file(&self, path: &Path) -> io::Result<()>;
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created, renamed, removed) durable.
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes the data directory's exclusive lock (start-up only, may block). When another
    /// process holds it, the error is of kind `WouldBlock` and carries a [`DirLocked`].
    fn lock_dir(&self, dir: &Path) -> io::Result<Self::Lock>;
    /// Bytes free for the broker on the file system holding `dir` (`--min-free-space` is
    /// checked against it). An implementation without a notion of it is never full.
    async fn free_space(&self, dir: &Path) -> io::Result<u64> {
        let _ = dir;
        Ok(u64::MAX)
    }
}

/// A file written at arbitrary positions through the page cache (indexes, small files).
#[allow(async_fn_in_trait)]
pub trait BufferedFile {
    /// Writes `bytes` at `pos`; returns the bytes written, which may be fewer.
    async fn write_at(&self, bytes: Vec<u8>, pos: u64) -> io::Result<usize>;
    async fn fdatasync(&self) -> io::Result<()>;
    async fn close(self) -> io::Result<()>;
}

/// One open segment file. Writes must be at positions and of lengths that are multiples of
/// [`alignment`](Self::alignment); reads may be anywhere.
#[allow(async_fn_in_trait)]
pub trait SegmentFile {
    type Buf: DmaBuf;
    /// The O_DIRECT alignment the file needs (512 or 4096).
    fn alignment(&self) -> u64;
    /// Whether a completed write is already durable (the file is `O_DSYNC`), so no
    /// fdatasync is needed after it.
    fn writes_are_durable(&self) -> bool {
        false
    }
    /// Allocates an aligned buffer of `len` bytes (contents unspecified).
    fn alloc_buf(&self, len: usize) -> Self::Buf;
    /// Writes the whole buffer at `pos`; returns the bytes written, which may be fewer.
    async fn write_at(&self, buf: Self::Buf, pos: u64) -> io::Result<usize>;
    async fn fdatasync(&self) -> io::Result<()>;
    /// Reads up to `len` bytes at `pos`: fewer only at the end of the file.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes>;
    async fn file_size(&self) -> io::Result<u64>;
    async fn truncate(&self, len: u64) -> io::Result<()>;
    /// Allocates the file's blocks up to `len` bytes (growing its size, the new part reading
    /// as zeros), so that writes inside it do not extend the file.
    async fn preallocate(&self, len: u64) -> io::Result<()>;
    async fn close(self) -> io::Result<()>;
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name; entries whose name is not UTF-8 are skipped (the broker names every
    /// file it makes in ASCII).
    pub name: String,
    /// A directory (symbolic links are followed; a dangling one is not a directory).
    pub is_dir: bool,
}

/// What the broker needs to know of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    pub len: u64,
    pub modified: SystemTime,
    pub is_dir: bool,
}

/// The lock file [`FileSystem::lock_dir`] takes in the data directory. Topic names cannot
/// contain `@`, so it is never a topic.
pub const LOCK_FILE: &str = "@lock";

/// The payload of the `WouldBlock` error [`FileSystem::lock_dir`] returns when another
/// process holds the lock: that process's pid, when the lock file names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the directory is locked by another process (pid {holder:?})")]
pub struct DirLocked {
    pub holder: Option<u32>,
}

/// Replaces `dir/name` with `bytes`, durably: writes `{name}.tmp`, fdatasyncs it, renames it
/// over `name` and syncs the directory, so a crash leaves the old file or the new one, never a
/// mix; a leftover `.tmp` is only ever a write that did not reach its rename. `name` may be at
/// most 251 bytes long (`NAME_MAX` is 255). Used for topic layouts, consumer offsets and the
/// clean-shutdown marker.
pub async fn replace_file<F: FileSystem>(
    fs: &F,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = fs.open_buffered(&tmp, true).await?;
    let written = write_all_at(&file, bytes, 0).await;
    let synced = match written {
        Ok(()) => file.fdatasync().await,
        Err(e) => Err(e),
    };
    let closed = file.close().await;
    synced?;
    closed?;
    fs.rename(&tmp, &dir.join(name)).await?;
    fs.sync_dir(dir).await
}

/// Writes all of `bytes` at `pos`, going on after short writes. A write of nothing is an
/// error (`WriteZero`), never a loop. (The files written this way are small: copying the
/// bytes into the owned buffer the runtime needs costs nothing that matters.)
pub async fn write_all_at<B: BufferedFile>(file: &B, bytes: &[u8], pos: u64) -> io::Result<()> {
    let mut done = 0usize;
    while done < bytes.len() {
        let n = file
            .write_at(bytes[done..].to_vec(), pos + done as u64)
            .await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the file system wrote nothing",
            ));
        }
        done += n;
    }
    Ok(())
}
