//! One connection's task: keeps up to `in_flight` PRODUCE frames outstanding on the client's
//! pipelined connection ([`Mux`]), each frame's answer awaited on its own stream id, and
//! records each frame's acknowledgement latency as its answer arrives.
//!
//! The frame to send next is the run's next index (closed loop) or this connection's next
//! scheduled frame (open loop). Frames handed to the connection one after another go out
//! together in one vectored write (the connection's writer task gathers them).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use shardlog_client::mux::Mux;
use shardlog_client::ClientError as FramedError;
use shardlog_wire::produce::ProduceBody;
use shardlog_wire::produce_compressed::CompressedEncoder;
use shardlog_wire::{ErrorCode, Flags, OpCode};

use crate::client::error::ClientError;
use crate::run::now_us;
use crate::verify::{AckEntry, Ledger, KEYLESS};

use super::region::write_head;
use super::{Conn, RunState, Slot};

/// The open loop sleeps on the runtime's timer (millisecond resolution) until this close to a
/// frame's time, then yields until the time has come, so frames leave on time.
const SPIN: Duration = Duration::from_millis(1);

/// How often a connection waiting for answers checks for an abort, an interrupt or the end
/// of its drain.
const CHECK: Duration = Duration::from_millis(50);

/// What stopped the sending.
enum Next {
    /// The window is full: wait for an answer.
    Full,
    /// The next frame is due at this time (open loop).
    Due(Instant),
    /// Nothing more to send (the run's end, a deadline, an abort or an interrupt).
    Done,
}

pub(super) async fn drive(state: &RunState, conn: &Conn, mux: Mux) -> Ledger {
    let cfg = &state.cfg;
    let conns = cfg.connections as u64;
    let open_loop = state.schedule.is_open_loop();
    let mut ledger = Ledger::default();
    let mut pending = FuturesUnordered::new();
    let mut k = 0u64;
    let mut head = Vec::with_capacity(64);
    let mut encoder = match cfg.producer_compress.map(CompressedEncoder::new) {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => {
            state.ctl.fail(format!(
                "connection {}: --producer-compress: {e}",
                conn.index
            ));
            return Ledger::default();
        }
    };
    let mut writer_done: Option<Instant> = None;
    let mut check = tokio::time::interval(CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pace = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(pace);

    let failure: Option<String> = 'run: loop {
        // Send while the window has room and a frame is due.
        let mut next = Next::Done;
        while writer_done.is_none() {
            if pending.len() >= cfg.in_flight {
                next = Next::Full;
                break;
            }
            if state.halted() {
                break;
            }
            let frame = if open_loop {
                conn.index as u64 + k * conns
            } else {
                state.next_frame.fetch_add(1, Ordering::Relaxed)
            };
            if state.total_frames.is_some_and(|t| frame >= t) {
                break;
            }
            let intended = state.schedule.intended(frame);
            if let Some(at) = intended {
                if state.ctl.deadline().is_some_and(|d| at >= d) {
                    break;
                }
                if at > Instant::now() {
                    next = Next::Due(at);
                    break;
                }
                k += 1;
            } else if state.ctl.deadline().is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let messages = cfg.messages_in(frame);
            let region = state.prebuilt.region_of(frame);
            let key = cfg.key_of(frame);
            let key_bytes: &[u8] = if key == KEYLESS {
                b""
            } else {
                &state.prebuilt.keys[key as usize]
            };
            let tagged = state
                .prebuilt
                .tag_positions
                .as_ref()
                .map(|positions| state.prebuilt.tagged(frame, messages, positions));
            let region_bytes = state.prebuilt.regions[region.index].first(messages);
            let message_bytes = tagged.as_deref().unwrap_or(region_bytes);
            let timestamp = cfg.timestamps.then(now_us);
            let flags = if timestamp.is_some() {
                Flags::WITH_TIMESTAMP
            } else {
                0
            };
            // Closed loop: latency runs from the moment the frame is handed to the
            // connection; open loop: from when it was due.
            let start = intended.unwrap_or_else(Instant::now);
            head.clear();
            let sent = match encoder.as_mut() {
                None => {
                    write_head(&mut head, timestamp, key_bytes);
                    mux.send_parts(OpCode::Produce, flags, &[&head, message_bytes])
                        .await
                }
                Some(encoder) => {
                    // The producer's share of the work: its records compressed here.
                    let plain = ProduceBody {
                        timestamp: None,
                        key: key_bytes,
                        messages: message_bytes,
                        count: messages as u32,
                    };
                    let ts = timestamp.unwrap_or_else(now_us);
                    if let Err(e) = encoder.encode(key_bytes, ts, plain.iter(), &mut head) {
                        break 'run Some(format!("cannot compress a frame: {e}"));
                    }
                    mux.send_parts(OpCode::Produce, Flags::COMPRESSED, &[&head])
                        .await
                }
            };
            let sent = match sent {
                Ok(p) => p,
                Err(e) => break 'run Some(describe(&e, pending.len())),
            };
            state.frames_sent.fetch_max(frame + 1, Ordering::SeqCst);
            let slot = Slot {
                start,
                frame,
                key,
                messages: messages as u32,
                bytes: state.prebuilt.regions[region.index].payload_bytes(messages),
                first_message: region.first_message,
            };
            pending.push(async move { (slot, sent.answer().await) });
        }
        if matches!(next, Next::Done) && writer_done.is_none() {
            writer_done = Some(Instant::now());
        }
        if let Some(done) = writer_done {
            if pending.is_empty() {
                break None;
            }
            if (state.ctl.deadline().is_some() || state.ctl.interrupted())
                && done.elapsed() > cfg.drain_timeout
            {
                // A timed or interrupted run: what is still unanswered is reported, not
                // waited for forever.
                break None;
            }
        }
        if state.ctl.aborted() {
            break None;
        }
        if let Next::Due(at) = next {
            let coarse = at.checked_sub(SPIN).unwrap_or(at);
            pace.as_mut().reset(coarse.into());
        }
        tokio::select! {
            biased;
            Some((slot, answer)) = pending.next() => {
                let now = Instant::now();
                if let Err(f) = answered(state, conn, &mut ledger, slot, answer, now, pending.len()) {
                    break Some(f);
                }
            }
            _ = &mut pace, if matches!(next, Next::Due(_)) => {
                // The last stretch before the frame's time: yield rather than sleep.
                if let Next::Due(at) = next {
                    if at > Instant::now() {
                        tokio::task::yield_now().await;
                    }
                }
            }
            _ = check.tick() => {}
        }
    };
    if let Some(f) = failure {
        state.ctl.fail(format!("connection {}: {f}", conn.index));
    }
    conn.unanswered
        .store(pending.len() as u64, Ordering::SeqCst);
    ledger
}

