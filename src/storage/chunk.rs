//! The chunk: the unit of storage, of durability and of reads. Pure code, no I/O.
//!
//! ```text
//! flags u8 | length u32 | start offset i64 | record count u32 | head crc u32   (21 bytes, BE)
//! zstd frames with content checksums, `length` bytes in all, of the records
//!     (timestamp μs i64 | length u32 | body)*
//! padding: 0x80 bytes up to the next multiple of ALIGNMENT
//! ```
//!
//! The head CRC is CRC-32 (IEEE) of the first 17 header bytes. A real chunk has flags 0; a
//! padding byte is [`FLAG_ALIGNMENT`], so a reader at an aligned position that sees 0x80 as the
//! flags byte knows it is looking at padding.

use std::cell::RefCell;
use std::rc::Rc;

use thiserror::Error;
use zstd::zstd_safe::{self, zstd_sys::ZSTD_EndDirective, CCtx, CParameter, InBuffer, OutBuffer};

use crate::wire::payload::PayloadError;
use crate::wire::record::RecordIter;

/// One chunk as stored: `payload` is exactly its zstd frames, ready for a poll response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    pub start_offset: i64,
    pub record_count: u32,
    pub payload: bytes::Bytes,
}

impl StoredChunk {
    /// The offset after the last record. Saturates rather than overflow: recovery and
    /// [`ChunkEncoder::encode`] refuse chunks whose end does not fit an `i64`.
    pub fn end_offset(&self) -> i64 {
        self.start_offset
            .saturating_add(i64::from(self.record_count))
    }
}

/// Bytes of a chunk header.
pub const HEADER_LEN: usize = 21;
/// Bytes of the header covered by the head CRC.
const CRC_COVERED: usize = 17;

/// Every chunk starts, and every segment file ends, at a multiple of this many bytes.
///
/// This is the one place the alignment is written down. It is fixed at 4096 rather than taken
/// from the device so that the format does not depend on the disk a file was written on: 4096
/// is a multiple of every O_DIRECT alignment the runtime reports (512 or 4096), and opening a
/// segment on a device that needs more is refused with [`crate::storage::StorageError::Alignment`].
pub const ALIGNMENT: u64 = 4096;

/// The flags byte of padding (PolarStreams' "alignment" flag).
pub const FLAG_ALIGNMENT: u8 = 0x80;

/// Rounds `v` up to a multiple of [`ALIGNMENT`].
pub const fn align_up(v: u64) -> u64 {
    v.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// What is wrong with a chunk's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    #[error("chunk head crc mismatch: header says {expected:#010x}, computed {actual:#010x}")]
    HeadCrcMismatch { expected: u32, actual: u32 },
    #[error("chunk payload is not zstd frames with content checksums: {0}")]
    BadFrame(&'static str),
    #[error("zstd: {0}")]
    Zstd(String),
    #[error("chunk declares {declared} records but its payload holds {actual}")]
    RecordCount { declared: u32, actual: u32 },
    #[error("chunk payload has a malformed record: {0}")]
    BadRecord(String),
    #[error("output buffer of {have} bytes is smaller than the {need} bytes a chunk may need")]
    BufferTooSmall { have: usize, need: usize },
    #[error("a chunk needs at least one record")]
    Empty,
    #[error(
        "a chunk of {count} records starting at offset {start} would end past the largest offset"
    )]
    OffsetOverflow { start: i64, count: u32 },
    #[error("chunk payload decompresses to more than {limit} bytes, more than any chunk holds")]
    TooLarge { limit: usize },
}

impl From<PayloadError> for ChunkError {
    fn from(e: PayloadError) -> ChunkError {
        match e {
            PayloadError::BadFrame(why) => ChunkError::BadFrame(why),
            PayloadError::Zstd(name) => ChunkError::Zstd(name),
            PayloadError::TooLarge { limit } => ChunkError::TooLarge { limit },
        }
    }
}

fn zstd_err(code: usize) -> ChunkError {
    ChunkError::Zstd(zstd_safe::get_error_name(code).to_string())
}

/// The 21-byte chunk header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub flags: u8,
    /// Bytes of the compressed payload (the zstd frame), padding excluded.
    pub length: u32,
    pub start_offset: i64,
    pub record_count: u32,
    pub crc: u32,
}

