//! Wire errors and the ERROR frame body (`code u8 | UTF-8 message`).
//!
//! Codes 0–2 are PolarStreams' own; shardlog adds 3 and up. A client can tell from the code
//! whether the connection is still usable ([`ErrorCode::closes_connection`]) and whether
//! retrying the same request may succeed ([`ErrorCode::is_retryable`]).

use thiserror::Error;

/// The code carried in the first byte of an ERROR body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// An unexpected failure inside the broker (PolarStreams `serverError`).
    Server = 0,
    /// The request could not be routed to a partition (PolarStreams `routingError`).
    Routing = 1,
    /// Kept for PolarStreams compatibility; shardlog is single-host and never sends it.
    LeaderNotFound = 2,
    /// The byte stream is broken (bad head CRC, unsupported version, oversized body). The
    /// broker closes the connection after sending it.
    Protocol = 3,
    /// A well-framed request that is invalid (unknown opcode, bad body, PRODUCE before STARTUP,
    /// invalid topic). The connection stays open.
    BadRequest = 4,
    /// The partition has stopped accepting writes after a storage failure (e.g. fsync error).
    /// Nothing in the failed request was acknowledged. Not retryable on this broker run.
    Storage = 5,
    /// The broker is temporarily unable to accept writes (disk nearly full, shutting down).
    /// Retrying later may succeed.
    Unavailable = 6,
    /// A consumer operation named a consumer id that is not registered (never registered,
    /// said goodbye, or was dropped after a silence longer than `--consumer-timeout`). The
    /// client should REGISTER again.
    UnknownConsumer = 7,
    /// The request names something that does not exist (e.g. a partition index past the
    /// topic's partition count).
    NotFound = 8,
    /// The requested offset is outside what the partition holds (removed by retention).
    OutOfRange = 9,
    /// A limit was reached (e.g. the data disk is nearly full); nothing of the request was
    /// stored. Retrying later may succeed.
    ResourceExhausted = 10,
}

impl ErrorCode {
    /// The number of codes (they run from 0 without gaps).
    pub const COUNT: usize = 11;
}

impl ErrorCode {
    pub fn from_u8(code: u8) -> Option<ErrorCode> {
        Some(match code {
            0 => ErrorCode::Server,
            1 => ErrorCode::Routing,
            2 => ErrorCode::LeaderNotFound,
            3 => ErrorCode::Protocol,
            4 => ErrorCode::BadRequest,
            5 => ErrorCode::Storage,
            6 => ErrorCode::Unavailable,
            7 => ErrorCode::UnknownConsumer,
            8 => ErrorCode::NotFound,
            9 => ErrorCode::OutOfRange,
            10 => ErrorCode::ResourceExhausted,
            _ => return None,
        })
    }

    /// A short readable name (for logs and tools).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Server => "server",
            ErrorCode::Routing => "routing",
            ErrorCode::LeaderNotFound => "leader-not-found",
            ErrorCode::Protocol => "protocol",
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::Storage => "storage",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::UnknownConsumer => "unknown-consumer",
            ErrorCode::NotFound => "not-found",
            ErrorCode::OutOfRange => "out-of-range",
            ErrorCode::ResourceExhausted => "resource-exhausted",
        }
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

/// Encodes an ERROR body: `code u8 | UTF-8 message`.
pub fn encode_error_body(code: ErrorCode, message: &str, dst: &mut Vec<u8>) {
    dst.push(code as u8);
    dst.extend_from_slice(message.as_bytes());
}

/// Parses an ERROR body into its raw code and message (lossy UTF-8, for display).
pub fn parse_error_body(body: &[u8]) -> Result<(u8, String), WireError> {
    let (&code, msg) = body
        .split_first()
        .ok_or(WireError::Truncated("error body needs a code byte"))?;
    Ok((code, String::from_utf8_lossy(msg).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in 0..ErrorCode::COUNT as u8 {
            assert_eq!(ErrorCode::from_u8(c).unwrap() as u8, c);
        }
        assert_eq!(ErrorCode::from_u8(ErrorCode::COUNT as u8), None);
    }

    #[test]
    fn error_body_round_trip() {
        let mut buf = Vec::new();
        encode_error_body(ErrorCode::BadRequest, "nope", &mut buf);
        assert_eq!(buf, b"\x04nope");
        assert_eq!(parse_error_body(&buf).unwrap(), (4, "nope".to_string()));
        assert!(parse_error_body(&[]).is_err());
    }

    #[test]
    fn framing_errors_close_the_connection() {
        assert!(WireError::UnsupportedVersion(9).code().closes_connection());
        assert!(!WireError::NoMessages.code().closes_connection());
    }
}
