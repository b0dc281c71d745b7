//! Requests and responses as the HTTP port's handlers see them, whichever HTTP version
//! carried them: plain data, no I/O.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

/// A request as the handlers see it, whichever HTTP version carried it.
#[derive(Debug)]
pub struct HttpRequest {
    pub method: Method,
    pub path: String,
    /// The query string (after `?`), undecoded.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Values of the route's `{name}` segments, in order.
    pub params: Vec<(&'static str, String)>,
}

/// A response body: one buffer, or a list of slices written in order without being joined
/// (a binary poll response: item headers and stored chunk payloads).
#[derive(Debug, Clone)]
pub enum Body {
    Full(Bytes),
    Parts { parts: Vec<Bytes>, len: usize },
}

impl Body {
    pub fn len(&self) -> usize {
        match self {
            Body::Full(b) => b.len(),
            Body::Parts { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body's slices, in order (empty slices left out).
    pub fn into_parts(self) -> Vec<Bytes> {
        match self {
            Body::Full(b) if b.is_empty() => Vec::new(),
            Body::Full(b) => vec![b],
            Body::Parts { parts, .. } => parts.into_iter().filter(|p| !p.is_empty()).collect(),
        }
    }

    /// The body as one buffer (copies a multi-part body; for tests).
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Body::Full(b) => b.to_vec(),
            Body::Parts { parts, .. } => parts.iter().flat_map(|p| p.iter().copied()).collect(),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::Full(b)
    }
}

/// A complete response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub content_type: &'static str,
    /// Extra headers (e.g. `Allow`).
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl HttpResponse {
    pub fn json(status: StatusCode, body: String) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Bytes::from(body).into(),
        }
    }

    /// A short plain-text answer (`OK`), as PolarStreams gives.
    pub fn text(status: StatusCode, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Bytes::from(body.to_string()).into(),
        }
    }

    /// An empty answer (204).
    pub fn empty(status: StatusCode) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Bytes::new().into(),
        }
    }

    /// A plain-text error: the status line's reason and a sentence saying what was wrong.
    pub fn error(status: StatusCode, message: &str) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Bytes::from(format!(
                "{} {}: {message}\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ))
            .into(),
        }
    }
}
