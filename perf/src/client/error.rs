//! Why a consumer session or a connection could not be used: the harness's one error type for
//! its clients. The framed protocol's failures come from `shardlog-client`
//! ([`shardlog_client::ClientError`]); the HTTP consumer transport's own socket work adds
//! `Io`, `Closed` and `Http`.

use std::fmt;
use std::io;

use shardlog_wire::{ErrorCode, WireError};

#[derive(Debug)]
pub enum ClientError {
    /// A socket operation failed; `what` says which.
    Io { what: String, source: io::Error },
    /// The broker sent bytes that are not a valid frame.
    Wire(WireError),
    /// The broker answered with an ERROR frame where that ends the conversation.
    Refused { code: u8, message: String },
    /// The broker answered with something the protocol does not allow here.
    Unexpected(String),
    /// The broker closed the connection.
    Closed { in_flight: usize },
    /// An HTTP answer with a status other than 2xx (HTTP transports), with its body.
    Http { status: u16, message: String },
    /// Any other failure of the framed client (connect, timeout, lost connection).
    Framed(shardlog_client::ClientError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io { what, source } => write!(f, "{what}: {source}"),
            ClientError::Wire(e) => write!(f, "broker sent a malformed frame: {e}"),
            ClientError::Refused { code, message } => {
                write!(
                    f,
                    "broker answered ERROR {} ({code}): {message}",
                    code_name(*code)
                )
            }
            ClientError::Unexpected(what) => write!(f, "unexpected answer from broker: {what}"),
            ClientError::Closed { in_flight } => write!(
                f,
                "broker closed the connection with {in_flight} frame(s) unanswered"
            ),
            ClientError::Http { status, message } => {
                write!(f, "broker answered HTTP {status}: {message}")
            }
            ClientError::Framed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<shardlog_client::ClientError> for ClientError {
    /// The broker's refusals and malformed frames keep the harness's wording (and error
    /// counting by code); the rest is the client's own message.
    fn from(e: shardlog_client::ClientError) -> ClientError {
        match e {
            shardlog_client::ClientError::Broker { code, message } => {
                ClientError::Refused { code, message }
            }
            shardlog_client::ClientError::Protocol(w) => ClientError::Wire(w),
            other => ClientError::Framed(other),
        }
    }
}

/// A readable name for an ERROR code.
pub fn code_name(code: u8) -> &'static str {
    ErrorCode::from_u8(code).map_or("unknown", ErrorCode::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_keep_the_harness_wording() {
        let refused: ClientError = shardlog_client::ClientError::Broker {
            code: 6,
            message: "disk nearly full".into(),
        }
        .into();
        assert_eq!(
            refused.to_string(),
            "broker answered ERROR unavailable (6): disk nearly full"
        );
        let wire: ClientError =
            shardlog_client::ClientError::Protocol(WireError::UnsupportedVersion(9)).into();
        assert!(wire
            .to_string()
            .starts_with("broker sent a malformed frame: "));
        assert_eq!(code_name(200), "unknown");
    }
}
