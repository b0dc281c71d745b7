//! [`BrokerFs`]: the one concrete [`FileSystem`] the broker passes around, an enum over the
//! implementations, so `Shard`, the writer and the offset store need no type parameter.
//!
//! Every method asks the fail points first ([`super::faults`]: one relaxed load when they are
//! off), then matches on the variant and calls the implementation directly: no boxing, no
//! dynamic dispatch, and the segment write path moves its aligned buffer through untouched.
//! Adding an implementation is a variant in each enum below (`BrokerFs`, `AnyFile`,
//! `BrokerBuf`, `AnyBuffered`, `BrokerLock`) plus one arm in each of `each!` and `each_pair!`.

use std::io;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::faults::injected;
use super::{BufferedFile, DirEntry, DmaBuf, FileSystem, Metadata, SegmentFile};
use crate::rt::dma::DmaSegmentFile;
use crate::rt::fs::{RealBuffered, RealFs, RealLock};
use crate::storage::sim::{SimBuf, SimBuffered, SimFile, SimFs, SimLock};
use crate::storage::Durability;

/// The file system the broker runs on.
#[derive(Debug, Clone)]
pub enum BrokerFs {
    Real(RealFs),
    /// The in-memory power-loss simulator (tests and the power-cut campaign).
    Sim(SimFs),
}

/// A segment file of a [`BrokerFs`], and its path (which fail points filter on).
#[derive(Debug)]
pub struct BrokerFile {
    file: AnyFile,
    path: Rc<Path>,
}

/// The implementation's own segment file.
#[derive(Debug)]
pub(crate) enum AnyFile {
    Real(DmaSegmentFile),
    Sim(SimFile),
}

/// An aligned buffer of a [`BrokerFile`] (it goes back to a file of the same variant).
#[derive(Debug)]
pub enum BrokerBuf {
    Real(<DmaSegmentFile as SegmentFile>::Buf),
    Sim(SimBuf),
}

/// A buffered file of a [`BrokerFs`], and its path (which fail points filter on).
#[derive(Debug)]
pub struct BrokerBuffered {
    file: AnyBuffered,
    path: Rc<Path>,
}

/// The implementation's own buffered file.
#[derive(Debug)]
pub(crate) enum AnyBuffered {
    Real(RealBuffered),
    Sim(SimBuffered),
}

/// The data directory's lock, held by a [`BrokerFs`].
#[derive(Debug)]
pub enum BrokerLock {
    Real(RealLock),
    Sim(SimLock),
}

/// `each!(value, Enum, |inner| expr)` runs `expr` on whichever implementation `value` holds;
/// with `=> Out` after it, wraps the `Ok` value in the same variant of `Out`; with `into Out`,
/// wraps the value itself.
macro_rules! each {
    ($value:expr, $enum:ident, |$inner:ident| $body:expr) => {
        match $value {
            $enum::Real($inner) => $body,
            $enum::Sim($inner) => $body,
        }
    };
    ($value:expr, $enum:ident, |$inner:ident| $body:expr => $out:ident) => {
        match $value {
            $enum::Real($inner) => $body.map($out::Real),
            $enum::Sim($inner) => $body.map($out::Sim),
        }
    };
    ($value:expr, $enum:ident, |$inner:ident| $body:expr, into $out:ident) => {
        match $value {
            $enum::Real($inner) => $out::Real($body),
            $enum::Sim($inner) => $out::Sim($body),
        }
    };
}

/// `each_pair!(file, buf, |f, b| expr)`: a segment file and a buffer of the same variant (a
/// buffer always comes from its file's `alloc_buf`, so another pairing is a bug, reported as
/// an error rather than a panic).
macro_rules! each_pair {
    ($file:expr, $buf:expr, |$f:ident, $b:ident| $body:expr) => {
        #[allow(unreachable_patterns)]
        match ($file, $buf) {
            (AnyFile::Real($f), BrokerBuf::Real($b)) => $body,
            (AnyFile::Sim($f), BrokerBuf::Sim($b)) => $body,
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a buffer of one file system written to a file of another",
            )),
        }
    };
}

impl BrokerFs {
    /// The real file system, its segment files opened for `durability` (`O_DSYNC` when every
    /// write must be durable: see `RealFs::durable_writes`).
    pub fn real(durability: Durability) -> BrokerFs {
        BrokerFs::Real(RealFs {
            durable_writes: durability == Durability::Fsync,
        })
    }
}

/// The real file system, without `O_DSYNC` segment writes.
impl Default for BrokerFs {
    fn default() -> BrokerFs {
        BrokerFs::Real(RealFs::default())
    }
}

impl From<RealFs> for BrokerFs {
    fn from(fs: RealFs) -> BrokerFs {
        BrokerFs::Real(fs)
    }
}

impl From<SimFs> for BrokerFs {
    fn from(fs: SimFs) -> BrokerFs {
        BrokerFs::Sim(fs)
    }
}

impl FileSystem for BrokerFs {
    type File = BrokerFile;
    type Buffered = BrokerBuffered;
    type Lock = BrokerLock;

