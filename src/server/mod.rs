//! One module per protocol the broker speaks.
//!
//! - [`framed`]: the framed binary TCP protocol for producers (PolarStreams-compatible).
//! - [`http`]: the HTTP port: HTTP/1.1 and HTTP/2 (prior knowledge) on one socket.
//! - [`grpc`]: the gRPC layer and services served over the HTTP port's HTTP/2.
//! - [`listener`], [`conns`], [`balance`]: accepting, limiting and spreading connections.
//! - [`budget`]: the memory budgets for requests still being read.

pub mod balance;
pub mod budget;
pub mod conns;
pub mod errlog;
pub mod framed;
pub mod grpc;
pub mod http;
pub mod listener;
