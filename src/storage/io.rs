//! File I/O behind a small trait, so the log can run on DMA files in production and on a
//! fault-injecting wrapper in tests (as tikv raft-engine does with its `FileSystem`).
//!
//! The real implementation is [`crate::rt::dma::DmaFs`] (glommio `DmaFile`, O_DIRECT); the
//! fault injector is `super::testing::FaultyFs`, compiled for unit tests only. Everything is
//! single-threaded per shard, so the futures are not `Send` and the traits use plain `async fn`.

use std::io;
use std::path::Path;

use bytes::Bytes;

/// A buffer aligned for O_DIRECT writes, handed to [`SegmentFile::write_at`] without a copy.
pub trait DmaBuf {
    fn as_bytes(&self) -> &[u8];
    fn as_bytes_mut(&mut self) -> &mut [u8];
    /// Shrinks the buffer to its first `len` bytes (what `write_at` then writes).
    fn trim_to_size(&mut self, len: usize);
}

/// Opens, creates and removes segment files.
#[allow(async_fn_in_trait)]
pub trait SegmentFs {
    type File: SegmentFile;
    /// Creates a new, empty segment file for reading and writing; fails if it exists.
    async fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing segment file for reading and writing.
    async fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Removes a file by name (open handles keep working until dropped).
    async fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created and removed files) durable.
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
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
