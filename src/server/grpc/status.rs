//! gRPC status codes and the [`Status`] every call ends with: the gRPC layer's one error type.
//! Errors of the layers below (wire, shard, h2) are mapped to a status here, at the edge.

use http::{HeaderMap, HeaderValue};
use thiserror::Error;

use crate::error::{Classify, ErrorClass};
use crate::shard::{ProduceError, ReadError, TopicError};
use crate::wire::grpc::percent_encode_message;
use crate::wire::WireError;

/// The gRPC status codes (the `grpc-status` trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// How a call ended, when it did not end well (or `Code::Ok`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code:?}: {message}")]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    pub fn ok() -> Status {
        Status::new(Code::Ok, "")
    }

    pub fn invalid_argument(message: impl Into<String>) -> Status {
        Status::new(Code::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> Status {
        Status::new(Code::Internal, message)
    }

    pub fn unimplemented(message: impl Into<String>) -> Status {
        Status::new(Code::Unimplemented, message)
    }

    pub fn cancelled() -> Status {
        Status::new(Code::Cancelled, "the client cancelled the call")
    }

    pub fn deadline_exceeded() -> Status {
        Status::new(
            Code::DeadlineExceeded,
            "the deadline given in grpc-timeout passed",
        )
    }

    /// Adds `grpc-status` and (when there is a message) `grpc-message` to `headers`: the
    /// trailers of a response, or the headers of a trailers-only response.
    pub fn write_to(&self, headers: &mut HeaderMap) {
        headers.insert("grpc-status", HeaderValue::from(self.code as u16));
        if !self.message.is_empty() {
            let mut encoded = String::with_capacity(self.message.len());
            percent_encode_message(&self.message, &mut encoded);
            if let Ok(v) = HeaderValue::from_str(&encoded) {
                headers.insert("grpc-message", v);
            }
        }
    }
}

impl From<WireError> for Status {
    fn from(e: WireError) -> Status {
        let code = match e {
            WireError::GrpcMessageTooLarge { .. } => Code::ResourceExhausted,
            WireError::GrpcBadFlag(_) => Code::Internal,
            _ => Code::InvalidArgument,
        };
        Status::new(code, e.to_string())
    }
}

/// The gRPC transport's one error table: the status code each [`ErrorClass`] is answered
/// with. The framed and HTTP tables (`server::framed::errors`, `server::http::errors`) map the
/// same classes; `docs/protocol.md` ("Errors") shows the three side by side.
pub fn code(class: ErrorClass) -> Code {
    match class {
        ErrorClass::Invalid => Code::InvalidArgument,
        ErrorClass::NotFound => Code::NotFound,
        ErrorClass::OutOfRange => Code::OutOfRange,
        ErrorClass::UnknownConsumer => Code::FailedPrecondition,
        ErrorClass::Unavailable => Code::Unavailable,
        ErrorClass::ResourceExhausted | ErrorClass::LimitReached => Code::ResourceExhausted,
        ErrorClass::Storage | ErrorClass::Internal => Code::Internal,
    }
}

impl From<ProduceError> for Status {
    fn from(e: ProduceError) -> Status {
        Status::new(code(e.class()), e.to_string())
    }
}

impl From<ReadError> for Status {
    fn from(e: ReadError) -> Status {
        Status::new(code(e.class()), e.to_string())
    }
}

impl From<TopicError> for Status {
    fn from(e: TopicError) -> Status {
        Status::new(code(e.class()), e.to_string())
    }
}

impl From<prost::DecodeError> for Status {
    fn from(e: prost::DecodeError) -> Status {
        Status::invalid_argument(format!("cannot decode the request message: {e}"))
    }
}

impl From<h2::Error> for Status {
    fn from(e: h2::Error) -> Status {
        if e.is_reset() || e.is_go_away() || e.is_io() {
            Status::cancelled()
        } else {
            Status::internal(format!("HTTP/2: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_percent_encoded() {
        let mut h = HeaderMap::new();
        Status::new(Code::OutOfRange, "offset 3 < 10%\n").write_to(&mut h);
        assert_eq!(h["grpc-status"], "11");
        assert_eq!(h["grpc-message"], "offset 3 < 10%25%0A");
        let mut h = HeaderMap::new();
        Status::ok().write_to(&mut h);
        assert_eq!(h["grpc-status"], "0");
        assert!(h.get("grpc-message").is_none());
    }

    #[test]
    fn limits_are_resource_exhausted() {
        assert_eq!(code(ErrorClass::LimitReached), Code::ResourceExhausted);
    }

    #[test]
    fn oversized_messages_are_resource_exhausted() {
        let s = Status::from(WireError::GrpcMessageTooLarge { len: 9, max: 8 });
        assert_eq!(s.code, Code::ResourceExhausted);
        assert!(s.message.contains("maximum"));
    }
}
