//! The plain-HTTP routes of the HTTP port, shared by HTTP/1.1 and HTTP/2: a small table of
//! (method, path pattern, handler). A pattern is matched segment by segment; `{name}` matches
//! any one segment and is captured into [`HttpRequest::params`]. A path that matches no route
//! is 404; a path that matches only with another method is 405 with `Allow`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::shard::Shard;
use crate::stats::{Protocol, RequestType};

use super::message::{Body, HttpRequest, HttpResponse};

type HandlerFuture = Pin<Box<dyn Future<Output = HttpResponse>>>;

/// A route's handler.
pub type Handler = fn(Rc<Shard>, HttpRequest) -> HandlerFuture;

pub struct Route {
    pub method: Method,
    pub pattern: &'static str,
    pub handler: Handler,
    /// What the request counts as in the metrics (`requests_total{protocol="http"}`; a
    /// produce is also timed in `ack_latency_seconds`, a poll in `poll_latency_seconds`).
    pub counts_as: Option<RequestType>,
}

/// Every plain-HTTP route of the port. The consumer and REST-produce endpoints go here.
pub fn routes() -> &'static [Route] {
    static ROUTES: std::sync::LazyLock<Vec<Route>> = std::sync::LazyLock::new(|| {
        use super::rest::{cluster, consumer, groups, produce, time_offset, topics};
        let route = |method, pattern, handler| Route {
            method,
            pattern,
            handler,
            counts_as: None,
        };
        let counted = |t: RequestType, method, pattern, handler| Route {
            counts_as: Some(t),
            ..route(method, pattern, handler)
        };
        vec![
            route(Method::GET, "/status", |shard, _req| {
                Box::pin(async move { status(&shard) })
            }),
            route(Method::GET, "/metrics", |shard, req| {
                Box::pin(async move { metrics(&shard, &req).await })
            }),
            // Cluster mode's brokers, topics and leaders (404 on a single host).
            route(Method::GET, "/v1/cluster", |_shard, _req| {
                Box::pin(async move { cluster::get() })
            }),
            // PolarStreams' consumer API (it also takes POST for register, for old clients).
            counted(
                RequestType::Register,
                Method::PUT,
                "/v1/consumer/register",
                |shard, req| Box::pin(consumer::register(shard, req)),
            ),
            counted(
                RequestType::Register,
                Method::POST,
                "/v1/consumer/register",
                |shard, req| Box::pin(consumer::register(shard, req)),
            ),
            counted(
                RequestType::Poll,
                Method::POST,
                "/v1/consumer/poll",
                |shard, req| Box::pin(consumer::poll(shard, req)),
            ),
            counted(
                RequestType::Commit,
                Method::POST,
                "/v1/consumer/commit",
                |shard, req| Box::pin(consumer::commit(shard, req)),
            ),
            counted(
                RequestType::Goodbye,
                Method::POST,
                "/v1/consumer/goodbye",
                |shard, req| Box::pin(consumer::goodbye(shard, req)),
            ),
            // PolarStreams' producer API.
            counted(
                RequestType::Produce,
                Method::POST,
                "/v1/topic/{topic}/messages",
                |shard, req| Box::pin(produce::produce(shard, req)),
            ),
            // The admin API's topics: list, describe, create explicitly (the only way when
            // --auto-create-topics is off), and delete.
            route(Method::GET, "/v1/topics", |shard, req| {
                Box::pin(topics::list(shard, req))
            }),
            route(Method::GET, "/v1/topics/{name}", |shard, req| {
                Box::pin(topics::describe(shard, req))
            }),
            route(
                Method::GET,
                "/v1/topics/{name}/partitions/{p}/offset",
                |shard, req| Box::pin(time_offset::offset_for_time(shard, req)),
            ),
            route(Method::POST, "/v1/topics/{name}", |shard, req| {
                Box::pin(topics::create(shard, req))
            }),
            route(Method::DELETE, "/v1/topics/{name}", |shard, req| {
                Box::pin(topics::delete(shard, req))
            }),
            // The admin API's groups: list, and describe with lag.
            route(Method::GET, "/v1/groups", |shard, req| {
                Box::pin(groups::list(shard, req))
            }),
            route(Method::GET, "/v1/groups/{group}", |shard, req| {
                Box::pin(groups::describe(shard, req))
            }),
            route(Method::POST, "/v1/groups/{group}/reset", |shard, req| {
                Box::pin(groups::reset(shard, req))
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

/// `GET /metrics`: every shard's metrics in the Prometheus text format, or in the OpenMetrics
/// text format when the scraper's `Accept` asks for `application/openmetrics-text`
/// (docs/metrics.md).
async fn metrics(shard: &Rc<Shard>, req: &HttpRequest) -> HttpResponse {
    let openmetrics = req
        .headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let snapshot = crate::metrics::gather_snapshot(shard).await;
    let (content_type, text) = if openmetrics {
        (
            crate::metrics::OPENMETRICS_CONTENT_TYPE,
            crate::metrics::encode_openmetrics(snapshot),
        )
    } else {
        (
            crate::metrics::CONTENT_TYPE,
            crate::metrics::encode(snapshot),
        )
    };
    HttpResponse {
        status: StatusCode::OK,
        content_type,
        headers: Vec::new(),
        body: Body::Full(Bytes::from(text)),
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
            let Some(t) = r.counts_as else {
                return (r.handler)(shard, req).await;
            };
            let metrics = shard.metrics.clone();
            metrics.request(Protocol::Http, t);
            let started = Instant::now();
            let response = (r.handler)(shard, req).await;
            match t {
                RequestType::Produce => metrics.ack.record(started.elapsed()),
                RequestType::Poll => metrics.poll.record(started.elapsed()),
                _ => {}
            }
            return response;
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
