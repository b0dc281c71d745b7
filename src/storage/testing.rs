//! Test-only helpers for the storage unit tests (compiled only under `cfg(test)`): a
//! fault-injecting [`FileSystem`] that wraps a real one and makes the Nth write fail or come back
//! short, or the Nth fdatasync fail, without a bad disk; and the fixtures the [`PartitionLog`]
//! tests share (record batches, a log config, filling a log, listing its files).

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use rand::{Rng, SeedableRng};

use super::chunk::ALIGNMENT;
use super::fs::{BufferedFile, DirEntry, DmaBuf, FileSystem, Metadata, SegmentFile};
use super::{LogConfig, PartitionLog, RecordBuf};

/// The faults to inject, shared by the fs and every file it opens. Counters start at 1 and
/// count calls from the moment a fault is armed.
#[derive(Debug, Default)]
pub struct Faults {
    writes: Cell<u64>,
    syncs: Cell<u64>,
    fail_write: Cell<Option<u64>>,
    short_write: Cell<Option<u64>>,
    fail_sync: Cell<Option<u64>>,
    truncates: std::cell::RefCell<Vec<u64>>,
    /// Every buffered write fails while set.
    fail_buffered: Cell<bool>,
    /// For the next writes, in order: how many times each yields to the executor before it
    /// reaches the disk, so that writes in flight together complete in another order.
    write_delays: std::cell::RefCell<std::collections::VecDeque<u32>>,
    buffered_failures: Cell<u64>,
}

impl Faults {
    /// The `n`th write from now fails with EIO (1 = the next one).
    pub fn fail_write(&self, n: u64) {
        self.fail_write.set(Some(self.writes.get() + n));
    }
    /// The `n`th write from now writes only its first half (aligned down) and reports that.
    pub fn short_write(&self, n: u64) {
        self.short_write.set(Some(self.writes.get() + n));
    }
    /// The `n`th fdatasync from now fails with EIO.
    pub fn fail_sync(&self, n: u64) {
        self.fail_sync.set(Some(self.syncs.get() + n));
    }
    /// The next writes yield `delays[i]` times each before they fail or reach the disk.
    pub fn delay_writes(&self, delays: &[u32]) {
        self.write_delays
            .borrow_mut()
            .extend(delays.iter().copied());
    }
    /// Every buffered write (indexes, small files) fails with EIO while `on`.
    pub fn fail_buffered(&self, on: bool) {
        self.fail_buffered.set(on);
    }
    /// Buffered writes failed so far.
    pub fn buffered_failures(&self) -> u64 {
        self.buffered_failures.get()
    }
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }
    /// The lengths of every truncate so far, in order.
    pub fn truncates(&self) -> Vec<u64> {
        self.truncates.borrow().clone()
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} fault"))
}

/// Wraps `F`, consulting the shared [`Faults`].
#[derive(Debug, Clone, Default)]
pub struct FaultyFs<F> {
    pub inner: F,
    pub faults: Rc<Faults>,
}

impl<F: FileSystem> FaultyFs<F> {
    pub fn new(inner: F) -> FaultyFs<F> {
        FaultyFs {
            inner,
            faults: Rc::default(),
        }
    }
}

/// A file of a [`FaultyFs`].
#[derive(Debug)]
pub struct FaultyFile<T> {
    inner: T,
    faults: Rc<Faults>,
}

impl<F: FileSystem> FileSystem for FaultyFs<F> {
    type File = FaultyFile<F::File>;
    type Buffered = FaultyBuffered<F::Buffered>;
    type Lock = F::Lock;

    async fn create(&self, path: &Path) -> io::Result<Self::File> {
        Ok(FaultyFile {
            inner: self.inner.create(path).await?,
            faults: self.faults.clone(),
        })
    }
    async fn open(&self, path: &Path) -> io::Result<Self::File> {
        Ok(FaultyFile {
            inner: self.inner.open(path).await?,
            faults: self.faults.clone(),
        })
    }
    async fn open_buffered(&self, path: &Path, truncate: bool) -> io::Result<Self::Buffered> {
        Ok(FaultyBuffered {
            inner: self.inner.open_buffered(path, truncate).await?,
            faults: self.faults.clone(),
        })
    }
    async fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read_file(path).await
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        self.inner.list_dir(dir).await
    }
    async fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.inner.metadata(path).await
    }
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir).await
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to).await
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path).await
    }
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(dir).await
    }
    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir).await
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<F::Lock> {
        self.inner.lock_dir(dir)
    }
    async fn free_space(&self, dir: &Path) -> io::Result<u64> {
        self.inner.free_space(dir).await
    }
}

