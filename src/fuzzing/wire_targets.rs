//! Targets for the framed protocol and what clients decode (the `shardlog-wire` codecs).
//! Each checks that what decodes re-encodes to the same value, and where the encoding is
//! unique, to the same bytes.

use crate::storage::chunk::{max_decoded_len, MAX_FRAME_LIMIT};
use crate::wire::commit::CommitBody;
use crate::wire::consumer::{ConsumerIdBody, PollBody, RegisterBody};
use crate::wire::error::ErrorBody;
use crate::wire::fetch::{FetchBody, FetchFrom};
use crate::wire::group::{GroupAnswer, GroupRequest};
use crate::wire::header::HEADER_LEN;
use crate::wire::poll::PollResponse;
use crate::wire::produce::{ProduceBody, ProduceLayout};
use crate::wire::reader::Reader;
use crate::wire::record::{Record, RecordIter};
use crate::wire::{payload, Flags, Frame, FrameHeader, OpCode};

use super::split_control;

/// The body limit the targets parse with: the broker's default `--max-frame-size`.
const MAX_BODY: u32 = 4 << 20;

/// A frame header: a parsed header re-encodes to exactly the 13 bytes read (the CRC covers
/// them all), and its body length is within the limit.
pub fn frame_header(data: &[u8]) {
    if let Ok(Some(h)) = FrameHeader::parse(data, MAX_BODY) {
        assert!(h.body_len <= MAX_BODY);
        assert_eq!(&h.encode()[..], &data[..HEADER_LEN]);
    }
    let _ = FrameHeader::peek_stream_id(data);
}

/// A byte stream of frames, as a connection reads it: each whole frame re-encodes to the bytes
/// it used, and its body goes to the decoder its opcode names.
pub fn frames(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((frame, used))) = Frame::parse(rest, MAX_BODY) {
        assert!(used >= HEADER_LEN && used <= rest.len());
        let mut again = Vec::new();
        frame.encode(&mut again);
        assert_eq!(&again[..], &rest[..used]);
        body(&frame);
        rest = &rest[used..];
    }
}

/// Decodes a frame's body as the broker (requests) or a client (answers) would.
fn body(frame: &Frame) {
    let Ok(op) = OpCode::from_u8(frame.header.opcode) else {
        return;
    };
    let b = frame.body;
    match op {
        OpCode::Startup => startup(b),
        OpCode::Produce => produce_with(b, frame.header.flags & Flags::WITH_TIMESTAMP != 0),
        OpCode::Register => register(b),
        OpCode::Poll => poll(b),
        OpCode::Commit => commit(b),
        OpCode::Goodbye => goodbye(b),
        OpCode::Fetch => fetch_with(b, frame.header.flags),
        OpCode::Error => error_body(b),
        OpCode::PollResponse => poll_response(b),
        OpCode::Group => group_request(b),
        OpCode::GroupAnswer => group_answer(b),
        OpCode::Ready | OpCode::ProduceResponse | OpCode::Heartbeat => {}
    }
}

/// A STARTUP body, as the server decodes it (an ordinary client's, or a forwarding broker's
/// with its option): a non-empty one that decodes re-encodes to itself.
pub fn startup(data: &[u8]) {
    if let Ok(s) = crate::wire::forward::Startup::decode(data) {
        if !data.is_empty() {
            let mut again = Vec::new();
            s.encode(&mut again);
            assert_eq!(again, data);
        }
    }
}

/// A PRODUCE body; the first input byte says whether the header had flag 0x01 (bit 0) or
/// 0x08 (bit 3: the producer compressed the records) and whether the body came on a
/// forwarding connection, with its head first (bit 1).
pub fn produce(data: &[u8]) {
    let (control, body) = split_control(data);
    let body = if control & 2 != 0 {
        let Ok((head, start)) = crate::wire::forward::ForwardedHead::decode(body) else {
            return;
        };
        assert_eq!(&head.encode()[..], &body[..start]);
        &body[start..]
    } else {
        body
    };
    if control & Flags::COMPRESSED != 0 {
        produce_compressed(body);
    } else {
        produce_with(body, control & 1 != 0);
    }
}

/// A compressed PRODUCE body, checked as the broker checks it before storing it: what passes
/// holds exactly the records it declares, within the limit, and decodes the same way every
/// reader of the stored chunk decodes it.
fn produce_compressed(body: &[u8]) {
    use crate::wire::produce_compressed::{verify, CompressedLayout};
    let Ok(l) = CompressedLayout::decode(body) else {
        return;
    };
    assert!(l.count >= 1 && l.payload_start <= body.len());
    assert!(l.key_start + l.key_len <= l.payload_start);
    let limit = 1 << 20;
    let mut scratch = Vec::new();
    if let Ok(v) = verify(l.payload(body), l.count, limit, &mut scratch) {
        assert_eq!(v.raw_len, scratch.len());
        assert!(v.raw_len <= limit);
        let records: Vec<_> = RecordIter::new(&scratch).collect();
        assert_eq!(records.len(), l.count as usize);
        let newest = records.iter().flatten().map(|r| r.timestamp_us).max();
        assert_eq!(newest, Some(v.max_timestamp_us));
        assert_eq!(
            payload::decode(l.payload(body), limit).as_deref(),
            Ok(&scratch[..])
        );
    }
}

