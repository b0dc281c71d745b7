//! Storage: one append-only, chunked, compressed log per partition, on O_DIRECT files.
//!
//! # Files
//!
//! A partition's directory (given by the caller, e.g. `{data}/{topic}/{gen}_{token}_{range}/`)
//! holds its segments. A segment is named by the offset of its first record, zero-padded to 20
//! digits: `00000000000000000000.log`, with an index beside it, `00000000000000000000.index`.
//! Offsets are per partition, dense, from 0.
//!
//! # Chunks (PolarStreams' format)
//!
//! A segment file is a sequence of chunks, each starting at a multiple of
//! [`chunk::ALIGNMENT`] (4096 bytes, fixed; the file's O_DIRECT alignment must divide it):
//!
//! ```text
//! flags u8 | length u32 | start offset i64 | record count u32 | head crc u32    21 bytes, big-endian
//! payload: `length` bytes, ONE zstd frame with a content checksum, decompressing to
//!          record count × (timestamp μs i64 | length u32 | body)
//! padding: 0x80 bytes up to the next multiple of 4096
//! ```
//!
//! The head CRC is CRC-32 (IEEE) of the first 17 header bytes. A chunk's flags byte is 0; a
//! padding byte is 0x80 (the "alignment" flag), so a reader at an aligned position that sees
//! 0x80 as a flags byte is looking at padding. Record i of a chunk has offset `start + i`. A
//! chunk holds one or more whole producer frames (group commit): a frame is never split.
//! The payload is exactly what a consumer poll item carries.
//!
//! Decompression is bounded ([`chunk::decode_payload`], [`chunk::max_decoded_len`]): a payload
//! that would decompress to more than a chunk the broker wrote can hold is corrupt
//! ([`ChunkError::TooLarge`]), refused without producing the output first.
//!
//! # Index
//!
//! Fixed 16-byte entries `offset i64 | file position u64` (big-endian), one per chunk, in
//! file order. It is written with asynchronous buffered writes ([`fs::BufferedFile`]), a few
//! entries at a time (taken under the log's borrow, written after it) and when a segment is
//! sealed or the log closed, and never fsynced: it is a cache that recovery checks and
//! rebuilds from the segment. A failed index write is only logged.
//!
//! # Appends and durability
//!
//! One writer appends: a batch becomes one chunk, compressed straight into an aligned buffer
//! and written at the segment's end with one O_DIRECT write, then `fdatasync`ed
//! ([`Durability::Fsync`]); only then do readers see it and is it acknowledged. An append is
//! two halves, [`PartitionLog::encode`] (compress and number) and [`PartitionLog::write_chunk`],
//! so the writer can compress the next chunk while the previous one is written. A chunk write
//! is itself three steps (`in_flight.rs`): placed, written (several may be in flight at once)
//! and finished in order, which publishes it only once its own write is durable; a failure
//! refuses it and every later chunk. The log rolls
//! to a new segment (named by the next offset; the directory is fsynced) before a write that
//! would take the active segment past `segment_size`; a chunk bigger than a segment goes
//! alone into a fresh one. The sealed segment is fdatasynced and its index written.
//! Opening a log creates its directory if it is missing and fsyncs the parent of each
//! directory it created, so the directory's name is as durable as the segments in it (a
//! directory's fsync covers its entries, not its own name).
//!
//! A write error, a short write or an fdatasync error is never retried: the chunk is not
//! acknowledged, the log becomes *failed* with the reason, and every later append returns
//! [`StorageError::Failed`]. (After a failed fdatasync the kernel may have dropped the dirty
//! state, so a retry that succeeds proves nothing.) The failed chunk is cut off its segment,
//! so a refused chunk does not reappear whole at recovery. Reads of what was acknowledged go
//! on. Reopening the log runs recovery, which decides what of the failed chunk is on disk if
//! the cut failed too.
//!
//! # Recovery (at open)
//!
//! Segments are taken in offset order. A chunk is *good* when its head CRC checks, its flags
//! are 0, it has at least one record, its payload lies inside the file, and its start offset
//! is the one expected (the segment's base for the first, then the previous chunk's end:
//! offsets are dense). In the **last** segment every chunk is also decompressed, which
//! verifies its zstd content checksum and that it holds exactly its record count; the walk
//! starts at position 0. A **closed** segment was made durable before the log moved on, so a
//! head-CRC walk is enough: it trusts the longest plausible prefix of its index (entries at
//! increasing, aligned positions, inside the file, the first at the base offset) up to the
//! last entry whose chunk header checks, and walks on from there. A payload flipped inside a
//! closed segment is therefore not found by recovery; consumers detect it by the zstd
//! checksum.
//!
//! When the walk meets a bad chunk it scans forward, at aligned positions, skipping padding,
//! for a good chunk with a larger start offset (fully verified in the last segment):
//!
//! - found: *corruption in the middle*. The bad bytes and the offsets between are a hole:
//!   logged, counted in [`RecoveryReport::corrupt_chunks`], never served; the walk goes on from
//!   the chunk found. A reader asking for an offset in a hole gets the next chunk after it.
//! - not found, in the last segment: a *torn tail* (an interrupted last write). The file is
//!   truncated right after the last good chunk and fsynced, so exactly the complete chunks
//!   remain and appends go on from there ([`RecoveryReport::torn_bytes_cut`]).
//! - not found, in a closed segment: the segment is served up to its last good chunk and
//!   the rest counted as corrupt; the file is left as it is.
//!
//! A chunk whose header and payload are whole but whose padding was cut (the file ends inside
//! it) is complete: it was written by one write, so only its padding can be missing, and the
//! payload checks. Recovery rewrites its last block with the padding and fsyncs.
//!
//! A log closed gracefully ([`PartitionLog::close_clean`]) leaves a `clean` marker naming where
//! it ended. The next open removes the marker durably before anything else and, when it
//! matches, checks the last segment like a closed one (index and head-CRC walk) instead of
//! decompressing it ([`RecoveryReport::clean_shutdown`]); a crash leaves no marker, so the last
//! segment then gets the full check.
//!
//! An index that differs from what the walk found (missing, short, garbage) is rewritten and
//! counted in [`RecoveryReport::index_rebuilt`].
//!
//! # Reads
//!
//! [`PartitionLog::read`] locates the chunk holding an offset through the in-memory index,
//! reads the chunks after it in one O_DIRECT read per segment up to a byte budget, checks each
//! head CRC again (a chunk that fails is skipped, logged and counted), and returns the
//! payloads as stored, without decompressing them.
//!
//! # Retention
//!
//! [`PartitionLog::enforce_retention`] deletes whole closed segments, oldest first, by age
//! (of their last append) and by the total size of the partition. The active segment is never
//! deleted. [`PartitionLog::start_offset`] moves up to the first remaining segment; reads
//! below it fail with [`StorageError::OffsetBeforeStart`].
//!
//! # Modules
//!
//! - [`chunk`]: the chunk header, the reusing zstd [`ChunkEncoder`], payload verification.
//! - [`fs`]: every file and directory operation behind one trait ([`fs::FileSystem`]), the
//!   broker's concrete [`fs::BrokerFs`] and the crash-safe [`fs::replace_file`]; the real
//!   implementation is `crate::rt::fs::RealFs`, the unit tests' fault injector
//!   `testing::FaultyFs`.
//! - [`sim`]: the power-loss simulator, an in-memory [`fs::FileSystem`] that can say what a
//!   power cut after any operation leaves (`tests/power_loss.rs` cuts a real shard's run).
//! - `log`, `append`, `in_flight`, `read`, `retention`: [`PartitionLog`]; `segment`, [`index`], `recovery`:
//!   its parts.

mod append;
pub mod chunk;
mod clean;
mod error;
pub mod fs;
mod in_flight;
pub mod index;
mod log;
mod read;
mod recovery;
mod retention;
mod segment;
pub mod sim;
mod tail;
#[cfg(test)]
pub(crate) mod testing;
pub mod time_index;
mod time_lookup;
mod time_recovery;
mod timestamps;

pub use append::{AppendInfo, EncodedChunk, LogChunk};
pub use chunk::StoredChunk;
pub use chunk::{ChunkEncoder, ChunkError, ChunkHeader, Part, RecordBatch, RecordBuf};
pub use error::StorageError;
pub use in_flight::{PlacedChunk, WrittenChunk};
pub use log::{LogConfig, PartitionLog};
pub use recovery::RecoveryReport;
pub use retention::{retention_due, RetentionReport};
pub use segment::Durability;
pub use segment::{index_file_name, log_file_name};
pub use tail::TailBudget;
pub use time_index::time_index_file_name;
