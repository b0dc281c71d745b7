//! Handing frames to their partition's writer: here when this shard owns the partition, over
//! the mesh otherwise. Frames submitted one after another reach their partition in that order,
//! which keeps each key in order.

use std::cell::RefCell;

use bytes::Bytes;
use futures_channel::oneshot;

use super::error::{ProduceError, RouteError};
use super::msg::{FrameLayout, ProduceAck, ProduceFrame, ShardMsg};
use super::{Shard, TopicState};
use crate::ring::ShardOwnership;
use crate::storage::chunk::max_decoded_len;
use crate::wire::produce::{encode_produce_body, ProduceLayout};
use crate::wire::produce_compressed::{verify, CompressedLayout};
use crate::{failpoint, rt};

/// Decompression buffer of [`Shard::check_compressed`] kept from one frame to the next, up to
/// this many bytes (a larger frame's buffer is freed after it).
const CHECK_BUFFER_KEPT: usize = 4 << 20;

thread_local! {
    /// Where this shard decompresses producer-compressed frames to check them.
    static CHECK_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The acknowledgement of a submitted frame, still to come.
pub struct PendingAck(oneshot::Receiver<Result<ProduceAck, ProduceError>>);

impl PendingAck {
    /// Waits until the frame is durable (or failed).
    pub async fn wait(self) -> Result<ProduceAck, ProduceError> {
        self.0.await.map_err(|_| RouteError::WriterGone)?
    }
}

impl Shard {
    /// The partition a keyless connection writes to: one owned by this shard (no cross-core
    /// hop), chosen round-robin so connections spread over the shard's partitions.
    pub fn keyless_partition(&self, topic: &TopicState) -> u32 {
        let c = topic.keyless_cursor.get();
        topic.keyless_cursor.set(c.wrapping_add(1));
        let owned = topic.owned().count();
        match topic.owned().nth(c % owned.max(1)) {
            Some(w) => w.partition,
            // More shards than partitions: this shard owns none of the topic.
            None => (c % topic.layout.partitions() as usize) as u32,
        }
    }

    /// Hands a frame to partition `j` of `topic`, locally or on the owning shard, and returns
    /// the receiver of its acknowledgement (sent once the frame is durable).
    pub async fn submit(
        &self,
        topic: &TopicState,
        j: u32,
        frame: ProduceFrame,
    ) -> Result<PendingAck, ProduceError> {
        self.check_writable()?;
        let (tx, rx) = oneshot::channel();
        let owner = topic.layout.owner(j, self.shards);
        if owner == self.id {
            topic.writer(j, self.id)?.submit(frame, tx);
        } else {
            if let Some(pause) = failpoint::hit("shard.forward") {
                rt::sleep(pause).await;
            }
            let msg = ShardMsg::Produce {
                topic: topic.name.clone(),
                layout: topic.layout,
                incarnation: topic.incarnation,
                partition: j,
                frame,
                reply: tx,
            };
            self.mesh
                .send_to(owner, msg)
                .await
                .map_err(|_| RouteError::Unreachable(owner))?;
        }
        Ok(PendingAck(rx))
    }

    /// Waits for `len` bytes of this shard's buffer budget (`--shard-buffer`; a frame larger
    /// than the whole budget takes all of it): what a frame read from a client holds until it
    /// is durable here, or until the leader answered when it is forwarded.
    pub async fn reserve_buffer(&self, len: usize) -> Result<rt::StaticPermit, ProduceError> {
        let budget = (len as u64).min(self.config.shard_buffer_bytes);
        self.buffer
            .clone()
            .acquire_static_permit(budget)
            .await
            .map_err(|_| ProduceError::ShuttingDown)
    }

    /// For interfaces that receive messages rather than frames (gRPC, REST): encodes them as
    /// one PRODUCE body — exactly what a framed client would send, so one frame is one chunk's
    /// worth of atomicity — takes its size from the shard's buffer budget (the one framed
    /// connections draw from, so every interface slows down together when acknowledgements
    /// lag) and submits it to partition `j`, routed at `leader_epoch` in cluster mode (0 on a
    /// single host). Hold the returned permit until the ack arrives.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit_messages<'m>(
        &self,
        topic: &TopicState,
        j: u32,
        leader_epoch: u64,
        timestamp: Option<i64>,
        key: &[u8],
        messages: impl IntoIterator<Item = &'m [u8]>,
        body_len: usize,
    ) -> Result<(PendingAck, rt::StaticPermit), ProduceError> {
        let mut body = Vec::with_capacity(body_len);
        encode_produce_body(timestamp, key, messages, &mut body);
        let layout =
            ProduceLayout::parse(&body, timestamp.is_some()).map_err(ProduceError::Frame)?;
        let permit = self.reserve_buffer(body.len()).await?;
        let frame = ProduceFrame {
            body: Bytes::from(body),
            layout: layout.into(),
            received_us: rt::now_us(),
            leader_epoch,
        };
        Ok((self.submit(topic, j, frame).await?, permit))
    }

    /// Checks a producer-compressed frame (PRODUCE flag `0x08`) before it is stored: its
    /// payload decompresses (every checksum verified) to exactly the records it declares, and
    /// to no more bytes than the same messages sent plainly could take (`--max-frame-size`
    /// plus a record's 8 extra bytes each), so every reader's bound holds for it. The bytes
    /// are stored as they came; only this check decompresses them.
    pub fn check_compressed(
        &self,
        body: &[u8],
        layout: CompressedLayout,
    ) -> Result<FrameLayout, ProduceError> {
        let max_frame = self.config.max_frame_size as usize;
        let limit = max_frame
            .saturating_add((layout.count as usize).saturating_mul(8))
            .min(max_decoded_len(
                Some(layout.count),
                self.config.max_frame_bytes(),
            ));
        CHECK_BUFFER.with(|buf| {
            let mut buf = buf.borrow_mut();
            let verified = verify(layout.payload(body), layout.count, limit, &mut buf);
            if buf.capacity() > CHECK_BUFFER_KEPT {
                *buf = Vec::new();
            }
            Ok(FrameLayout::Compressed {
                layout,
                verified: verified?,
            })
        })
    }
}
