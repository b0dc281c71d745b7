//! The plain-HTTP routes of the HTTP port, shared by HTTP/1.1 and HTTP/2: a small table of
//! (method, path pattern, handler). A pattern is matched segment by segment; `{name}` matches
//! any one segment and is captured into [`HttpRequest::params`]. A path that matches no route
//! is 404; a path that matches only with another method is 405 with `Allow`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::shard::Shard;

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

type HandlerFuture = Pin<Box<dyn Future<Output = HttpResponse>>>;

/// A route's handler.
pub type Handler = fn(Rc<Shard>, HttpRequest) -> HandlerFuture;

pub struct Route {
    pub method: Method,
    pub pattern: &'static str,
    pub handler: Handler,
}

/// Every plain-HTTP route of the port. The consumer and REST-produce endpoints go here.
pub fn routes() -> &'static [Route] {
    static ROUTES: std::sync::LazyLock<Vec<Route>> = std::sync::LazyLock::new(|| {
        use super::rest::{consumer, produce};
        let route = |method, pattern, handler| Route {
            method,
            pattern,
            handler,
        };
        vec![
            route(Method::GET, "/status", |shard, _req| {
                Box::pin(async move { status(&shard) })
            }),
            route(Method::GET, "/metrics", |shard, _req| {
                Box::pin(async move { metrics(&shard).await })
            }),
            // PolarStreams' consumer API (it also takes POST for register, for old clients).
            route(Method::PUT, "/v1/consumer/register", |shard, req| {
                Box::pin(consumer::register(shard, req))
            }),
            route(Method::POST, "/v1/consumer/register", |shard, req| {
                Box::pin(consumer::register(shard, req))
            }),
            route(Method::POST, "/v1/consumer/poll", |shard, req| {
                Box::pin(consumer::poll(shard, req))
            }),
            route(Method::POST, "/v1/consumer/commit", |shard, req| {
                Box::pin(consumer::commit(shard, req))
            }),
            route(Method::POST, "/v1/consumer/goodbye", |shard, req| {
                Box::pin(consumer::goodbye(shard, req))
            }),
            // PolarStreams' producer API.
            route(Method::POST, "/v1/topic/{topic}/messages", |shard, req| {
                Box::pin(produce::produce(shard, req))
            }),
        ]
    });
    &ROUTES
}

/// `GET /status`: 200 with the shard count while the broker serves. (A shard accepts
/// connections only once its partitions are open; a draining broker would answer 503.)
fn status(shard: &Shard) -> HttpResponse {
    HttpResponse::json(
        StatusCode::OK,
        format!("{{\"status\":\"ok\",\"shards\":{}}}", shard.shards),
    )
}

/// `GET /metrics`: every shard's metrics in the Prometheus text format (docs/metrics.md).
async fn metrics(shard: &Shard) -> HttpResponse {
    HttpResponse {
        status: StatusCode::OK,
        content_type: crate::metrics::CONTENT_TYPE,
        headers: Vec::new(),
        body: Body::Full(Bytes::from(crate::metrics::gather(shard).await)),
    }
}

/// Matches `path` against `pattern`, returning the captured `{name}` segments.
fn matches(pattern: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let mut params = Vec::new();
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') && !s.is_empty() => {
                params.push((&p[1..p.len() - 1], s.to_string()));
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// Answers a request from the table.
pub async fn route(shard: Rc<Shard>, mut req: HttpRequest) -> HttpResponse {
    let mut allowed: Vec<&str> = Vec::new();
    for r in routes() {
        let Some(params) = matches(r.pattern, &req.path) else {
            continue;
        };
        if r.method == req.method {
            req.params = params;
            return (r.handler)(shard, req).await;
        }
        allowed.push(r.method.as_str());
    }
    if allowed.is_empty() {
        return HttpResponse::error(
            StatusCode::NOT_FOUND,
            &format!("no resource at {}", req.path),
        );
    }
    let mut r = HttpResponse::error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "{} does not accept {}; allowed: {}",
            req.path,
            req.method,
            allowed.join(", ")
        ),
    );
    r.headers.push(("allow", allowed.join(", ")));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(matches("/status", "/status"), Some(vec![]));
        assert_eq!(matches("/status", "/status/"), None);
        assert_eq!(matches("/status", "/"), None);
        assert_eq!(
            matches("/v1/topic/{topic}/messages", "/v1/topic/orders/messages"),
            Some(vec![("topic", "orders".to_string())])
        );
        assert_eq!(
            matches("/v1/topic/{topic}/messages", "/v1/topic//messages"),
            None
        );
    }
}
