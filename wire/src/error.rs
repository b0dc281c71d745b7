//! Wire errors and the ERROR frame body (`code u8 | UTF-8 message`).
//!
//! Codes 0–2 are PolarStreams' own; shardlog adds 3 and up. A client can tell from the code
//! whether the connection is still usable ([`ErrorCode::closes_connection`]) and whether
//! retrying the same request may succeed ([`ErrorCode::is_retryable`]).

use std::borrow::Cow;

use thiserror::Error;

use super::reader::Reader;
use super::table::code_table;
use super::writer::Put;

code_table! {
    /// The code carried in the first byte of an ERROR body: one row each,
    /// `Variant = number, "name";` (the name is the metrics label and what tools print).
    pub enum ErrorCode {
        /// An unexpected failure inside the broker (PolarStreams `serverError`).
        Server = 0, "server";
        /// PolarStreams' `routingError`; no longer sent (a shard that cannot be reached is
        /// `Unavailable`), kept so the number is never reused.
        Routing = 1, "routing";
        /// Kept for PolarStreams compatibility; shardlog is single-host and never sends it.
        LeaderNotFound = 2, "leader-not-found";
        /// The byte stream is broken (bad head CRC, unsupported version, oversized body). The
        /// broker closes the connection after sending it.
        Protocol = 3, "protocol";
        /// A well-framed request that is invalid (unknown opcode, bad body, PRODUCE before
        /// STARTUP, invalid topic). The connection stays open.
        BadRequest = 4, "bad-request";
        /// The partition has stopped accepting writes after a storage failure (e.g. fsync
        /// error). Nothing in the failed request was acknowledged. Not retryable on this broker
        /// run.
        Storage = 5, "storage";
        /// The broker cannot serve the request now (shutting down, a shard unreachable, the
        /// connection limit). Retrying later may succeed.
        Unavailable = 6, "unavailable";
        /// A consumer operation named a consumer id that is not registered (never registered,
        /// said goodbye, or was dropped after a silence longer than `--consumer-timeout`). The
        /// client should REGISTER again.
        UnknownConsumer = 7, "unknown-consumer";
        /// The request names something that does not exist (e.g. a partition index past the
        /// topic's partition count).
        NotFound = 8, "not-found";
        /// The requested offset is outside what the partition holds (removed by retention).
        OutOfRange = 9, "out-of-range";
        /// A limit was reached (e.g. the data disk is nearly full); nothing of the request was
        /// stored. Retrying later may succeed.
        ResourceExhausted = 10, "resource-exhausted";
    }
}

impl ErrorCode {
    /// The number of codes (they run from 0 without gaps).
    pub const COUNT: usize = ErrorCode::ALL.len();

    pub fn from_u8(code: u8) -> Option<ErrorCode> {
        ErrorCode::from_code(code)
    }

    pub fn closes_connection(self) -> bool {
        self == ErrorCode::Protocol
    }

    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Unavailable | ErrorCode::Routing | ErrorCode::ResourceExhausted
        )
    }
}

/// Everything that can be wrong with bytes received from a peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("head crc mismatch: header says {expected:#010x}, computed {actual:#010x}")]
    HeadCrcMismatch { expected: u32, actual: u32 },
    #[error("unsupported protocol version {0} (this broker speaks version 1)")]
    UnsupportedVersion(u8),
    #[error("frame body of {len} bytes exceeds the maximum frame size of {max} bytes")]
    BodyTooLarge { len: u32, max: u32 },
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    #[error("body too short: {0}")]
    Truncated(&'static str),
    #[error("message {index} declares {len} bytes but only {available} remain in the body")]
    MessageOverrun {
        index: usize,
        len: u32,
        available: usize,
    },
    #[error("produce frame carries no messages")]
    NoMessages,
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("gRPC message of {len} bytes exceeds the maximum message size of {max} bytes")]
    GrpcMessageTooLarge { len: u32, max: u32 },
    #[error("gRPC message prefix has compressed flag {0}; only 0 and 1 are defined")]
    GrpcBadFlag(u8),
}

impl WireError {
    /// The ERROR code this error is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            WireError::HeadCrcMismatch { .. }
            | WireError::UnsupportedVersion(_)
            | WireError::BodyTooLarge { .. } => ErrorCode::Protocol,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// An ERROR body: `code u8 | UTF-8 message`. The code is kept raw, so that a code this build
/// does not know can still be shown; the message is decoded lossily (it is for display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    pub code: u8,
    pub message: Cow<'a, str>,
}

impl<'a> ErrorBody<'a> {
    pub fn new(code: ErrorCode, message: &'a str) -> ErrorBody<'a> {
        ErrorBody {
            code: code as u8,
            message: Cow::Borrowed(message),
        }
    }

    /// The code, if this build knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    pub fn decode(body: &'a [u8]) -> Result<ErrorBody<'a>, WireError> {
        let mut r = Reader::new(body);
        let code = r.u8("error body needs a code byte")?;
        let message = String::from_utf8_lossy(r.rest_bytes());
        Ok(ErrorBody { code, message })
    }

    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.put_u8(self.code);
        dst.put_slice(self.message.as_bytes());
    }
}

/// Encodes an ERROR body: `code u8 | UTF-8 message`.
pub fn encode_error_body(code: ErrorCode, message: &str, dst: &mut Vec<u8>) {
    ErrorBody::new(code, message).encode(dst);
}

/// Parses an ERROR body into its raw code and message (lossy UTF-8, for display).
pub fn parse_error_body(body: &[u8]) -> Result<(u8, String), WireError> {
    let b = ErrorBody::decode(body)?;
    Ok((b.code, b.message.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        crate::table::assert_unique(ErrorCode::TABLE, |c| c as u8);
        for c in 0..ErrorCode::COUNT as u8 {
            assert_eq!(ErrorCode::from_u8(c).unwrap() as u8, c);
        }
        // The codes are dense from 0: the next free number is unknown.
        assert_eq!(ErrorCode::from_u8(ErrorCode::ALL.len() as u8), None);
        assert_eq!(ErrorCode::from_u8(255), None);
    }

    #[test]
    fn error_body_round_trip() {
        let mut buf = Vec::new();
        encode_error_body(ErrorCode::BadRequest, "nope", &mut buf);
        assert_eq!(buf, b"\x04nope");
        assert_eq!(parse_error_body(&buf).unwrap(), (4, "nope".to_string()));
        assert!(parse_error_body(&[]).is_err());
        let b = ErrorBody::decode(&buf).unwrap();
        assert_eq!(b, ErrorBody::new(ErrorCode::BadRequest, "nope"));
        assert_eq!(b.error_code(), Some(ErrorCode::BadRequest));
        let mut again = Vec::new();
        b.encode(&mut again);
        assert_eq!(again, buf);
        assert_eq!(ErrorBody::decode(b"\x63").unwrap().error_code(), None);
    }

    #[test]
    fn framing_errors_close_the_connection() {
        assert!(WireError::UnsupportedVersion(9).code().closes_connection());
        assert!(!WireError::NoMessages.code().closes_connection());
    }
}
