//! The one error type of the client. It is `Clone`: one failed batch answers every message in
//! it with the same error.

use std::sync::Arc;
use std::time::Duration;

use shardlog_wire::payload::PayloadError;
use shardlog_wire::{ErrorCode, WireError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The broker could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The connection failed or was closed with requests outstanding: they may or may not have
    /// been applied (a produce may have been stored; retrying is at-least-once).
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// No answer within the request timeout; as with a lost connection, the request may have
    /// been applied.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The broker answered with an ERROR frame.
    #[error("broker refused ({}): {message}", code_name(*.code))]
    Broker { code: u8, message: String },
    /// The broker sent bytes that are not the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] WireError),
    /// A record payload in a poll response could not be decoded.
    #[error("bad payload: {0}")]
    Payload(#[from] PayloadError),
    /// An argument the broker would refuse anyway (a topic name, an empty message list).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The broker's HTTP port answered an admin call with an error status; `message` is the
    /// body's sentence saying what was wrong.
    #[error("broker answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// An HTTP answer that is not what the admin API specifies (not HTTP, no
    /// `Content-Length`, JSON of another shape).
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The producer or consumer was closed.
    #[error("closed")]
    Closed,
}

fn code_name(code: u8) -> String {
    match ErrorCode::from_u8(code) {
        Some(c) => format!("{c:?}"),
        None => format!("code {code}"),
    }
}

impl ClientError {
    /// Whether trying again (later, or on a new connection) may succeed: the broker said so
    /// (unavailable, routing, resource exhausted), or the connection was lost or timed out.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::ConnectionLost(_)
            | ClientError::Timeout(_) => true,
            ClientError::Broker { code, .. } => {
                ErrorCode::from_u8(*code).is_some_and(ErrorCode::is_retryable)
            }
            // The HTTP port's retryable classes: unavailable, insufficient storage, a limit.
            ClientError::Http { status, .. } => matches!(status, 429 | 503 | 507),
            _ => false,
        }
    }

    /// The HTTP status, if the broker's HTTP port refused an admin call.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the broker said the thing named does not exist (HTTP 404, or the framed
    /// NOT_FOUND code): an unknown or deleted topic, an unknown group.
    pub fn is_not_found(&self) -> bool {
        self.http_status() == Some(404) || self.code() == Some(ErrorCode::NotFound)
    }

    /// The broker's error code, if the broker refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => ErrorCode::from_u8(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_follows_the_broker_code() {
        let refused = |c: ErrorCode| ClientError::Broker {
            code: c as u8,
            message: String::new(),
        };
        assert!(refused(ErrorCode::Unavailable).is_retryable());
        assert!(refused(ErrorCode::ResourceExhausted).is_retryable());
        assert!(!refused(ErrorCode::BadRequest).is_retryable());
        assert!(!refused(ErrorCode::Storage).is_retryable());
        assert!(ClientError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!ClientError::Closed.is_retryable());
        assert!(refused(ErrorCode::Unavailable)
            .to_string()
            .contains("Unavailable"));
        let http = |status| ClientError::Http {
            status,
            message: String::new(),
        };
        assert!(http(503).is_retryable());
        assert!(!http(404).is_retryable());
        assert_eq!(http(404).http_status(), Some(404));
    }
}
