//! Every bad input on the framed port gets an ERROR frame with a clear message; the broker
//! keeps serving, and nothing acknowledged before is affected.

mod common;

use common::{read_topic, Broker, Client, Response};
use shardlog::wire::frame::{encode_frame, OpCode};
use shardlog::wire::header::FrameHeader;

fn expect_error(r: Option<Response>, sid: u16, code: u8, needle: &str) {
    match r {
        Some(Response::Error {
            stream_id,
            code: c,
            message,
        }) => {
            assert_eq!(stream_id, sid, "{message}");
            assert_eq!(c, code, "{message}");
            assert!(
                message.to_lowercase().contains(needle),
                "'{message}' should mention '{needle}'"
            );
        }
        other => panic!("expected ERROR, got {other:?}"),
    }
}

/// The connection still works: a valid produce is acknowledged.
fn still_serving(c: &mut Client, sid: u16) {
    assert_eq!(c.produce(sid, b"k", &[b"ok"]), Response::Produced(sid));
}

#[test]
fn recoverable_errors_keep_the_connection() {
    let mut broker = Broker::start(1);
    let mut c = Client::connect(broker.framed);

    // PRODUCE before STARTUP.
    c.send_produce(1, b"k", &[b"x"]);
    expect_error(c.recv(), 1, 4, "startup");

    // Invalid topic names.
    c.send_frame(OpCode::Startup, 2, b"\x03a/b");
    expect_error(c.recv(), 2, 4, "topic");
    c.send_frame(OpCode::Startup, 3, b"\x09abc");
    expect_error(c.recv(), 3, 4, "topic");

    c.send_startup(4, "good");
    assert_eq!(c.recv(), Some(Response::Ready(4)));
    still_serving(&mut c, 5);

    // Unknown opcode.
    c.send_raw(
        &FrameHeader {
            version: 1,
            flags: 0,
            stream_id: 6,
            opcode: 99,
            body_len: 0,
        }
        .encode(),
    );
    expect_error(c.recv(), 6, 4, "opcode");
    // A client sending a response opcode.
    c.send_frame(OpCode::Ready, 7, b"");
    expect_error(c.recv(), 7, 4, "opcode");

    // A frame with no messages.
    c.send_frame(OpCode::Produce, 8, b"\x00");
    expect_error(c.recv(), 8, 4, "no messages");
    // A message length running past the body.
    c.send_frame(OpCode::Produce, 9, b"\x00\x00\x00\x00\x10abc");
    expect_error(c.recv(), 9, 4, "message 0");
    // A key running past the body.
    c.send_frame(OpCode::Produce, 10, b"\x20ab");
    expect_error(c.recv(), 10, 4, "key");
    // Timestamp flag without a timestamp.
    let mut b = Vec::new();
    encode_frame(&mut b, OpCode::Produce, 1, 11, b"\x00\x00");
    c.send_raw(&b);
    expect_error(c.recv(), 11, 4, "timestamp");

    // HEARTBEAT is answered with READY.
    c.send_frame(OpCode::Heartbeat, 12, b"");
    assert_eq!(c.recv(), Some(Response::Ready(12)));
    still_serving(&mut c, 13);
    broker.kill9();
    let stored = read_topic(&broker.data_dir, "good");
    assert_eq!(stored.len(), 2, "only the two valid messages were stored");
}

#[test]
fn framing_errors_answer_then_close() {
    let mut broker = Broker::start_with(2, &["--max-frame-size", "64KiB"]);
    let mut keeper = Client::startup(broker.framed, "t");
    still_serving(&mut keeper, 1);

    // Bad head CRC.
    let mut c = Client::startup(broker.framed, "t");
    let mut h = FrameHeader {
        version: 1,
        flags: 0,
        stream_id: 21,
        opcode: 4,
        body_len: 3,
    }
    .encode();
    h[12] ^= 0xff;
    c.send_raw(&h);
    expect_error(c.recv(), 21, 3, "crc");
    assert_eq!(c.recv(), None, "connection closed");

    // Unsupported version.
    let mut c = Client::startup(broker.framed, "t");
    c.send_raw(
        &FrameHeader {
            version: 2,
            flags: 0,
            stream_id: 22,
            opcode: 4,
            body_len: 0,
        }
        .encode(),
    );
    expect_error(c.recv(), 22, 3, "version");
    assert_eq!(c.recv(), None);

    // Oversized body: refused from the header alone, before the body is sent.
    let mut c = Client::startup(broker.framed, "t");
    c.send_raw(
        &FrameHeader {
            version: 1,
            flags: 0,
            stream_id: 23,
            opcode: 4,
            body_len: 65537,
        }
        .encode(),
    );
    expect_error(c.recv(), 23, 3, "maximum frame size");
    assert_eq!(c.recv(), None);

    // Garbage bytes.
    let mut c = Client::connect(broker.framed);
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    match c.recv() {
        Some(Response::Error { code: 3, .. }) => {}
        other => panic!("expected a protocol error, got {other:?}"),
    }

    // Half a frame then hang up: nothing stored, broker fine.
    let mut c = Client::startup(broker.framed, "t");
    c.send_raw(
        &FrameHeader {
            version: 1,
            flags: 0,
            stream_id: 24,
            opcode: 4,
            body_len: 100,
        }
        .encode(),
    );
    c.send_raw(b"\x00\x00\x00");
    drop(c);

    // The first connection and the broker are unaffected.
    still_serving(&mut keeper, 2);
    assert!(broker.is_running());
    broker.kill9();
    assert_eq!(read_topic(&broker.data_dir, "t").len(), 2);
}

#[test]
fn startup_with_empty_body_means_default_topic() {
    let mut broker = Broker::start(1);
    let mut c = Client::connect(broker.framed);
    c.send_frame(OpCode::Startup, 0, b"");
    assert_eq!(c.recv(), Some(Response::Ready(0)));
    still_serving(&mut c, 1);
    broker.kill9();
    assert_eq!(read_topic(&broker.data_dir, "default").len(), 1);
}
