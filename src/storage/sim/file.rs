//! Open files of a [`SimFs`]: segment files (O_DIRECT rules: aligned writes) and buffered
//! files (writes anywhere). Both work on the inode, so a removed or renamed file stays usable
//! through its handle, as on Linux.

use std::io;
use std::path::Path;

use bytes::Bytes;

use super::tree::{err, Ino, Op};
use super::SimFs;
use crate::storage::fs::{BufferedFile, DirEntry, DmaBuf, FileSystem, Metadata, SegmentFile};

/// A plain buffer standing in for an aligned DMA buffer.
#[derive(Debug, Clone)]
pub struct SimBuf(Vec<u8>);

impl DmaBuf for SimBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn trim_to_size(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

/// An open file of a [`SimFs`]. Segment files (from `create`/`open`) refuse unaligned
/// writes with EINVAL; buffered ones (from `open_buffered`, alignment 1) take any.
#[derive(Debug, Clone)]
pub struct SimFile {
    pub(super) fs: SimFs,
    pub(super) ino: Ino,
    pub(super) alignment: u64,
    pub(super) durable_writes: bool,
}

impl SimFile {
    /// Writes `bytes` at `pos`: one numbered operation.
    pub fn write_bytes(&self, bytes: &[u8], pos: u64) -> io::Result<usize> {
        let a = self.alignment;
        if !pos.is_multiple_of(a) || !(bytes.len() as u64).is_multiple_of(a) {
            return Err(err(libc::EINVAL));
        }
        let mut s = self.fs.state();
        s.live.file(self.ino)?;
        SimFs::record(
            &mut s,
            Op::Write {
                ino: self.ino,
                pos,
                bytes: bytes.to_vec(),
                durable: self.durable_writes,
            },
        );
        Ok(bytes.len())
    }

    /// Makes the file's data and size durable: one numbered operation.
    pub fn sync(&self) -> io::Result<()> {
        let mut s = self.fs.state();
        s.live.file(self.ino)?;
        SimFs::record(&mut s, Op::Sync { ino: self.ino });
        Ok(())
    }

    /// Up to `len` bytes at `pos` (fewer at the end of the file).
    pub fn read_bytes(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let s = self.fs.state();
        let f = s.live.file(self.ino)?;
        let start = (pos as usize).min(f.len());
        let end = start.saturating_add(len).min(f.len());
        Ok(f[start..end].to_vec())
    }

    pub fn len(&self) -> io::Result<u64> {
        Ok(self.fs.state().live.file(self.ino)?.len() as u64)
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Sets the file's size: one numbered operation.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.state();
        s.live.file(self.ino)?;
        SimFs::record(&mut s, Op::SetLen { ino: self.ino, len });
        Ok(())
    }
}

/// A buffered file of a [`SimFs`] (index and small files): writes anywhere.
#[derive(Debug, Clone)]
pub struct SimBuffered(pub SimFile);

/// The data directory's lock on a [`SimFs`]: nothing else runs on the simulated disk, so it
/// is always granted.
#[derive(Debug)]
pub struct SimLock;

impl FileSystem for SimFs {
    type File = SimFile;
    type Buffered = SimBuffered;
    type Lock = SimLock;

    async fn create(&self, path: &Path) -> io::Result<SimFile> {
        self.do_create(path)
    }
    async fn open(&self, path: &Path) -> io::Result<SimFile> {
        self.do_open(path)
    }
    async fn open_buffered(&self, path: &Path, truncate: bool) -> io::Result<SimBuffered> {
        self.do_open_buffered(path, truncate).map(SimBuffered)
    }
    async fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.do_read_file(path)
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        self.do_list_dir(dir)
    }
    async fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.do_metadata(path)
    }
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.do_create_dir_all(dir)
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.do_rename(from, to)
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.do_remove_file(path)
    }
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.do_remove_dir_all(dir)
    }
    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.do_sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<SimLock> {
        self.do_metadata(dir)?;
        Ok(SimLock)
    }
}

impl BufferedFile for SimBuffered {
    async fn write_at(&self, bytes: Vec<u8>, pos: u64) -> io::Result<usize> {
        self.0.write_bytes(&bytes, pos)
    }
    async fn fdatasync(&self) -> io::Result<()> {
        self.0.sync()
    }
    async fn close(self) -> io::Result<()> {
        Ok(())
    }
}

impl SegmentFile for SimFile {
    type Buf = SimBuf;

    fn alignment(&self) -> u64 {
        self.alignment
    }
    fn writes_are_durable(&self) -> bool {
        self.durable_writes
    }
    fn alloc_buf(&self, len: usize) -> SimBuf {
        SimBuf(vec![0; len])
    }
    async fn write_at(&self, buf: SimBuf, pos: u64) -> io::Result<usize> {
        self.write_bytes(&buf.0, pos)
    }
    async fn fdatasync(&self) -> io::Result<()> {
        self.sync()
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        Ok(Bytes::from(self.read_bytes(pos, len)?))
    }
    async fn file_size(&self) -> io::Result<u64> {
        self.len()
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        if len > self.len()? {
            self.set_len(len)?;
        }
        Ok(())
    }
    async fn close(self) -> io::Result<()> {
        Ok(())
    }
}