fn produce_with(body: &[u8], with_timestamp: bool) {
    let Ok(p) = ProduceBody::decode(body, with_timestamp) else {
        return;
    };
    assert!(p.count >= 1);
    let mut again = Vec::new();
    p.encode(&mut again);
    assert_eq!(again, body);
    // The messages the iterator yields are the count declared, and lie inside the body.
    let mut n = 0u32;
    let mut total = 0usize;
    for m in p.iter() {
        n += 1;
        total += 4 + m.len();
    }
    assert_eq!(n, p.count);
    assert_eq!(total, p.messages.len());
    // The layout the broker keeps finds the same parts.
    let layout = ProduceLayout::decode(body, with_timestamp).expect("decoded once already");
    assert_eq!(layout.view(body), p);
    assert!(layout.messages_start <= body.len());
}

/// A REGISTER body: decode(encode(decoded)) is the decoded body.
pub fn register(data: &[u8]) {
    if let Ok(r) = RegisterBody::decode(data) {
        assert!(!r.topics.is_empty());
        let mut again = Vec::new();
        r.encode(&mut again);
        assert_eq!(RegisterBody::decode(&again).as_ref(), Ok(&r));
    }
}

/// A POLL body: re-encodes to itself.
pub fn poll(data: &[u8]) {
    if let Ok(p) = PollBody::decode(data) {
        let mut again = Vec::new();
        p.encode(&mut again);
        assert_eq!(again, data);
    }
}

/// A COMMIT body, with or without explicit positions: re-encodes to itself.
pub fn commit(data: &[u8]) {
    if let Ok(c) = CommitBody::decode(data) {
        let mut again = Vec::new();
        c.encode(&mut again);
        assert_eq!(again, data);
        if let Some(ps) = &c.positions {
            assert!(ps.iter().all(|p| p.offset >= 0));
        }
    }
}

/// A GROUP body (broker to broker): what decodes re-encodes to bytes that decode to it.
pub fn group_request(data: &[u8]) {
    if let Ok(r) = GroupRequest::decode(data) {
        let mut again = Vec::new();
        r.encode(&mut again);
        assert_eq!(GroupRequest::decode(&again).as_ref(), Ok(&r));
    }
}

/// A GROUP_ANSWER body, as the asking broker reads it: re-encodes to bytes that decode to it.
pub fn group_answer(data: &[u8]) {
    if let Ok(a) = GroupAnswer::decode(data) {
        let mut again = Vec::new();
        a.encode(&mut again);
        assert_eq!(GroupAnswer::decode(&again).as_ref(), Ok(&a));
    }
}

/// A GOODBYE body (a consumer id alone): re-encodes to itself.
pub fn goodbye(data: &[u8]) {
    if let Ok(g) = ConsumerIdBody::decode(data, "GOODBYE") {
        let mut again = Vec::new();
        g.encode(&mut again);
        assert_eq!(again, data);
    }
}

/// A FETCH body; the first input byte is its header's flags (0x02: by time). Re-encodes to
/// itself, with the same by-time flag.
pub fn fetch(data: &[u8]) {
    let (control, body) = split_control(data);
    fetch_with(body, control);
}

fn fetch_with(body: &[u8], flags: u8) {
    if let Ok(f) = FetchBody::decode(body, flags) {
        if let FetchFrom::Offset(offset) = f.from {
            assert!(offset >= 0);
        }
        assert_eq!(f.flags(), flags & Flags::BY_TIME);
        let mut again = Vec::new();
        f.encode(&mut again);
        assert_eq!(again, body);
    }
}

/// An ERROR body, as a client reads it (the message lossily decoded for display).
pub fn error_body(data: &[u8]) {
    if let Ok(e) = ErrorBody::decode(data) {
        let _ = e.error_code();
        if std::str::from_utf8(&data[1..]).is_ok() {
            let mut again = Vec::new();
            e.encode(&mut again);
            assert_eq!(again, data);
        }
    }
}

/// A binary poll response, as the client decodes it: items re-encode to the input, every
/// payload lies inside it, and each payload's records decode within the bound.
pub fn poll_response(data: &[u8]) {
    let Ok(resp) = PollResponse::decode(data) else {
        return;
    };
    let mut again = Vec::new();
    resp.encode(&mut again);
    assert_eq!(again, data);
    for item in &resp.items {
        assert_eq!(item.payload.len(), item.header.payload_len as usize);
        decode_records(item.payload);
    }
}

/// Decompresses a payload (bounded as the broker bounds a chunk it wrote) and walks its records.
fn decode_records(p: &[u8]) {
    let limit = max_decoded_len(None, MAX_FRAME_LIMIT);
    if let Ok(raw) = payload::decode(p, limit) {
        assert!(raw.len() <= limit);
        records_of(&raw);
    }
}

/// A record layout as found in a decompressed payload: every record decoded lies inside the
/// input and re-encodes to its bytes. The first input byte chooses whether the rest is a
/// compressed payload (odd) or already decompressed records (even).
pub fn records(data: &[u8]) {
    let (control, rest) = split_control(data);
    if control & 1 == 1 {
        decode_records(rest);
    } else {
        records_of(rest);
    }
}

fn records_of(raw: &[u8]) {
    let mut used = 0usize;
    for r in RecordIter::new(raw) {
        let Ok(r) = r else { break };
        let mut again = Vec::new();
        r.encode(&mut again);
        assert_eq!(&again[..], &raw[used..used + again.len()]);
        used += again.len();
    }
    assert!(used <= raw.len());
    // The single-record reader agrees with the iterator on the first record.
    let mut reader = Reader::new(raw);
    if let Ok(first) = Record::decode_from(&mut reader) {
        assert_eq!(reader.position(), 12 + first.body.len());
    }
}
