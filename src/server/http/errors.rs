//! The HTTP port's one error table: the status each [`ErrorClass`] is answered with (REST;
//! gRPC has its own table in `server::grpc::status`). The framed table is
//! `server::framed::errors`; `docs/protocol.md` ("Errors") shows the three side by side.

use http::StatusCode;

use super::message::HttpResponse;
use crate::error::{Classify, ErrorClass};

/// The HTTP status of a class.
pub fn status(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::Invalid => StatusCode::BAD_REQUEST,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::OutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorClass::UnknownConsumer => StatusCode::CONFLICT,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::ResourceExhausted => StatusCode::INSUFFICIENT_STORAGE,
        // The client asked for more than the broker allows (a count, not storage).
        ErrorClass::LimitReached => StatusCode::TOO_MANY_REQUESTS,
        ErrorClass::Storage | ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The plain-text answer to a failure: its class's status and its message, which says for a
/// retryable class that nothing was stored.
pub fn response<E: Classify>(e: &E) -> HttpResponse {
    let class = e.class();
    let message = if class.is_retryable() {
        format!("{e}; nothing was stored, retry later")
    } else {
        e.to_string()
    };
    HttpResponse::error(status(class), &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classes_are_5xx_and_invalid_ones_4xx() {
        for class in ErrorClass::ALL {
            let s = status(class);
            match class {
                // The client's own excess: retryable, but its fault, not the broker's.
                ErrorClass::LimitReached => assert_eq!(s, 429),
                ErrorClass::Unavailable | ErrorClass::ResourceExhausted => {
                    assert!(s.is_server_error(), "{class:?}")
                }
                ErrorClass::Storage | ErrorClass::Internal => assert_eq!(s, 500),
                _ => assert!(s.is_client_error(), "{class:?}"),
            }
        }
    }
}