impl ChunkHeader {
    /// A data chunk's header (flags 0) with its CRC computed.
    pub fn new(length: u32, start_offset: i64, record_count: u32) -> ChunkHeader {
        let mut h = ChunkHeader {
            flags: 0,
            length,
            start_offset,
            record_count,
            crc: 0,
        };
        let mut b = [0u8; HEADER_LEN];
        h.encode(&mut b);
        h.crc = crc32fast::hash(&b[..CRC_COVERED]);
        h
    }

    /// Writes the header, with the CRC field as it is in `self`.
    pub fn encode(&self, dst: &mut [u8; HEADER_LEN]) {
        dst[0] = self.flags;
        dst[1..5].copy_from_slice(&self.length.to_be_bytes());
        dst[5..13].copy_from_slice(&self.start_offset.to_be_bytes());
        dst[13..17].copy_from_slice(&self.record_count.to_be_bytes());
        dst[17..21].copy_from_slice(&self.crc.to_be_bytes());
    }

    /// Parses and CRC-checks a header. `Ok(None)` when fewer than 21 bytes are given.
    pub fn parse(src: &[u8]) -> Result<Option<ChunkHeader>, ChunkError> {
        let Some(b) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut off = [0u8; 8];
        off.copy_from_slice(&b[5..13]);
        let h = ChunkHeader {
            flags: b[0],
            length: be32(1),
            start_offset: i64::from_be_bytes(off),
            record_count: be32(13),
            crc: be32(17),
        };
        let actual = crc32fast::hash(&b[..CRC_COVERED]);
        if actual != h.crc {
            return Err(ChunkError::HeadCrcMismatch {
                expected: h.crc,
                actual,
            });
        }
        Ok(Some(h))
    }

    /// Header + payload, padding excluded.
    pub fn unpadded_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.length)
    }

    /// Header + payload + padding: the distance to the next chunk.
    pub fn padded_len(&self) -> u64 {
        align_up(self.unpadded_len())
    }

    /// The offset after this chunk's last record. Saturates rather than overflow (a header read
    /// from disk may hold any start offset); recovery uses [`Self::checked_end_offset`] and
    /// refuses a chunk whose end does not fit.
    pub fn end_offset(&self) -> i64 {
        self.start_offset
            .saturating_add(i64::from(self.record_count))
    }

    /// The offset after this chunk's last record, or `None` if it does not fit an `i64`.
    pub fn checked_end_offset(&self) -> Option<i64> {
        self.start_offset.checked_add(i64::from(self.record_count))
    }
}

/// A batch of records handed to [`ChunkEncoder::encode`] as pieces of bytes, so the caller can
/// pass slices of network frames without first copying them into one buffer.
///
/// The concatenation of the pieces must be exactly the records `timestamp μs i64 | length u32 |
/// body`, `record_count()` of them, `raw_len()` bytes in all.
pub trait RecordBatch {
    fn record_count(&self) -> u32;
    /// The newest record timestamp (μs) of the batch, for the time index.
    fn max_timestamp_us(&self) -> i64;
    /// Bytes of the records to compress (what [`for_each_piece`](Self::for_each_piece) yields).
    fn raw_len(&self) -> usize;
    fn for_each_piece(&self, f: &mut dyn FnMut(&[u8]));

    /// Bytes and number of the zstd frames a producer compressed itself that the batch also
    /// holds (PRODUCE flag `0x08`); `(0, 0)`, the default, for a batch of records only.
    fn compressed_len(&self) -> (usize, usize) {
        (0, 0)
    }

