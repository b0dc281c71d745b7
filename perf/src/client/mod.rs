//! Clients of the broker's protocols, on the broker's own codecs (`shardlog_wire`) so the
//! harness and the broker cannot disagree about a byte.
//!
//! - [`framed`]: a framed-protocol connection (connect/STARTUP, a frame reader that parses in
//!   place, a vectored writer).
//! - [`produce_frame`]: stream ids that never collide, PRODUCE frames as a prefix plus a slice of
//!   a prebuilt message region.
//! - [`session`]: one consumer's conversation (REGISTER/POLL/COMMIT/GOODBYE) over the framed
//!   protocol or the HTTP consumer API; [`http`]: the HTTP/1.1 keep-alive client under it.
//! - [`poll`]: poll responses decompressed and walked record by record.
//! - [`grpc`]: tonic on a pinned tokio runtime, for `atomix.log.LogService`.

pub mod framed;
pub mod grpc;
pub mod http;
pub mod poll;
pub mod produce_frame;
pub mod session;
