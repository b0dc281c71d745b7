//! The gRPC client side of `atomix.log.LogService` on the broker's HTTP port: tonic's generic
//! client (`tonic::client::Grpc` over a `Channel`, the prost codec) with the broker's own prost
//! message types ([`shardlog::proto::log`]), as the broker's end-to-end tests use it: an
//! independent HTTP/2 + gRPC implementation facing the broker's hand-written one. It runs on a
//! tokio multi-thread runtime whose workers are pinned to `--cpus` (one worker per CPU listed).

use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::run::{cpus, ErrorLog};

pub const PRODUCE_PATH: &str = "/atomix.log.LogService/Produce";
pub const CONSUME_PATH: &str = "/atomix.log.LogService/Consume";

/// Counts a non-OK status under its code (`unavailable(14)`); prints each distinct message once.
pub fn report_status(log: &ErrorLog, status: &Status, print: bool) {
    let key = code_key(status.code());
    log.count(key.clone(), status.message(), print, false, || {
        format!("grpc status {key}: {}", status.message())
    });
}

/// `unavailable(14)`.
pub fn code_key(code: Code) -> String {
    let name = format!("{code:?}");
    let mut snake = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(ch.to_ascii_lowercase());
    }
    format!("{snake}({})", code as i32)
}

/// A tokio runtime with one worker per CPU of `cpus` (each pinned), or tokio's default.
pub fn runtime(cpus: &Option<Vec<usize>>) -> Result<tokio::runtime::Runtime, String> {
    cpus::runtime(cpus, "grpc-worker")
}

/// One HTTP/2 connection to the broker's HTTP port; `window` raises h2's receive windows.
pub async fn connect(
    addr: &str,
    timeout: Duration,
    window: Option<u32>,
) -> Result<Channel, String> {
    let endpoint = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(window)
        .initial_connection_window_size(window.map(|w| w.saturating_mul(4)));
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e} ({e:?})"))
}

/// `count` connections, all opened before the run's clock starts.
pub fn connect_all(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    count: usize,
    window: Option<u32>,
) -> Result<Vec<Channel>, String> {
    rt.block_on(async {
        let mut chans = Vec::with_capacity(count);
        for _ in 0..count {
            chans.push(connect(addr, Duration::from_secs(10), window).await?);
        }
        Ok(chans)
    })
}

/// A metadata value, or an error naming what it was for.
pub fn ascii(v: &str, what: &str) -> Result<AsciiMetadataValue, String> {
    AsciiMetadataValue::try_from(v).map_err(|_| format!("{what} is not valid metadata: {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_keys_are_snake_case() {
        assert_eq!(code_key(Code::Unavailable), "unavailable(14)");
        assert_eq!(code_key(Code::InvalidArgument), "invalid_argument(3)");
        assert_eq!(code_key(Code::Ok), "ok(0)");
    }
}
