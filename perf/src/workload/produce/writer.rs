//! A connection's writer thread: picks the next frame (closed loop: the next index; open loop:
//! this connection's next scheduled frame), reserves a stream id within the window, appends the
//! frame's prefix to a batch and sends batches with one vectored write.

use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::client::framed::FrameWriter;
use crate::client::produce_frame::ProducePrefix;
use crate::run::now_us;
use crate::run::pacing::sleep_until;
use crate::verify::KEYLESS;

use super::{Conn, RunState, Slot};

/// Frames waiting for one vectored write.
struct Batch {
    prefixes: Vec<u8>,
    items: Vec<BatchItem>,
    /// With `--verify`: each item's tagged copy of its messages, sent instead of the region.
    tagged: Vec<Vec<u8>>,
    bytes: usize,
}

/// One frame of a batch: its prefix in [`Batch::prefixes`], then messages from a region.
#[derive(Debug, Clone, Copy)]
struct BatchItem {
    /// Where the frame's prefix ends in `prefixes` (it starts where the previous one ends).
    prefix_end: usize,
    /// The prebuilt region its messages come from.
    region: usize,
    messages: usize,
    stream_id: u16,
}

impl Batch {
    const MAX_FRAMES: usize = 64;
    const MAX_BYTES: usize = 256 * 1024;

    fn new() -> Batch {
        Batch {
            prefixes: Vec::with_capacity(64 * Batch::MAX_FRAMES),
            items: Vec::with_capacity(Batch::MAX_FRAMES),
            tagged: Vec::new(),
            bytes: 0,
        }
    }

    fn full(&self) -> bool {
        self.items.len() >= Self::MAX_FRAMES || self.bytes >= Self::MAX_BYTES
    }
}

pub(super) fn write_loop(state: &RunState, conn: &Conn, mut writer: FrameWriter) {
    let cfg = &state.cfg;
    let conns = cfg.connections as u64;
    let mut batch = Batch::new();
    let open_loop = state.schedule.is_open_loop();
    let mut k = 0u64;
    let result: Result<(), String> = loop {
        if state.halted() {
            break Ok(());
        }
        // Which frame is next.
        let frame = if open_loop {
            let f = conn.index as u64 + k * conns;
            k += 1;
            f
        } else {
            state.next_frame.fetch_add(1, Ordering::Relaxed)
        };
        if state.total_frames.is_some_and(|t| frame >= t) {
            break Ok(());
        }
        let intended = state.schedule.intended(frame);
        let due = intended.unwrap_or_else(Instant::now);
        if state.ctl.deadline().is_some_and(|d| due >= d) {
            break Ok(());
        }
        // Open loop: wait for the frame's time, sending what is batched first.
        if let Some(at) = intended {
            if at > Instant::now() {
                if let Err(e) = flush(state, conn, &mut writer, &mut batch) {
                    break Err(e);
                }
                sleep_until(at, || state.halted());
            }
        }
        // Reserve a stream id; a full window first sends what is batched, then waits.
        let messages = cfg.messages_in(frame);
        let region = state.prebuilt.region_of(frame);
        let key = cfg.key_of(frame);
        let reserved = loop {
            let mut w = conn.lock();
            if w.closed || state.halted() {
                break None;
            }
            if w.slots.len() < cfg.in_flight {
                let Some(id) = w.ids.allocate() else {
                    break None;
                };
                let bytes = state.prebuilt.regions[region.index].payload_bytes(messages);
                w.slots.insert(
                    id,
                    Slot {
                        start: due,
                        frame,
                        key,
                        messages: messages as u32,
                        bytes,
                        first_message: region.first_message,
                    },
                );
                break Some(id);
            }
            if !batch.items.is_empty() {
                drop(w);
                if let Err(e) = flush(state, conn, &mut writer, &mut batch) {
                    state.ctl.fail(format!("connection {}: {e}", conn.index));
                    break None;
                }
                continue;
            }
            let _ = conn.freed.wait_timeout(w, Duration::from_millis(100));
        };
        let Some(stream_id) = reserved else {
            break Ok(());
        };
        let key_bytes: &[u8] = if key == KEYLESS {
            b""
        } else {
            &state.prebuilt.keys[key as usize]
        };
        let region_bytes = state.prebuilt.regions[region.index].first(messages);
        ProducePrefix::encode(
            &mut batch.prefixes,
            stream_id,
            cfg.timestamps.then(now_us),
            key_bytes,
            region_bytes.len(),
        );
        batch.items.push(BatchItem {
            prefix_end: batch.prefixes.len(),
            region: region.index,
            messages,
            stream_id,
        });
        if let Some(positions) = &state.prebuilt.tag_positions {
            batch
                .tagged
                .push(state.prebuilt.tagged(frame, messages, positions));
        }
        state.frames_sent.fetch_max(frame + 1, Ordering::SeqCst);
        batch.bytes += region_bytes.len();
        let behind = intended.is_some_and(|at| at <= Instant::now());
        if batch.full() || (open_loop && !behind) {
            if let Err(e) = flush(state, conn, &mut writer, &mut batch) {
                break Err(e);
            }
        }
    };
    let result = result.and_then(|()| flush(state, conn, &mut writer, &mut batch));
    if let Err(e) = result {
        state.ctl.fail(format!("connection {}: {e}", conn.index));
    }
    let mut w = conn.lock();
    w.writer_done = Some(Instant::now());
    drop(w);
    conn.freed.notify_all();
}

/// Sends the batch with one vectored write (several if the kernel takes less).
fn flush(
    state: &RunState,
    conn: &Conn,
    writer: &mut FrameWriter,
    batch: &mut Batch,
) -> Result<(), String> {
    if batch.items.is_empty() {
        return Ok(());
    }
    // Closed loop: latency runs from now, the moment the frames go out.
    if !state.schedule.is_open_loop() {
        let now = Instant::now();
        let mut w = conn.lock();
        for item in &batch.items {
            if let Some(slot) = w.slots.get_mut(&item.stream_id) {
                slot.start = now;
            }
        }
    }
    let mut slices = Vec::with_capacity(batch.items.len() * 2);
    let mut prefix_start = 0;
    for (n, item) in batch.items.iter().enumerate() {
        slices.push(IoSlice::new(&batch.prefixes[prefix_start..item.prefix_end]));
        match batch.tagged.get(n) {
            Some(tagged) => slices.push(IoSlice::new(tagged)),
            None => slices.push(IoSlice::new(
                state.prebuilt.regions[item.region].first(item.messages),
            )),
        }
        prefix_start = item.prefix_end;
    }
    let result = writer
        .write_all_vectored(&mut slices)
        .map_err(|e| format!("sending to the broker failed: {e}"));
    batch.prefixes.clear();
    batch.items.clear();
    batch.tagged.clear();
    batch.bytes = 0;
    result
}
