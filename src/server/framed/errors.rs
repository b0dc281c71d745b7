//! The framed transport's one error table: the ERROR code each [`ErrorClass`] is answered
//! with. The HTTP and gRPC tables (`server::http::errors`, `server::grpc::status`) map the same
//! classes; `docs/protocol.md` ("Errors") shows the three side by side.

use crate::error::{Classify, ErrorClass};
use crate::wire::ErrorCode;

/// The ERROR code of a class.
pub fn code(class: ErrorClass) -> ErrorCode {
    match class {
        ErrorClass::Invalid => ErrorCode::BadRequest,
        ErrorClass::NotFound => ErrorCode::NotFound,
        ErrorClass::OutOfRange => ErrorCode::OutOfRange,
        ErrorClass::UnknownConsumer => ErrorCode::UnknownConsumer,
        ErrorClass::Unavailable => ErrorCode::Unavailable,
        // The framed protocol has one code for every limit; the message names which.
        ErrorClass::ResourceExhausted | ErrorClass::LimitReached => ErrorCode::ResourceExhausted,
        ErrorClass::Storage => ErrorCode::Storage,
        ErrorClass::Internal => ErrorCode::Server,
    }
}

/// The ERROR code an error is answered with.
pub fn code_of(e: &impl Classify) -> ErrorCode {
    code(e.class())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_get_distinct_codes_that_agree_on_retrying() {
        let mut seen = std::collections::HashSet::new();
        for class in ErrorClass::ALL {
            let c = code(class);
            let shared = class == ErrorClass::LimitReached;
            assert!(
                seen.insert(c as u8) || shared,
                "{class:?} shares code {c:?}"
            );
            assert_eq!(c.is_retryable(), class.is_retryable(), "{class:?}");
            assert!(!c.closes_connection(), "{class:?}");
        }
        assert_eq!(code(ErrorClass::LimitReached) as u8, 10);
    }
}
