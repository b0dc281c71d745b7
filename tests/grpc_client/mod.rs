//! An independent gRPC client for the end-to-end tests: tonic's generic client
//! (`tonic::client::Grpc` with the prost codec) on a tokio runtime, with hand-written stubs
//! for the broker's services. Only the message types come from the crate (they are prost code
//! generated from the same .proto files).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use shardlog::proto::health::{HealthCheckRequest, HealthCheckResponse};
use shardlog::proto::log::{ConsumeRequest, LogRecord, ProduceRequest, ProduceResponse};
use shardlog::proto::reflection_v1::server_reflection_request::MessageRequest;
use shardlog::proto::reflection_v1::{ServerReflectionRequest, ServerReflectionResponse};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};
use tonic_prost::ProstCodec;

/// One HTTP/2 connection to the broker's HTTP port.
pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect to the HTTP port")
}

/// A tokio runtime for a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Adds metadata pairs to a request.
pub fn with_metadata<T>(mut req: Request<T>, md: &[(&'static str, &str)]) -> Request<T> {
    for (k, v) in md {
        req.metadata_mut()
            .insert(*k, MetadataValue::try_from(*v).expect("ascii metadata"));
    }
    req
}

#[derive(Clone)]
pub struct Client {
    grpc: tonic::client::Grpc<Channel>,
}

impl Client {
    pub fn new(channel: Channel) -> Client {
        Client {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    pub async fn produce_stream<S>(
        &mut self,
        md: &[(&'static str, &str)],
        values: S,
        timeout: Option<Duration>,
    ) -> Result<ProduceResponse, Status>
    where
        S: Stream<Item = ProduceRequest> + Send + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(e.to_string()))?;
        let mut req = with_metadata(Request::new(values), md);
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        let path = PathAndQuery::from_static("/atomix.log.LogService/Produce");
        self.grpc
            .client_streaming(req, path, ProstCodec::default())
            .await
            .map(|r| r.into_inner())
    }

    /// Produces `values` in one call.
    pub async fn produce(
        &mut self,
        md: &[(&'static str, &str)],
        values: Vec<Vec<u8>>,
    ) -> Result<ProduceResponse, Status> {
        let stream = tokio_stream::iter(values.into_iter().map(|v| ProduceRequest {
            value: Bytes::from(v),
        }));
        self.produce_stream(md, stream, None).await
    }

    pub async fn consume(
        &mut self,
        md: &[(&'static str, &str)],
        offset: u64,
        timeout: Option<Duration>,
    ) -> Result<Streaming<LogRecord>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(e.to_string()))?;
        let mut req = with_metadata(Request::new(ConsumeRequest { offset }), md);
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        let path = PathAndQuery::from_static("/atomix.log.LogService/Consume");
        self.grpc
            .server_streaming(req, path, ProstCodec::default())
            .await
            .map(|r| r.into_inner())
    }

    /// Reads `n` records from `offset` (then cancels the call by dropping it).
    pub async fn consume_n(
        &mut self,
        md: &[(&'static str, &str)],
        offset: u64,
        n: usize,
    ) -> Result<Vec<LogRecord>, Status> {
        let mut stream = self.consume(md, offset, None).await?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout(Duration::from_secs(30), stream.message()).await {
                Ok(Ok(Some(r))) => out.push(r),
                Ok(Ok(None)) => return Err(Status::unknown("stream ended early")),
                Ok(Err(s)) => return Err(s),
                Err(_) => {
                    return Err(Status::unknown(format!(
                        "stuck after {} records",
                        out.len()
                    )))
                }
            }
        }
        Ok(out)
    }

    /// A unary call of any path, with a HealthCheckRequest body.
    pub async fn unary_any(
        &mut self,
        path: &'static str,
        service: &str,
        timeout: Option<Duration>,
    ) -> Result<HealthCheckResponse, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(e.to_string()))?;
        let mut req = Request::new(HealthCheckRequest {
            service: service.to_string(),
        });
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        self.grpc
            .unary(req, PathAndQuery::from_static(path), ProstCodec::default())
            .await
            .map(|r| r.into_inner())
    }

    pub async fn health_check(&mut self, service: &str) -> Result<i32, Status> {
        self.unary_any("/grpc.health.v1.Health/Check", service, None)
            .await
            .map(|r| r.status)
    }

    pub async fn health_watch(
        &mut self,
        service: &str,
        timeout: Option<Duration>,
    ) -> Result<Streaming<HealthCheckResponse>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(e.to_string()))?;
        let mut req = Request::new(HealthCheckRequest {
            service: service.to_string(),
        });
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        let path = PathAndQuery::from_static("/grpc.health.v1.Health/Watch");
        self.grpc
            .server_streaming(req, path, ProstCodec::default())
            .await
            .map(|r| r.into_inner())
    }

    /// One reflection request on the v1 or v1alpha service (same messages on the wire).
    pub async fn reflect(
        &mut self,
        path: &'static str,
        request: MessageRequest,
    ) -> Result<ServerReflectionResponse, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(e.to_string()))?;
        let req = Request::new(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }]));
        let mut responses: Streaming<ServerReflectionResponse> = self
            .grpc
            .streaming(req, PathAndQuery::from_static(path), ProstCodec::default())
            .await?
            .into_inner();
        responses
            .message()
            .await?
            .ok_or_else(|| Status::unknown("no reflection response"))
    }
}

/// What a raw HTTP/2 exchange returned.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<http::HeaderMap>,
}

impl RawResponse {
    /// `grpc-status`, from the trailers or (trailers-only) the headers.
    pub fn grpc_status(&self) -> Option<String> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .map(|v| v.to_str().unwrap().to_string())
    }

    pub fn grpc_message(&self) -> String {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-message"))
            .or_else(|| self.headers.get("grpc-message"))
            .map(|v| shardlog::wire::grpc::percent_decode_message(v.as_bytes()))
            .unwrap_or_default()
    }
}

/// One request over a fresh HTTP/2 connection made with the `h2` client directly, sending
/// `frames` as separate DATA frames: for what tonic will not send (other content types,
/// odd frame splits, compressed flags).
pub async fn raw_call(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    frames: Vec<Vec<u8>>,
) -> RawResponse {
    raw_request(addr, http::Method::POST, path, headers, frames).await
}

/// [`raw_call`] with any method.
pub async fn raw_request(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    frames: Vec<Vec<u8>>,
) -> RawResponse {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (response, mut send) = client
        .send_request(req.body(()).unwrap(), false)
        .expect("send request");
    let n = frames.len();
    for (i, f) in frames.into_iter().enumerate() {
        send.send_data(Bytes::from(f), i + 1 == n)
            .expect("send data");
    }
    if n == 0 {
        send.send_data(Bytes::new(), true).expect("end stream");
    }
    let response = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .expect("response in time")
        .expect("response");
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers");
    RawResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: data,
        trailers,
    }
}

/// A request stream fed from a channel, for calls whose messages trickle in.
pub struct ChannelStream<T>(pub tokio::sync::mpsc::Receiver<T>);

impl<T> Stream for ChannelStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
