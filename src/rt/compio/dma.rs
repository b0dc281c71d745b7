//! O_DIRECT segment files on compio: the segment files of [`super::fs::RealFs`], and the
//! aligned buffers their writes and reads go through (compio has no DMA buffer of its own).

use std::alloc::Layout;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use bytes::Bytes;
use compio::buf::{IoBuf, IoBufMut, SetLen};
use compio::fs::File;
use compio::io::{AsyncReadAt, AsyncWriteAt};

use crate::storage::fs::{DmaBuf, SegmentFile};

/// The O_DIRECT alignment segment files use: 4096, a multiple of every logical block size
/// (and the storage format's own alignment, `storage::chunk::ALIGNMENT`).
pub const DMA_ALIGNMENT: usize = 4096;

/// A zeroed heap buffer aligned for O_DIRECT, `len` bytes long in a whole number of blocks.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (its room rounded up to whole blocks).
    pub fn zeroed(len: usize) -> AlignedBuf {
        let cap = len.div_ceil(DMA_ALIGNMENT).max(1) * DMA_ALIGNMENT;
        let layout = AlignedBuf::layout(cap);
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            std::alloc::handle_alloc_error(layout)
        };
        AlignedBuf { ptr, len, cap }
    }

    fn layout(cap: usize) -> Layout {
        match Layout::from_size_align(cap, DMA_ALIGNMENT) {
            Ok(l) => l,
            // `cap` is a multiple of the alignment, far below isize::MAX for any real buffer.
            Err(e) => panic!("aligned buffer of {cap} bytes: {e}"),
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), AlignedBuf::layout(self.cap)) };
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlignedBuf({} of {} bytes)", self.len, self.cap)
    }
}

impl AlignedBuf {
    /// The buffer's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: the first `len ≤ cap` bytes are initialized (zeroed or written) and owned.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The buffer's bytes, to fill.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_bytes`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl DmaBuf for AlignedBuf {
    fn as_bytes(&self) -> &[u8] {
        AlignedBuf::as_bytes(self)
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        AlignedBuf::as_bytes_mut(self)
    }
    fn trim_to_size(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl IoBuf for AlignedBuf {
    fn as_init(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl SetLen for AlignedBuf {
    unsafe fn set_len(&mut self, len: usize) {
        self.len = len.min(self.cap);
    }
}

impl IoBufMut for AlignedBuf {
    fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `cap` bytes owned by the buffer (all zeroed at allocation).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), self.cap) }
    }
}

/// A compio [`File`] opened with O_DIRECT for reading and writing.
#[derive(Debug)]
pub struct DmaSegmentFile {
    file: File,
    /// Opened with `O_DSYNC`: every write is durable when it completes.
    durable: bool,
}

impl DmaSegmentFile {
    pub(super) fn new(file: File, durable: bool) -> DmaSegmentFile {
        DmaSegmentFile { file, durable }
    }
}

fn align_down(pos: u64) -> u64 {
    pos - pos % DMA_ALIGNMENT as u64
}

fn align_up(pos: u64) -> u64 {
    pos.div_ceil(DMA_ALIGNMENT as u64) * DMA_ALIGNMENT as u64
}

impl SegmentFile for DmaSegmentFile {
    type Buf = AlignedBuf;

    fn writes_are_durable(&self) -> bool {
        self.durable
    }

    fn alignment(&self) -> u64 {
        DMA_ALIGNMENT as u64
    }

    fn alloc_buf(&self, len: usize) -> AlignedBuf {
        AlignedBuf::zeroed(len)
    }

    async fn write_at(&self, buf: AlignedBuf, pos: u64) -> io::Result<usize> {
        let mut file = &self.file;
        file.write_at(buf, pos).await.0
    }

    async fn fdatasync(&self) -> io::Result<()> {
        self.file.sync_data().await
    }

    /// Aligned read of the covering blocks, cut to what was asked and what the file holds.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let at = align_down(pos);
        let end = align_up(pos + len as u64);
        let mut buf = AlignedBuf::zeroed((end - at) as usize);
        // SAFETY: an empty buffer: the read fills it from the start.
        unsafe { buf.set_len(0) };
        let (res, buf) = self.file.read_at(buf, at).await.into();
        res?;
        let r = buf.as_bytes();
        let skip = ((pos - at) as usize).min(r.len());
        let got = (r.len() - skip).min(len);
        Ok(Bytes::copy_from_slice(&r[skip..skip + got]))
    }

    async fn file_size(&self) -> io::Result<u64> {
        Ok(self.file.metadata().await?.len())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len).await
    }

    /// Allocates the file's blocks up to `len` (the file's size grows to `len`), on the
    /// blocking pool.
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        let len = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        // The descriptor stays open: `self` is borrowed until the call returns.
        super::spawn_blocking(move || {
            // SAFETY: fallocate(2) on an open descriptor; it touches no memory of ours.
            if unsafe { libc::fallocate(fd, 0, 0, len) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
        .await
    }

    async fn close(self) -> io::Result<()> {
        self.file.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::FileSystem;

    #[test]
    fn writes_read_back_and_truncate() {
        crate::rt::block_on(async {
            let tmp = tempfile::TempDir::new().unwrap();
            let f = crate::rt::fs::RealFs::default()
                .create(&tmp.path().join("f"))
                .await
                .unwrap();
            assert_eq!(f.alignment() % 512, 0);
            let mut b = f.alloc_buf(8192);
            b.as_bytes_mut().fill(7);
            b.as_bytes_mut()[4096] = 9;
            assert_eq!(f.write_at(b, 0).await.unwrap(), 8192);
            let r = f.read_at(4096, 10).await.unwrap();
            assert_eq!(&r[..2], &[9, 7]);
            assert_eq!(f.read_at(8000, 4096).await.unwrap().len(), 192);
            f.truncate(4096).await.unwrap();
            assert_eq!(f.file_size().await.unwrap(), 4096);
            f.preallocate(16384).await.unwrap();
            assert_eq!(f.file_size().await.unwrap(), 16384);
            f.close().await.unwrap();
            assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        });
    }
}