    /// The batch in offset order as records to compress and producer-compressed frames (only
    /// called when [`compressed_len`](Self::compressed_len) is not zero). The records pieces
    /// are those of [`for_each_piece`](Self::for_each_piece), `raw_len()` bytes in all.
    fn for_each_part(&self, f: &mut dyn FnMut(Part<'_>)) {
        self.for_each_piece(&mut |piece| f(Part::Records(piece)))
    }
}

/// A piece of a batch that holds producer-compressed frames (see [`RecordBatch::for_each_part`]).
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// Record bytes the broker compresses; consecutive pieces become one zstd frame.
    Records(&'a [u8]),
    /// One or more whole zstd frames with content checksums, stored as they are.
    Compressed(&'a [u8]),
}

/// Already-encoded records in one buffer (tests, tools, recovery).
#[derive(Debug, Clone, Default)]
pub struct RecordBuf {
    pub bytes: Vec<u8>,
    pub count: u32,
}

impl RecordBuf {
    pub fn push(&mut self, timestamp_us: i64, body: &[u8]) {
        crate::wire::record::encode_record(timestamp_us, body, &mut self.bytes);
        self.count += 1;
    }
}

impl RecordBatch for RecordBuf {
    fn record_count(&self) -> u32 {
        self.count
    }
    fn max_timestamp_us(&self) -> i64 {
        // Tests and tools only: a walk of the records' headers.
        RecordIter::new(&self.bytes)
            .map_while(Result::ok)
            .map(|r| r.timestamp_us)
            .max()
            .unwrap_or(i64::MIN)
    }
    fn raw_len(&self) -> usize {
        self.bytes.len()
    }
    fn for_each_piece(&self, f: &mut dyn FnMut(&[u8])) {
        f(&self.bytes)
    }
}

/// Batches up to this many raw bytes are staged (copied into one buffer) and compressed in
/// one shot; bigger ones are streamed piece by piece.
const STAGE_MAX: usize = 1 << 20;

/// Compresses record batches into chunks, reusing one zstd context (and one staging buffer)
/// for every chunk. One per shard: this is the hot path.
///
/// A batch of up to 1 MiB of records is first gathered from its pieces into a reused staging
/// buffer and then compressed with one `ZSTD_compress2` call straight into the output (zstd's
/// one-shot path, with stable buffers and no internal copies). Bigger batches are fed piece by
/// piece to the streaming compressor. Measured with the ignored test `bench_encoder` (level 1,
/// JSON-like lines, 16 to 4000 messages per batch, 2 pieces per message): staging runs at
/// 94-96% of one-shot compression of an already contiguous buffer; feeding pieces to the
/// stream directly at 89-97%, slower for small messages, where per-call overhead dominates.
pub struct ChunkEncoder {
    cctx: CCtx<'static>,
    /// The level it was made for (`--zstd-level`): a thread's encoders are found by it.
    configured: i32,
    /// The level it compresses at now: the configured one, unless the shard's adaptive level
    /// (`--zstd-min-level`, `shard/adaptive_level.rs`) stepped it down.
    level: i32,
    stage: Vec<u8>,
    work: CompressWork,
}

/// Compression done since it was last taken ([`ChunkEncoder::take_work`]): what the adaptive
/// level learns the cost of a level from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompressWork {
    /// Record bytes compressed (producer-compressed frames, copied as they are, not counted).
    pub raw_bytes: u64,
    /// Time spent compressing them.
    pub nanos: u64,
}

thread_local! {
    /// This thread's encoders by level (see [`ChunkEncoder::for_this_thread`]).
    static THREAD_ENCODERS: RefCell<Vec<Rc<RefCell<ChunkEncoder>>>> = const { RefCell::new(Vec::new()) };
}

impl ChunkEncoder {
    /// The encoder every partition log on this thread (a shard) shares for `level`.
    /// Compression runs synchronously on the shard's thread, so one context is enough. One
    /// per partition cost a zstd context and up to 1 MiB of staging for every partition of
    /// every topic (hundreds of MiB with a hundred topics), and kept cold copies of the
    /// tables that the partitions took turns with.
    pub fn for_this_thread(level: i32) -> Result<Rc<RefCell<ChunkEncoder>>, ChunkError> {
        THREAD_ENCODERS.with(|all| {
            if let Some(e) = all.borrow().iter().find(|e| e.borrow().configured == level) {
                return Ok(e.clone());
            }
            let e = Rc::new(RefCell::new(ChunkEncoder::new(level)?));
            all.borrow_mut().push(e.clone());
            Ok(e)
        })
    }

    pub fn new(level: i32) -> Result<ChunkEncoder, ChunkError> {
        let mut cctx = CCtx::try_create().ok_or(ChunkError::Zstd("out of memory".into()))?;
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .map_err(zstd_err)?;
        cctx.set_parameter(CParameter::ChecksumFlag(true))
            .map_err(zstd_err)?;
        Ok(ChunkEncoder {
            cctx,
            configured: level,
            level,
            stage: Vec::new(),
            work: CompressWork::default(),
        })
    }

    /// The level chunks are compressed at now.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Compresses the next chunks at `level` (zstd applies it from the next frame on).
    pub fn set_level(&mut self, level: i32) -> Result<(), ChunkError> {
        if level != self.level {
            self.cctx
                .set_parameter(CParameter::CompressionLevel(level))
                .map_err(zstd_err)?;
            self.level = level;
        }
        Ok(())
    }

    /// The compression done since the last call.
    pub fn take_work(&mut self) -> CompressWork {
        std::mem::take(&mut self.work)
    }