/// Records one frame's answer; `Err` when the connection cannot go on.
fn answered(
    state: &RunState,
    conn: &Conn,
    ledger: &mut Ledger,
    slot: Slot,
    answer: Result<shardlog_client::connection::ReceivedFrame, FramedError>,
    now: Instant,
    in_flight: usize,
) -> Result<(), String> {
    let cfg = &state.cfg;
    match answer {
        Ok(frame) if frame.header.opcode == OpCode::ProduceResponse as u8 => {
            conn.stats.with(|i| {
                i.record_ack(
                    now.saturating_duration_since(slot.start),
                    slot.messages as u64,
                    slot.bytes,
                    now,
                )
            });
            if cfg.ledger {
                ledger.push(AckEntry {
                    frame: slot.frame,
                    key: slot.key,
                    messages: slot.messages,
                    first_message: slot.first_message,
                    connection: conn.index as u32,
                    sent: slot.start.saturating_duration_since(state.started),
                    acked: now.saturating_duration_since(state.started),
                });
            }
            Ok(())
        }
        Ok(frame) => {
            state.errors.report(
                255,
                &format!(
                    "harness: unexpected opcode {} on stream id {}",
                    frame.header.opcode, frame.header.stream_id
                ),
                cfg.print_errors,
            );
            conn.stats
                .with(|i| i.record_error(slot.messages as u64, now));
            Ok(())
        }
        Err(FramedError::Broker { code, message }) => {
            state.errors.report(code, &message, cfg.print_errors);
            conn.stats
                .with(|i| i.record_error(slot.messages as u64, now));
            if code == ErrorCode::Protocol as u8 {
                return Err(format!(
                    "broker reported a protocol error and closes the connection: {message}"
                ));
            }
            Ok(())
        }
        Err(e) => Err(describe(&e, in_flight + 1)),
    }
}

/// A connection failure, in the harness's words.
fn describe(e: &FramedError, in_flight: usize) -> String {
    match e {
        FramedError::Timeout(t) => {
            format!("no answer from the broker for {t:?} with {in_flight} frame(s) in flight")
        }
        FramedError::ConnectionLost(why) => {
            format!("{why} (with {in_flight} frame(s) in flight)")
        }
        other => ClientError::from(other.clone()).to_string(),
    }
}
