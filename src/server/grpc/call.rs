//! The two halves of one gRPC call over an h2 stream.
//!
//! [`Requests`] turns the request DATA frames into whole messages, however the frames split
//! them ([`MessageDecoder`]: no copy for a message inside one frame; a straddling message is
//! assembled in a buffer bounded by the maximum message size). A DATA frame's bytes are
//! released to h2's flow control only when the decoder takes them, which happens only when the
//! handler asks for the next message: a slow handler keeps the client within the stream window.
//! The bytes the decoder holds (a message not yet whole) are charged to the connection's
//! request-body budget first; when it is full the frame is not released, so flow control stops
//! the client. A request stream with no data for the stream idle timeout (counting time
//! spent waiting for room) ends the call.
//!
//! [`Responder`] sends the response headers (lazily, with the first message), the messages,
//! and the status trailers, asking h2 for send capacity before each piece of data so that a
//! slow reader makes the call wait rather than the server buffer.

use std::cell::RefCell;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::rt;
use crate::server::budget::Charge;
use crate::wire::grpc::{self, MessageDecoder, PREFIX_LEN};

use super::status::{Code, Status};

/// The request messages of a call.
pub struct Requests {
    body: RecvStream,
    decoder: MessageDecoder,
    ended: bool,
    /// The bytes the decoder holds, against the connection's request-body budget.
    charge: Charge,
    /// How long the request stream may go without data (`--stream-idle-timeout`).
    idle_timeout: Duration,
}

impl Requests {
    pub fn new(body: RecvStream, max_len: u32, charge: Charge, idle_timeout: Duration) -> Requests {
        Requests {
            body,
            decoder: MessageDecoder::new(max_len),
            ended: false,
            charge,
            idle_timeout,
        }
    }

    /// The next message body, or `None` when the client half-closed the stream.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if let Some(msg) = self.try_next()? {
                return Ok(Some(msg));
            }
            if self.ended {
                if self.decoder.pending() > 0 {
                    return Err(Status::internal(format!(
                        "the request stream ended inside a message ({} bytes of it received)",
                        self.decoder.pending()
                    )));
                }
                return Ok(None);
            }
            // Waiting for room counts as idle too: otherwise streams that each hold part of
            // a full budget and wait for more of it would wait for each other forever.
            let (body, decoder, charge) = (&mut self.body, &self.decoder, &mut self.charge);
            let next = async {
                let data = body.data().await;
                if let Some(Ok(data)) = &data {
                    charge
                        .grow_to((decoder.pending() + data.len()) as u64)
                        .await;
                }
                data
            };
            let data = rt::timeout(self.idle_timeout, next).await.ok_or_else(|| {
                Status::new(
                    Code::DeadlineExceeded,
                    format!(
                        "no request data for {} (--stream-idle-timeout)",
                        humantime::format_duration(self.idle_timeout)
                    ),
                )
            })?;
            match data {
                Some(Ok(data)) => {
                    // The bytes now sit in the decoder (bounded by the maximum message size)
                    // and the connection's budget had room for them: let the client send
                    // more. Until then flow control held it back.
                    let _ = self.body.flow_control().release_capacity(data.len());
                    self.decoder.push(data);
                }
                Some(Err(e)) => return Err(e.into()),
                None => self.ended = true,
            }
        }
    }

    /// The next message if it has already arrived whole (no waiting): lets a caller batch the
    /// messages that came together.
    pub fn try_next(&mut self) -> Result<Option<Bytes>, Status> {
        let next = self.decoder.next_message()?;
        self.charge.set(self.decoder.pending() as u64);
        match next {
            Some(msg) if msg.compressed => Err(Status::internal(
                "message has the compressed flag set but the call declared no grpc-encoding",
            )),
            Some(msg) => Ok(Some(msg.body)),
            None => Ok(None),
        }
    }

    /// Exactly one request message (unary and server-streaming calls).
    pub async fn single(&mut self) -> Result<Bytes, Status> {
        let msg = self
            .next()
            .await?
            .ok_or_else(|| Status::internal("the client sent no request message"))?;
        if self.next().await?.is_some() {
            return Err(Status::internal(
                "the client sent more than one request message to a unary method",
            ));
        }
        Ok(msg)
    }
}

enum State {
    /// No headers sent yet.
    Idle(SendResponse<Bytes>),
    /// Headers sent; messages may follow.
    Open(SendStream<Bytes>),
    /// The response is complete.
    Done,
}

/// The response side of a call.
pub struct Responder {
    state: RefCell<State>,
    max_len: u32,
}

