//! A connection's reader thread: parses answers, matches them to frames by stream id (in any
//! order), records latency, frees the id, and keeps the connection's ledger of acknowledged
//! frames (with `--verify`).

use std::time::{Duration, Instant};

use shardlog_wire::ErrorCode;

use crate::client::framed::{code_name, ClientError, FrameReader, ReadOutcome, Response};
use crate::verify::{AckEntry, Ledger};

use super::{Conn, RunState, Slot};

/// A frame whose answer arrived: acknowledged (`ok`) or answered with ERROR.
struct Answered {
    slot: Slot,
    ok: bool,
}

pub(super) fn read_loop(state: &RunState, conn: &Conn, mut reader: FrameReader) -> Ledger {
    let cfg = &state.cfg;
    let mut ledger = Ledger::default();
    let mut answers: Vec<Response> = Vec::with_capacity(256);
    let mut answered: Vec<Answered> = Vec::with_capacity(256);
    let mut last_data = Instant::now();
    if let Err(e) = reader.set_read_timeout(Some(Duration::from_millis(50))) {
        state.ctl.fail(format!(
            "connection {}: cannot set a read timeout: {e}",
            conn.index
        ));
    }
    let protocol = ErrorCode::Protocol as u8;
    let failure: Option<String> = loop {
        if state.ctl.aborted() {
            break None;
        }
        let outcome = match reader.read_frames(|f| answers.push(Response::from_frame(&f))) {
            Ok(o) => o,
            Err(e) => break Some(e.to_string()),
        };
        let now = Instant::now();
        if outcome == ReadOutcome::Data {
            last_data = now;
        }
        // Match answers to frames.
        let mut fatal = None;
        let mut stray = 0u64;
        let (in_flight, writer_done) = {
            let mut w = conn.lock();
            for a in answers.drain(..) {
                match a {
                    Response::Ack { stream_id } | Response::Error { stream_id, .. }
                        if w.slots.contains_key(&stream_id) =>
                    {
                        let slot = w.slots.remove(&stream_id).expect("checked");
                        w.ids.release(stream_id);
                        let ok = match a {
                            Response::Error { code, message, .. } => {
                                state.errors.report(code, &message, cfg.print_errors);
                                if code == protocol {
                                    fatal = Some(format!(
                                        "broker reported a protocol error and closes the connection: {message}"
                                    ));
                                }
                                false
                            }
                            _ => true,
                        };
                        answered.push(Answered { slot, ok });
                    }
                    Response::Ack { stream_id } => {
                        stray += 1;
                        state.errors.report(
                            255,
                            &format!("harness: PRODUCE_RESPONSE on stream id {stream_id}, which has no frame in flight"),
                            cfg.print_errors,
                        )
                    }
                    Response::Error {
                        stream_id,
                        code,
                        message,
                    } => {
                        stray += 1;
                        state.errors.report(code, &message, cfg.print_errors);
                        if code == protocol || stream_id == 0 {
                            fatal = Some(format!(
                                "broker answered ERROR {} ({code}) on stream id {stream_id}: {message}",
                                code_name(code)
                            ));
                        }
                    }
                    Response::Ready { .. } => {}
                    Response::Other { stream_id, opcode } => {
                        stray += 1;
                        state.errors.report(
                            255,
                            &format!(
                                "harness: unexpected opcode {opcode} on stream id {stream_id}"
                            ),
                            cfg.print_errors,
                        )
                    }
                }
            }
            (w.slots.len(), w.writer_done)
        };
        if !answered.is_empty() {
            conn.freed.notify_all();
            conn.stats.with(|i| {
                for a in &answered {
                    if a.ok {
                        i.record_ack(
                            now.saturating_duration_since(a.slot.start),
                            a.slot.messages as u64,
                            a.slot.bytes,
                            now,
                        );
                    } else {
                        i.record_error(a.slot.messages as u64, now);
                    }
                }
            });
            if cfg.ledger {
                for a in answered.iter().filter(|a| a.ok) {
                    ledger.push(AckEntry {
                        frame: a.slot.frame,
                        key: a.slot.key,
                        messages: a.slot.messages,
                        first_message: a.slot.first_message,
                        connection: conn.index as u32,
                        sent: a.slot.start.saturating_duration_since(state.started),
                        acked: now.saturating_duration_since(state.started),
                    });
                }
            }
            answered.clear();
        }
        if stray > 0 {
            conn.stats
                .with(|i| (0..stray).for_each(|_| i.record_error(0, now)));
        }
        if in_flight == 0 {
            // Nothing is owed: silence is not a stall.
            last_data = now;
        }
        if let Some(f) = fatal {
            break Some(f);
        }
        if let Some(done) = writer_done {
            if in_flight == 0 {
                break None;
            }
            if (state.ctl.deadline().is_some() || state.ctl.interrupted())
                && now.saturating_duration_since(done) > cfg.drain_timeout
            {
                // A timed or interrupted run: what is still unanswered is reported, not
                // waited for forever.
                break None;
            }
        }
        if outcome == ReadOutcome::Eof {
            break Some(ClientError::Closed { in_flight }.to_string());
        }
        if in_flight > 0 && now.saturating_duration_since(last_data) > cfg.response_timeout {
            break Some(format!(
                "no answer from the broker for {:?} with {in_flight} frame(s) in flight",
                cfg.response_timeout
            ));
        }
    };
    if let Some(f) = failure {
        state.ctl.fail(format!("connection {}: {f}", conn.index));
    }
    conn.lock().closed = true;
    conn.freed.notify_all();
    ledger
}