/// A buffered file of a [`FaultyFs`].
#[derive(Debug)]
pub struct FaultyBuffered<B> {
    inner: B,
    faults: Rc<Faults>,
}

impl<B: BufferedFile> BufferedFile for FaultyBuffered<B> {
    async fn write_at(&self, bytes: Vec<u8>, pos: u64) -> io::Result<usize> {
        let f = &self.faults;
        if f.fail_buffered.get() {
            f.buffered_failures.set(f.buffered_failures.get() + 1);
            return Err(injected("buffered write"));
        }
        self.inner.write_at(bytes, pos).await
    }
    async fn fdatasync(&self) -> io::Result<()> {
        self.inner.fdatasync().await
    }
    async fn close(self) -> io::Result<()> {
        self.inner.close().await
    }
}

impl<T: SegmentFile> SegmentFile for FaultyFile<T> {
    type Buf = T::Buf;

    fn alignment(&self) -> u64 {
        self.inner.alignment()
    }
    fn writes_are_durable(&self) -> bool {
        self.inner.writes_are_durable()
    }
    fn alloc_buf(&self, len: usize) -> T::Buf {
        self.inner.alloc_buf(len)
    }
    async fn write_at(&self, mut buf: T::Buf, pos: u64) -> io::Result<usize> {
        let f = &self.faults;
        let n = f.writes.get() + 1;
        f.writes.set(n);
        let delay = f.write_delays.borrow_mut().pop_front().unwrap_or(0);
        for _ in 0..delay {
            futures_lite::future::yield_now().await;
        }
        if f.fail_write.get() == Some(n) {
            return Err(injected("write"));
        }
        if f.short_write.get() == Some(n) {
            let len = buf.as_bytes().len() as u64;
            let short = (len / 2) / self.alignment() * self.alignment();
            if short == 0 {
                return Ok(0);
            }
            buf.trim_to_size(short as usize);
        }
        self.inner.write_at(buf, pos).await
    }
    async fn fdatasync(&self) -> io::Result<()> {
        let f = &self.faults;
        let n = f.syncs.get() + 1;
        f.syncs.set(n);
        if f.fail_sync.get() == Some(n) {
            return Err(injected("fdatasync"));
        }
        self.inner.fdatasync().await
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.inner.read_at(pos, len).await
    }
    async fn file_size(&self) -> io::Result<u64> {
        self.inner.file_size().await
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.faults.truncates.borrow_mut().push(len);
        self.inner.truncate(len).await
    }
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.inner.preallocate(len).await
    }
    async fn close(self) -> io::Result<()> {
        self.inner.close().await
    }
}

/// Records as [`PartitionLog::read_all_records`] returns them: `(offset, timestamp μs, body)`.
pub type Records = Vec<(i64, i64, Vec<u8>)>;

/// A batch of `n` records; `random` bodies do not compress (chunks of predictable size).
pub fn batch(
    rng: &mut rand::rngs::StdRng,
    first_ts: i64,
    n: u32,
    len: usize,
    random: bool,
) -> RecordBuf {
    let mut b = RecordBuf::default();
    for i in 0..n {
        let body: Vec<u8> = if random {
            (0..len).map(|_| rng.gen()).collect()
        } else {
            format!("record {i} {}", "z".repeat(len)).into_bytes()
        };
        b.push(first_ts + i64::from(i), &body);
    }
    b
}

pub fn records_of(start: i64, b: &RecordBuf) -> Records {
    crate::wire::record::RecordIter::new(&b.bytes)
        .enumerate()
        .map(|(i, r)| {
            let r = r.unwrap();
            (start + i as i64, r.timestamp_us, r.body.to_vec())
        })
        .collect()
}

/// The tail is off so that reads exercise the disk path; `hot_tail_serves_what_the_disk_holds`
/// covers the tail.
pub fn config(segment_size: u64) -> LogConfig {
    LogConfig {
        segment_size,
        tail_bytes: 0,
        // The broker's defaults, from the settings' declarations.
        ..crate::config::Config::default().log_config()
    }
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Appends `batches` and returns all their records.
pub async fn fill<F: FileSystem>(log: &PartitionLog<F>, batches: &[RecordBuf]) -> Records {
    let mut all = Vec::new();
    for b in batches {
        let at = log.next_offset();
        let info = log.append(b).await.unwrap();
        assert_eq!(info.start_offset, at);
        assert_eq!(info.record_count, b.count);
        assert_eq!(info.chunk_len % ALIGNMENT, 0);
        assert_eq!(log.next_offset(), at + i64::from(b.count));
        all.extend(records_of(at, b));
    }
    all
}

/// The names of the files in `dir` ending in `ext`, sorted.
pub fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}
