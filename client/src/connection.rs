//! One TCP connection to a broker, as frames: [`FrameReader`] owns the read half and its
//! buffer (`read_frame`), [`FrameWriter`] the write half (`write_frames`). Nothing else touches
//! the socket; parsing is the wire crate's, on byte slices.

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use shardlog_wire::frame::Frame;
use shardlog_wire::header::HEADER_LEN;
use shardlog_wire::{FrameHeader, OpCode};

use crate::ClientError;

/// A frame as received: its header and its body.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    pub header: FrameHeader,
    pub body: Bytes,
}

impl ReceivedFrame {
    pub fn opcode(&self) -> Result<OpCode, ClientError> {
        Ok(OpCode::from_u8(self.header.opcode)?)
    }
}

/// Connects (with `TCP_NODELAY`: frames are already batched) and splits the socket.
pub async fn connect(addr: &str, max_body: u32) -> Result<(FrameReader, FrameWriter), ClientError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| ClientError::Connect {
            addr: addr.to_string(),
            source: e.into(),
        })?;
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    Ok((
        FrameReader {
            read,
            buf: BytesMut::with_capacity(64 << 10),
            max_body,
        },
        FrameWriter { write },
    ))
}

pub struct FrameReader {
    read: OwnedReadHalf,
    buf: BytesMut,
    max_body: u32,
}

impl FrameReader {
    /// The next frame; `Ok(None)` when the broker closed the connection between frames.
    pub async fn read_frame(&mut self) -> Result<Option<ReceivedFrame>, ClientError> {
        loop {
            if let Some((frame, used)) = Frame::parse(&self.buf, self.max_body)? {
                let header = frame.header;
                let mut whole = self.buf.split_to(used);
                whole.advance(HEADER_LEN);
                return Ok(Some(ReceivedFrame {
                    header,
                    body: whole.freeze(),
                }));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 << 10);
            }
            let n = self
                .read
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| ClientError::ConnectionLost(e.to_string()))?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(ClientError::ConnectionLost(
                    "closed in the middle of a frame".into(),
                ));
            }
        }
    }
}

pub struct FrameWriter {
    write: OwnedWriteHalf,
}

impl FrameWriter {
    /// Writes encoded frames, one buffer each, with vectored writes (as many as the kernel
    /// takes at once, looping over short writes).
    pub async fn write_all_frames(&mut self, frames: &[Vec<u8>]) -> Result<(), ClientError> {
        let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = self
                .write
                .write_vectored(rest)
                .await
                .map_err(|e| ClientError::ConnectionLost(e.to_string()))?;
            if n == 0 {
                return Err(ClientError::ConnectionLost(
                    "the socket took no bytes".into(),
                ));
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }

    /// Writes already-encoded frames (one or many, back to back).
    pub async fn write_frames(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.write
            .write_all(bytes)
            .await
            .map_err(|e| ClientError::ConnectionLost(e.to_string()))
    }
}