impl Responder {
    pub fn new(respond: SendResponse<Bytes>, max_len: u32) -> Responder {
        Responder {
            state: RefCell::new(State::Idle(respond)),
            max_len,
        }
    }

    fn grpc_response() -> Response<()> {
        let mut r = Response::new(());
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        r
    }

    /// Sends the response headers if they have not been sent yet (messages send them
    /// anyway; a call that may wait long before its first message sends them early, so the
    /// client sees the call accepted).
    pub fn send_headers(&self) -> Result<(), Status> {
        let mut state = self.state.borrow_mut();
        *state = match std::mem::replace(&mut *state, State::Done) {
            State::Idle(mut respond) => {
                State::Open(respond.send_response(Self::grpc_response(), false)?)
            }
            State::Open(stream) => State::Open(stream),
            State::Done => return Err(Status::internal("the response is already complete")),
        };
        Ok(())
    }

    /// Sends one response message, waiting for flow-control capacity as needed.
    pub async fn send<M: prost::Message>(&self, msg: &M) -> Result<(), Status> {
        let mut buf = BytesMut::new();
        self.encode(msg, &mut buf)?;
        self.send_data(buf.freeze()).await
    }

    /// Appends `msg`, length-prefixed, to `buf`: several messages can then go out in one
    /// [`Responder::send_encoded`].
    pub fn encode<M: prost::Message>(&self, msg: &M, buf: &mut BytesMut) -> Result<(), Status> {
        let len = msg.encoded_len();
        if len > self.max_len as usize {
            return Err(Status::new(
                super::status::Code::ResourceExhausted,
                format!(
                    "response message of {len} bytes exceeds the maximum message size of {} bytes",
                    self.max_len
                ),
            ));
        }
        buf.reserve(PREFIX_LEN + len);
        let mut prefix = [0u8; PREFIX_LEN];
        grpc::encode_prefix(len, &mut prefix);
        buf.extend_from_slice(&prefix);
        msg.encode(buf)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }

    /// Sends messages encoded with [`Responder::encode`].
    pub async fn send_encoded(&self, data: Bytes) -> Result<(), Status> {
        self.send_data(data).await
    }

    async fn send_data(&self, mut data: Bytes) -> Result<(), Status> {
        self.send_headers()?;
        while !data.is_empty() {
            let n = poll_fn(|cx| {
                let mut state = self.state.borrow_mut();
                let State::Open(stream) = &mut *state else {
                    return Poll::Ready(Err(Status::internal("the response is complete")));
                };
                stream.reserve_capacity(data.len());
                let cap = stream.capacity();
                if cap > 0 {
                    return Poll::Ready(Ok(cap));
                }
                match stream.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(n))) => Poll::Ready(Ok(n)),
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Err(e.into())),
                    Poll::Ready(None) => Poll::Ready(Err(Status::cancelled())),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await?;
            let piece = data.split_to(n.min(data.len()));
            if let State::Open(stream) = &mut *self.state.borrow_mut() {
                stream.send_data(piece, false)?;
            }
        }
        Ok(())
    }

    /// Resolves when the client resets the stream (cancellation) or the connection fails.
    pub async fn cancelled(&self) {
        poll_fn(|cx| match &mut *self.state.borrow_mut() {
            State::Idle(respond) => respond.poll_reset(cx).map(|_| ()),
            State::Open(stream) => stream.poll_reset(cx).map(|_| ()),
            State::Done => Poll::Pending,
        })
        .await
    }

    /// Ends the call with `status`: as trailers after the headers and messages sent, or as a
    /// trailers-only response when nothing was sent.
    pub fn finish(&self, status: &Status) {
        let mut trailers = HeaderMap::new();
        status.write_to(&mut trailers);
        let result = match std::mem::replace(&mut *self.state.borrow_mut(), State::Done) {
            State::Idle(mut respond) => {
                let mut r = Self::grpc_response();
                r.headers_mut().extend(trailers);
                respond.send_response(r, true).map(|_| ())
            }
            State::Open(mut stream) => stream.send_trailers(trailers),
            State::Done => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not send the call's status");
        }
    }

    /// Answers with a plain HTTP status and no gRPC framing (e.g. 415 for a non-gRPC
    /// content-type), with `message` as a text body.
    pub fn reject_http(&self, status: StatusCode, message: &str) {
        if let State::Idle(mut respond) =
            std::mem::replace(&mut *self.state.borrow_mut(), State::Done)
        {
            let mut r = Response::new(());
            *r.status_mut() = status;
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            if let Ok(mut stream) = respond.send_response(r, false) {
                let _ = stream.send_data(Bytes::from(format!("{message}\n")), true);
            }
        }
    }
}
