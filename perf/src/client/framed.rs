//! The framed protocol, through the client library (`shardlog-client`): its pipelined
//! connection layer ([`Mux`]: a frame sent with a stream id of its own, its answer awaited by
//! that id) is what the harness drives, so the harness measures the client users run. This
//! file opens producer connections (TCP, then STARTUP → READY).

use std::time::Duration;

use shardlog_client::mux::Mux;
use shardlog_wire::startup::StartupBody;
use shardlog_wire::OpCode;

use super::error::ClientError;

/// The most frames one connection keeps in flight (the client keeps half of the 65,536
/// stream ids free, so an id is never reused while its answer may still come).
pub const MAX_IN_FLIGHT: usize = 32_768;

/// The largest answer body a producer accepts. Answers are tiny; a larger length means the
/// stream is not the framed protocol (or is corrupt).
pub const MAX_RESPONSE_BODY: u32 = 1 << 20;

/// Connects to `addr` and sends STARTUP for `topic`, within `handshake`; the connection then
/// keeps at most `in_flight` frames outstanding, each answered within `response` or failed.
/// Must run on a tokio runtime (the connection's reader and writer are tasks on it).
pub async fn connect_producer(
    addr: &str,
    topic: &str,
    in_flight: usize,
    handshake: Duration,
    response: Duration,
) -> Result<Mux, ClientError> {
    let open = async {
        let mux = Mux::connect(addr, MAX_RESPONSE_BODY, in_flight, response).await?;
        let mut startup = Vec::new();
        StartupBody { topic }.encode(&mut startup);
        let ready = mux.call(OpCode::Startup, 0, &startup).await?;
        if ready.header.opcode != OpCode::Ready as u8 {
            return Err(ClientError::Unexpected(format!(
                "opcode {} in answer to STARTUP (expected READY)",
                ready.header.opcode
            )));
        }
        Ok(mux)
    };
    tokio::time::timeout(handshake, open)
        .await
        .map_err(|_| ClientError::Unexpected(format!("no READY within {handshake:?}")))?
}
