//! The writer task of one partition: compresses queued frames into chunks and keeps up to
//! `--chunk-writes-in-flight` of their writes on the device at once ([`InFlightChunks`]),
//! finishing and answering them in offset order.

use std::rc::Rc;

use futures_lite::future;

use crate::rt;

use super::in_flight::InFlightChunks;
use super::{raw_len, Encoded, FrameBatch, PartitionWriter, Pending, ProduceError};

/// The smallest share of the queue a chunk takes when several writes may be in flight (a
/// frame larger than this still goes whole): below it, per-chunk costs (a write, a header,
/// a zstd frame) outweigh the gain.
const MIN_SPLIT_CHUNK_RAW: usize = 64 << 10;

impl PartitionWriter {
    /// Writes chunks until the queue is empty. Up to `--chunk-writes-in-flight` chunk writes
    /// run at once: while they are on the device, frames queued meanwhile are compressed into
    /// the next chunk and its write is issued, so the device never waits for the CPU or for
    /// the previous write's answer. Chunks are finished (published, acknowledged) one after
    /// the other in offset order; a roll first finishes every write in flight.
    pub(super) async fn run(self: Rc<Self>) {
        let mut flight = InFlightChunks::new(self.writes_in_flight);
        // A chunk that needs a new segment, waiting for the writes in flight to finish.
        let mut held: Option<(FrameBatch, Encoded)> = None;
        loop {
            let placed_some = self.place_chunks(&mut flight, &mut held).await;
            if flight.is_empty() {
                if held.is_none() {
                    break;
                }
                continue;
            }
            if placed_some {
                flight.kick().await;
            }
            let written = if held.is_none() && flight.has_room() {
                // Frames arriving now go into a new chunk at once, beside the writes in
                // flight; the oldest write's completion is answered as soon as it comes.
                if !self.queue.borrow().is_empty() {
                    rt::next_io_turn().await;
                    continue;
                }
                let arrived = self.queued.notified();
                future::or(async { flight.next_written().await }, async {
                    arrived.await;
                    None
                })
                .await
            } else {
                flight.next_written().await
            };
            if let Some(w) = written {
                let result = match w.write {
                    Ok((log, written)) => {
                        log.finish_write(written).await.map_err(ProduceError::from)
                    }
                    Err(e) => Err(e),
                };
                self.answer(w.batch, result);
            }
            // Compression ran on this core; let connections and other partitions have it.
            rt::yield_if_needed().await;
        }
        self.running.set(false);
        self.idle.notify();
    }

    /// Compresses and places queued frames' chunks while there is room in flight; stops at a
    /// chunk that needs a roll while writes are in flight (left in `held`). Returns whether it
    /// placed any.
    async fn place_chunks(
        self: &Rc<Self>,
        flight: &mut InFlightChunks,
        held: &mut Option<(FrameBatch, Encoded)>,
    ) -> bool {
        let mut placed_some = false;
        while flight.has_room() {
            let next = match held.take() {
                Some(c) => Some(c),
                None => {
                    if placed_some && !self.queue.borrow().is_empty() {
                        // Let the executor hand the write just placed to the kernel before
                        // compressing the next chunk.
                        flight.kick().await;
                        rt::next_io_turn().await;
                    }
                    let next = self.take_and_encode(flight.free_slots()).await;
                    if next.is_some() {
                        if let Some(pause) = crate::failpoint::hit("writer.write") {
                            rt::sleep(pause).await;
                        }
                    }
                    next
                }
            };
            let Some((batch, encoded)) = next else {
                break;
            };
            match encoded {
                Err(e) => flight.push_refused(batch, e),
                Ok((log, chunk)) => {
                    if !flight.is_empty() && log.needs_roll(&chunk) {
                        *held = Some((batch, Ok((log, chunk))));
                        break;
                    }
                    match log.begin_write(chunk).await {
                        Ok(placed) => {
                            flight.push_write(batch, log, placed);
                            placed_some = true;
                        }
                        Err(e) => flight.push_refused(batch, e.into()),
                    }
                }
            }
        }
        placed_some
    }

    /// How much a chunk takes off the queue before compression. With `free_slots` writes
    /// still allowed in flight, what is queued is shared among them (never below
    /// [`MIN_SPLIT_CHUNK_RAW`]): a client's window of frames that arrived together then goes as
    /// a few chunks, the first written (and answered) while the next is compressed, instead of
    /// as one chunk per round trip. A long queue still makes chunks of `max_chunk_raw`.
    pub(super) fn chunk_raw_cap(&self, queue: &[Pending], free_slots: usize) -> usize {
        if free_slots <= 1 {
            return self.max_chunk_raw;
        }
        let queued: usize = queue.iter().map(|p| raw_len(&p.frame)).sum();
        queued
            .div_ceil(free_slots)
            .max(MIN_SPLIT_CHUNK_RAW)
            .min(self.max_chunk_raw)
    }
}