    /// The output buffer size [`encode`](Self::encode) needs for `raw_len` bytes of records:
    /// header + zstd's compress bound, rounded up to [`ALIGNMENT`].
    pub fn max_encoded_len(raw_len: usize) -> usize {
        align_up((HEADER_LEN + zstd_safe::compress_bound(raw_len)) as u64) as usize
    }

    /// The output buffer size [`encode`](Self::encode) needs for `batch`: as
    /// [`max_encoded_len`](Self::max_encoded_len), plus the producer-compressed frames it holds
    /// and the bound's small-input slack (at most 64 bytes) once per frame of records between them.
    pub fn max_encoded_len_of(batch: &dyn RecordBatch) -> usize {
        match batch.compressed_len() {
            (_, 0) => Self::max_encoded_len(batch.raw_len()),
            (bytes, frames) => {
                let records = zstd_safe::compress_bound(batch.raw_len()) + 64 * (frames + 1);
                align_up((HEADER_LEN + records + bytes) as u64) as usize
            }
        }
    }

    /// Encodes `batch` as one chunk starting at `start_offset` into `out`, which must be at
    /// least [`max_encoded_len`](Self::max_encoded_len) bytes. Returns the header and the
    /// padded length written (a multiple of [`ALIGNMENT`]).
    pub fn encode(
        &mut self,
        start_offset: i64,
        batch: &dyn RecordBatch,
        out: &mut [u8],
    ) -> Result<(ChunkHeader, usize), ChunkError> {
        let count = batch.record_count();
        if count == 0 {
            return Err(ChunkError::Empty);
        }
        if start_offset.checked_add(i64::from(count)).is_none() {
            return Err(ChunkError::OffsetOverflow {
                start: start_offset,
                count,
            });
        }
        let need = Self::max_encoded_len_of(batch);
        if out.len() < need {
            return Err(ChunkError::BufferTooSmall {
                have: out.len(),
                need,
            });
        }
        let started = std::time::Instant::now();
        let length = self.compress(batch, &mut out[HEADER_LEN..need])?;
        self.work.raw_bytes += batch.raw_len() as u64;
        self.work.nanos += started.elapsed().as_nanos() as u64;
        let length = u32::try_from(length).map_err(|_| ChunkError::BadFrame("over 4 GiB"))?;
        let header = ChunkHeader::new(length, start_offset, count);
        let mut hb = [0u8; HEADER_LEN];
        header.encode(&mut hb);
        out[..HEADER_LEN].copy_from_slice(&hb);
        let end = header.unpadded_len() as usize;
        let padded = header.padded_len() as usize;
        out[end..padded].fill(FLAG_ALIGNMENT);
        Ok((header, padded))
    }

    /// Compresses the pieces as one frame into `dst`; returns the frame's length.
    fn compress(&mut self, batch: &dyn RecordBatch, dst: &mut [u8]) -> Result<usize, ChunkError> {
        if batch.compressed_len().1 > 0 {
            return self.compress_parts(batch, dst);
        }
        let raw_len = batch.raw_len();
        let cctx = &mut self.cctx;
        let mut fed = 0usize;
        let written = if raw_len <= STAGE_MAX {
            let stage = &mut self.stage;
            stage.clear();
            batch.for_each_piece(&mut |piece: &[u8]| {
                fed += piece.len();
                stage.extend_from_slice(piece);
            });
            if fed == raw_len {
                cctx.compress2(dst, stage).map_err(zstd_err)?
            } else {
                0
            }
        } else {
            self.stage = Vec::new();
            Self::compress_streaming(cctx, batch, raw_len, dst, &mut fed)?
        };
        if fed != raw_len {
            return Err(ChunkError::BadRecord(format!(
                "batch says {raw_len} bytes but its pieces hold {fed}"
            )));
        }
        Ok(written)
    }

