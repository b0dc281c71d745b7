//! Clients of the broker's protocols, on the broker's own codecs (`shardlog_wire`) so the
//! harness and the broker cannot disagree about a byte.
//!
//! - [`framed`]: the framed protocol through the client library (`shardlog-client`'s
//!   pipelined connection layer, `mux`): producer connections.
//! - [`session`]: one consumer's conversation (REGISTER/POLL/COMMIT/GOODBYE) over the framed
//!   protocol (the same layer) or the HTTP consumer API; [`http`]: the HTTP/1.1 keep-alive
//!   client under it.
//! - [`poll`]: poll responses decompressed and walked record by record.
//! - [`grpc`]: tonic on a pinned tokio runtime, for `atomix.log.LogService`.
//! - [`error`]: the one error type of these clients.

pub mod error;
pub mod framed;
pub mod grpc;
pub mod http;
pub mod poll;
pub mod session;
