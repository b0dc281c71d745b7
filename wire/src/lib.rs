//! Pure codecs for everything shardlog puts on a socket. No I/O here: every parser takes a byte
//! slice and answers `Ok(None)` when the input is incomplete, a [`WireError`] when it is bad.
//! The same code serves the broker, the perf harness and the tests.
//!
//! - [`header`]: the 13-byte framed-protocol header (version, flags, stream id, opcode, length, CRC).
//! - [`frame`]: whole frames (header + body), opcodes and flags, and encoders for clients.
//! - [`produce`]: the PRODUCE body (optional timestamp, partition key, length-prefixed messages).
//! - [`produce_compressed`]: the compressed PRODUCE body (flag `0x08`: records already zstd frames).
//! - [`startup`]: the STARTUP body (the connection's topic) and topic-name rules.
//! - [`error`]: ERROR bodies and their codes.
//! - [`record`]: the record layout inside a chunk (`timestamp μs | length | body`).
//! - [`grpc`]: the gRPC length-prefixed message (`compressed u8 | length u32 | message`).
//! - [`poll`]: the consumer poll response (items of compressed chunk payloads).
//! - [`payload`]: a chunk payload's bounded decompression (checksummed zstd frames).
//! - [`commit`]: the COMMIT body, with optional explicit positions.
//! - [`fetch`]: the FETCH body (one partition from an offset, no group).
//! - [`consumer`]: bodies of the consumer operations (REGISTER, POLL, COMMIT, GOODBYE).
//! - [`group`]: the group operations a broker passes to a group's coordinator (cluster mode).
//! - [`reset`]: where a consumer group's offsets are reset to (`earliest`, `latest`, an offset, `time:T`).
//! - [`time`]: times as requests and tools write them (RFC 3339 or Unix milliseconds) → μs.
//! - [`base64`]: the encoding of record bodies that are not UTF-8 where JSON carries them.
//! - [`reader`]: the one bounds-checked cursor every decoder reads with (typed big-endian getters).
//! - [`writer`]: [`writer::Put`], its counterpart for encoders (`put_u32` writes what `u32` reads).
//! - [`ring`]: Murmur3 tokens and topic layouts: key → token → partition, as the broker routes.
//! - [`table`]: the macro that declares [`OpCode`] and [`ErrorCode`] from one table each.
//!
//! Naming: a frame or body type `T` has `T::decode(&[u8]) -> Result<T, WireError>` for a whole
//! body (it never answers "incomplete": the frame delivered all of it) and
//! `T::encode(&self, &mut Vec<u8>)`; an element read in sequence (a record, a poll item) has
//! `decode_from(&mut Reader)`. What reads a byte stream that may stop anywhere (a frame, a
//! header, a gRPC message) is `parse(&[u8]) -> Result<Option<..>, WireError>`: `Ok(None)` until
//! the whole thing is there. The older free functions (`parse_startup`, `encode_register`, …)
//! are thin wrappers over these.

pub mod base64;
pub mod commit;
pub mod consumer;
pub mod error;
pub mod fetch;
pub mod forward;
pub mod frame;
pub mod group;
pub mod grpc;
pub mod header;
pub mod payload;
pub mod poll;
pub mod produce;
pub mod produce_compressed;
pub mod reader;
pub mod record;
pub mod reset;
pub mod ring;
pub mod startup;
pub mod table;
pub mod time;
pub mod writer;

pub use error::{ErrorCode, WireError};
pub use frame::{Flags, Frame, OpCode};
pub use header::FrameHeader;