    /// A batch with producer-compressed frames: each run of records between them is staged and
    /// compressed as a frame of its own, and the producer's frames are copied in between, so
    /// the payload is the batch's frames in offset order. Such a batch holds several PRODUCE
    /// frames (at most [`MAX_CHUNK_RAW`] raw bytes) or one compressed frame alone, so a run
    /// always fits the staging buffer.
    fn compress_parts(
        &mut self,
        batch: &dyn RecordBatch,
        dst: &mut [u8],
    ) -> Result<usize, ChunkError> {
        fn flush(
            cctx: &mut CCtx<'static>,
            stage: &mut Vec<u8>,
            dst: &mut [u8],
            pos: &mut usize,
        ) -> Result<(), ChunkError> {
            if !stage.is_empty() {
                let out = dst.get_mut(*pos..).unwrap_or_default();
                *pos += cctx.compress2(out, stage).map_err(zstd_err)?;
                stage.clear();
            }
            Ok(())
        }
        let (cctx, stage) = (&mut self.cctx, &mut self.stage);
        stage.clear();
        let (mut pos, mut fed, mut failed) = (0usize, 0usize, None);
        batch.for_each_part(&mut |part| {
            if failed.is_some() {
                return;
            }
            match part {
                Part::Records(piece) => {
                    fed += piece.len();
                    stage.extend_from_slice(piece);
                }
                Part::Compressed(frames) => {
                    if let Err(e) = flush(cctx, stage, dst, &mut pos) {
                        failed = Some(e);
                    } else if let Some(d) = dst.get_mut(pos..pos + frames.len()) {
                        d.copy_from_slice(frames);
                        pos += frames.len();
                    } else {
                        failed = Some(ChunkError::BufferTooSmall {
                            have: dst.len(),
                            need: pos + frames.len(),
                        });
                    }
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        flush(cctx, stage, dst, &mut pos)?;
        if fed != batch.raw_len() {
            return Err(ChunkError::BadRecord(format!(
                "batch says {} bytes but its pieces hold {fed}",
                batch.raw_len()
            )));
        }
        Ok(pos)
    }

    /// Feeds every piece to the streaming compressor (batches too big for the staging buffer).
    fn compress_streaming(
        cctx: &mut CCtx<'static>,
        batch: &dyn RecordBatch,
        raw_len: usize,
        dst: &mut [u8],
        fed: &mut usize,
    ) -> Result<usize, ChunkError> {
        cctx.reset(zstd_safe::ResetDirective::SessionOnly)
            .map_err(zstd_err)?;
        cctx.set_pledged_src_size(Some(raw_len as u64))
            .map_err(zstd_err)?;
        let mut out = OutBuffer::around(dst);
        let mut err = None;
        batch.for_each_piece(&mut |piece: &[u8]| {
            *fed += piece.len();
            let mut input = InBuffer::around(piece);
            while err.is_none() && input.pos() < piece.len() {
                if let Err(e) =
                    cctx.compress_stream2(&mut out, &mut input, ZSTD_EndDirective::ZSTD_e_continue)
                {
                    err = Some(zstd_err(e));
                }
            }
        });
        if let Some(e) = err {
            // Leave the context ready for the next chunk.
            let _ = cctx.reset(zstd_safe::ResetDirective::SessionOnly);
            return Err(e);
        }
        if *fed != raw_len {
            let _ = cctx.reset(zstd_safe::ResetDirective::SessionOnly);
            return Ok(0);
        }
        let mut input = InBuffer::around(&[]);
        while cctx
            .compress_stream2(&mut out, &mut input, ZSTD_EndDirective::ZSTD_e_end)
            .map_err(zstd_err)?
            != 0
        {}
        Ok(out.pos())
    }
}

/// Most raw record bytes the broker puts into a chunk of several frames (group commit); a
/// single frame larger than this goes alone into its chunk. Used by the shard's writer.
pub const MAX_CHUNK_RAW: usize = 1 << 20;

/// The largest frame any configuration accepts: `--max-frame-size` and
/// `--grpc-max-message-size` are both at most 256 MiB. The bound used when the caller does not
/// know the configured limits (recovery, tools).
pub const MAX_FRAME_LIMIT: usize = 256 << 20;

/// Slack on top of [`max_decoded_len`]'s worst case (a gRPC value's frame is its message plus
/// a 4-byte length, a REST frame's header is at most 265 bytes).
const DECODE_MARGIN: usize = 64 << 10;

/// The most bytes a chunk the broker wrote can decompress to, given the largest frame the
/// broker accepts (`max_frame`: the larger of `--max-frame-size` and `--grpc-max-message-size`)
/// and, when known, the chunk's record count.
///
/// A chunk holds either several whole frames whose raw records total at most
/// [`MAX_CHUNK_RAW`], or one frame alone. A frame's messages are `len u32 | body`, at most
/// `max_frame` bytes in all, so it has at most `max_frame / 4` of them; each becomes a record
/// `timestamp i64 | len u32 | body`, 8 bytes more than in the frame. So a one-frame chunk of
/// `c` records holds at most `max_frame + 8c` bytes, `c ≤ max_frame / 4`. The bound below
/// counts 12 bytes per record (a record's whole overhead) and adds a margin of 64 KiB.
pub fn max_decoded_len(record_count: Option<u32>, max_frame: usize) -> usize {
    let frame = max_frame.max(MAX_CHUNK_RAW);
    let most_records = frame / 4 + 1;
    let records = record_count.map_or(most_records, |c| (c as usize).min(most_records));
    frame
        .saturating_add(records.saturating_mul(12))
        .saturating_add(DECODE_MARGIN)
}

/// Checks that `payload` is zstd frames with content checksums, decompresses them
/// (verifying the checksums) and returns the records, refusing with [`ChunkError::TooLarge`]
/// to produce more than `limit` bytes (see [`max_decoded_len`]). The wire crate's decoder,
/// shared with clients ([`crate::wire::payload`]).
pub fn decode_payload(payload: &[u8], limit: usize) -> Result<Vec<u8>, ChunkError> {
    Ok(crate::wire::payload::decode(payload, limit)?)
}

/// The records of `chunk` from offset `from` on, as a chunk of their own: decompressed,
/// sliced and compressed again (one zstd frame with a content checksum, at `level`). For a
/// poll that resumes inside a chunk — after a commit of explicit positions — so the consumer
/// is not given the records before its position. `from` must be inside the chunk.
pub fn trim_front(
    chunk: &StoredChunk,
    from: i64,
    level: i32,
    max_frame: usize,
) -> Result<StoredChunk, ChunkError> {
    let skip = from
        .checked_sub(chunk.start_offset)
        .and_then(|s| u32::try_from(s).ok())
        .filter(|&s| s > 0 && s < chunk.record_count)
        .ok_or(ChunkError::RecordCount {
            declared: chunk.record_count,
            actual: 0,
        })?;
    let raw = decode_payload(
        &chunk.payload,
        max_decoded_len(Some(chunk.record_count), max_frame),
    )?;
    let mut records = RecordIter::new(&raw);
    for _ in 0..skip {
        match records.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ChunkError::BadRecord(e.to_string())),
            None => {
                return Err(ChunkError::RecordCount {
                    declared: chunk.record_count,
                    actual: skip,
                })
            }
        }
    }
    let rest = records.remaining();
    let mut enc = zstd::stream::Encoder::new(Vec::with_capacity(rest.len() / 2 + 64), level)
        .map_err(|e| ChunkError::Zstd(e.to_string()))?;
    let written = enc
        .include_checksum(true)
        .and_then(|_| enc.set_pledged_src_size(Some(rest.len() as u64)))
        .and_then(|_| std::io::Write::write_all(&mut enc, rest));
    written.map_err(|e| ChunkError::Zstd(e.to_string()))?;
    let payload = enc.finish().map_err(|e| ChunkError::Zstd(e.to_string()))?;
    Ok(StoredChunk {
        start_offset: from,
        record_count: chunk.record_count - skip,
        payload: bytes::Bytes::from(payload),
    })
}

/// [`decode_payload`] with the bound of a chunk of unknown record count written under any
/// configuration ([`MAX_FRAME_LIMIT`]). For tools and tests.
pub fn decode_chunk_records(payload: &[u8]) -> Result<Vec<u8>, ChunkError> {
    decode_payload(payload, max_decoded_len(None, MAX_FRAME_LIMIT))
}

/// Fully verifies a chunk's payload against its header: decompresses it (checksum verified)
/// and checks that it holds exactly `record_count` well-formed records. Returns the newest
/// record timestamp. `max_frame` is the broker's largest frame: a payload that decompresses to
/// more than [`max_decoded_len`] allows is refused with [`ChunkError::TooLarge`].
pub fn verify_chunk(
    header: &ChunkHeader,
    payload: &[u8],
    max_frame: usize,
) -> Result<i64, ChunkError> {
    let limit = max_decoded_len(Some(header.record_count), max_frame);
    let records = decode_payload(payload, limit)?;
    let mut n = 0u32;
    let mut newest = i64::MIN;
    for r in RecordIter::new(&records) {
        let r = r.map_err(|e| ChunkError::BadRecord(e.to_string()))?;
        newest = newest.max(r.timestamp_us);
        n += 1;
    }
    if n != header.record_count {
        return Err(ChunkError::RecordCount {
            declared: header.record_count,
            actual: n,
        });
    }
    Ok(newest)
}

#[cfg(test)]
#[path = "chunk_tests.rs"]
mod tests;
