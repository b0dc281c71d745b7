//! DMA (O_DIRECT) segment files on glommio: the segment files of [`super::fs::RealFs`].

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

use crate::storage::fs::{DmaBuf, SegmentFile};

/// A glommio [`DmaFile`] opened for reading and writing.
#[derive(Debug)]
pub struct DmaSegmentFile(DmaFile, bool);

impl DmaSegmentFile {
    /// `durable`: the file was opened with `O_DSYNC`.
    pub(super) fn new(file: DmaFile, durable: bool) -> DmaSegmentFile {
        DmaSegmentFile(file, durable)
    }
}

impl DmaBuf for DmaBuffer {
    fn as_bytes(&self) -> &[u8] {
        DmaBuffer::as_bytes(self)
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        DmaBuffer::as_bytes_mut(self)
    }
    fn trim_to_size(&mut self, len: usize) {
        DmaBuffer::trim_to_size(self, len)
    }
}

thread_local! {
    /// Devices (st_dev) whose io_uring poll support glommio has probed on this thread.
    static PROBED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
    /// Numbers this thread's probe files, so that no two probes share a file.
    static PROBE_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// Works around glommio 0.9's probe of io_uring polling (IOPOLL) support.
///
/// The first DMA open on a device (per thread) reads the file's first block through the poll
/// ring and caches "supported" unless that read fails with ENOTSUP. On an empty file the read
/// hits end-of-file and succeeds without touching the device, so a device without poll queues
/// (virtio, most cloud disks) is taken as pollable and every later read fails with
/// EOPNOTSUPP. So before the first open on a device we open a one-block probe file beside
/// the segment, which makes glommio probe with a real read, then remove it.
///
/// Each probe gets a file of its own (thread id and a sequence number in its name): glommio's
/// `DmaFile::open_at` `unwrap`s a `statfs` of the path after opening it, so a file removed
/// between that open and the `statfs` panics the shard with ENOENT. Two opens of one
/// partition at once used to probe with the same file in the same directory, one removing it
/// under the other. Partition opens are now single-flight (`PartitionWriter::open`), so no
/// segment or probe file is removed while it may be being opened; private probe files keep
/// that true whatever calls this.
///
/// The stat, the probe file's write and its removal run on the blocking pool.
pub(super) async fn probe_device(path: &Path) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let dev = {
        let dir = dir.clone();
        super::spawn_blocking(move || std::fs::metadata(dir))
            .await?
            .dev()
    };
    if PROBED.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let seq = PROBE_SEQ.with(|s| s.replace(s.get() + 1));
    let probe = dir.join(format!(
        ".dma-probe-{}-{:?}-{seq}",
        std::process::id(),
        std::thread::current().id()
    ));
    {
        let probe = probe.clone();
        super::spawn_blocking(move || std::fs::write(probe, [0u8; 4096])).await?;
    }
    let res = async {
        let f = OpenOptions::new().read(true).dma_open(&probe).await?;
        f.close().await?;
        io::Result::Ok(())
    }
    .await;
    let _ = glommio::io::remove(&probe).await;
    res?;
    PROBED.with(|p| p.borrow_mut().insert(dev));
    Ok(())
}

impl SegmentFile for DmaSegmentFile {
    type Buf = DmaBuffer;

    fn writes_are_durable(&self) -> bool {
        self.1
    }

    fn alignment(&self) -> u64 {
        self.0.alignment()
    }

    fn alloc_buf(&self, len: usize) -> DmaBuffer {
        self.0.alloc_dma_buffer(len)
    }

    async fn write_at(&self, buf: DmaBuffer, pos: u64) -> io::Result<usize> {
        Ok(self.0.write_at(buf, pos).await?)
    }

    async fn fdatasync(&self) -> io::Result<()> {
        Ok(self.0.fdatasync().await?)
    }

    /// Aligned read of the covering blocks. (glommio's own unaligned `read_at` returns bytes
    /// past the end of the file when a read is cut short by it.)
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let at = self.0.align_down(pos);
        let end = self.0.align_up(pos + len as u64);
        let r = self.0.read_at_aligned(at, (end - at) as usize).await?;
        let skip = (pos - at) as usize;
        let got = r.len().saturating_sub(skip).min(len);
        Ok(Bytes::copy_from_slice(
            &r[skip.min(r.len())..skip.min(r.len()) + got],
        ))
    }

    async fn file_size(&self) -> io::Result<u64> {
        Ok(self.0.file_size().await?)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        Ok(self.0.truncate(len).await?)
    }

    async fn preallocate(&self, len: u64) -> io::Result<()> {
        Ok(self.0.pre_allocate(len, false).await?)
    }

    async fn close(self) -> io::Result<()> {
        Ok(self.0.close().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::FileSystem;

    #[test]
    fn reads_work_after_creating_an_empty_file_first() {
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
            f.close().await.unwrap();
            assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        });
    }
}