    async fn create(&self, path: &Path) -> io::Result<BrokerFile> {
        injected("fs.create", path).await?;
        let file = each!(self, BrokerFs, |fs| fs.create(path).await => AnyFile)?;
        Ok(BrokerFile::new(file, path))
    }
    async fn open(&self, path: &Path) -> io::Result<BrokerFile> {
        injected("fs.open", path).await?;
        let file = each!(self, BrokerFs, |fs| fs.open(path).await => AnyFile)?;
        Ok(BrokerFile::new(file, path))
    }
    async fn open_buffered(&self, path: &Path, truncate: bool) -> io::Result<BrokerBuffered> {
        injected("fs.create", path).await?;
        let file =
            each!(self, BrokerFs, |fs| fs.open_buffered(path, truncate).await => AnyBuffered)?;
        Ok(BrokerBuffered {
            file,
            path: Rc::from(path),
        })
    }
    async fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        injected("fs.read", path).await?;
        each!(self, BrokerFs, |fs| fs.read_file(path).await)
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        injected("fs.list", dir).await?;
        each!(self, BrokerFs, |fs| fs.list_dir(dir).await)
    }
    async fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        injected("fs.list", path).await?;
        each!(self, BrokerFs, |fs| fs.metadata(path).await)
    }
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        injected("fs.create", dir).await?;
        each!(self, BrokerFs, |fs| fs.create_dir_all(dir).await)
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        injected("fs.rename", from).await?;
        each!(self, BrokerFs, |fs| fs.rename(from, to).await)
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        injected("fs.remove", path).await?;
        each!(self, BrokerFs, |fs| fs.remove_file(path).await)
    }
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        injected("fs.remove", dir).await?;
        each!(self, BrokerFs, |fs| fs.remove_dir_all(dir).await)
    }
    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        injected("fs.sync_dir", dir).await?;
        each!(self, BrokerFs, |fs| fs.sync_dir(dir).await)
    }
    async fn free_space(&self, dir: &Path) -> io::Result<u64> {
        each!(self, BrokerFs, |fs| fs.free_space(dir).await)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<BrokerLock> {
        each!(self, BrokerFs, |fs| fs.lock_dir(dir) => BrokerLock)
    }
}

impl BrokerFile {
    fn new(file: AnyFile, path: &Path) -> BrokerFile {
        BrokerFile {
            file,
            path: Rc::from(path),
        }
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SegmentFile for BrokerFile {
    type Buf = BrokerBuf;

    fn alignment(&self) -> u64 {
        each!(&self.file, AnyFile, |f| f.alignment())
    }
    fn writes_are_durable(&self) -> bool {
        each!(&self.file, AnyFile, |f| f.writes_are_durable())
    }
    fn alloc_buf(&self, len: usize) -> BrokerBuf {
        each!(&self.file, AnyFile, |f| f.alloc_buf(len), into BrokerBuf)
    }
    async fn write_at(&self, mut buf: BrokerBuf, pos: u64) -> io::Result<usize> {
        if injected("fs.write", &self.path).await? {
            let align = self.alignment().max(1);
            let short = (buf.as_bytes().len() as u64 / 2) / align * align;
            if short == 0 {
                return Ok(0);
            }
            buf.trim_to_size(short as usize);
        }
        each_pair!(&self.file, buf, |f, b| f.write_at(b, pos).await)
    }
    async fn fdatasync(&self) -> io::Result<()> {
        injected("fs.fdatasync", &self.path).await?;
        each!(&self.file, AnyFile, |f| f.fdatasync().await)
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        injected("fs.read", &self.path).await?;
        each!(&self.file, AnyFile, |f| f.read_at(pos, len).await)
    }
    async fn file_size(&self) -> io::Result<u64> {
        each!(&self.file, AnyFile, |f| f.file_size().await)
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        injected("fs.truncate", &self.path).await?;
        each!(&self.file, AnyFile, |f| f.truncate(len).await)
    }
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        each!(&self.file, AnyFile, |f| f.preallocate(len).await)
    }
    async fn close(self) -> io::Result<()> {
        each!(self.file, AnyFile, |f| f.close().await)
    }
}

impl DmaBuf for BrokerBuf {
    fn as_bytes(&self) -> &[u8] {
        each!(self, BrokerBuf, |b| b.as_bytes())
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        each!(self, BrokerBuf, |b| b.as_bytes_mut())
    }
    fn trim_to_size(&mut self, len: usize) {
        each!(self, BrokerBuf, |b| b.trim_to_size(len))
    }
}

impl BrokerBuffered {
    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl BufferedFile for BrokerBuffered {
    async fn write_at(&self, mut bytes: Vec<u8>, pos: u64) -> io::Result<usize> {
        if injected("fs.write_buffered", &self.path).await? {
            bytes.truncate(bytes.len() / 2);
            if bytes.is_empty() {
                return Ok(0);
            }
        }
        each!(&self.file, AnyBuffered, |f| f.write_at(bytes, pos).await)
    }
    async fn fdatasync(&self) -> io::Result<()> {
        injected("fs.fdatasync", &self.path).await?;
        each!(&self.file, AnyBuffered, |f| f.fdatasync().await)
    }
    async fn close(self) -> io::Result<()> {
        each!(self.file, AnyBuffered, |f| f.close().await)
    }
}
