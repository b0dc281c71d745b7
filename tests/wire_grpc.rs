//! The gRPC message decoder on its own (no broker): messages split across chunks at every
//! byte position, several messages in one chunk, limits.

use bytes::Bytes;
use shardlog::wire::grpc::{encode, MessageDecoder, OwnedMessage};
use shardlog::wire::WireError;

fn stream_of(bodies: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::new();
    for m in bodies {
        encode(m, &mut b);
    }
    b
}

/// Feeds `chunks` to a decoder, collecting the messages.
fn decode(chunks: &[&[u8]], max: u32) -> Result<(Vec<OwnedMessage>, usize), WireError> {
    let mut d = MessageDecoder::new(max);
    let mut out = Vec::new();
    for c in chunks {
        d.push(Bytes::copy_from_slice(c));
        while let Some(m) = d.next_message()? {
            out.push(m);
        }
    }
    Ok((out, d.pending()))
}

#[test]
fn every_single_split_position() {
    let bodies: [&[u8]; 4] = [b"first message", b"", b"x", &[7u8; 300]];
    let all = stream_of(&bodies);
    for cut in 0..=all.len() {
        let (msgs, pending) = decode(&[&all[..cut], &all[cut..]], 1024).unwrap();
        assert_eq!(pending, 0, "cut at {cut}");
        let got: Vec<&[u8]> = msgs.iter().map(|m| &m.body[..]).collect();
        assert_eq!(got, bodies, "cut at {cut}");
        assert!(msgs.iter().all(|m| !m.compressed));
    }
}

#[test]
fn every_pair_of_split_positions() {
    let bodies: [&[u8]; 3] = [b"alpha", b"bravo charlie", b""];
    let all = stream_of(&bodies);
    for a in 0..=all.len() {
        for b in a..=all.len() {
            let (msgs, pending) = decode(&[&all[..a], &all[a..b], &all[b..]], 64).unwrap();
            assert_eq!(pending, 0, "cuts at {a}, {b}");
            let got: Vec<&[u8]> = msgs.iter().map(|m| &m.body[..]).collect();
            assert_eq!(got, bodies, "cuts at {a}, {b}");
        }
    }
}

#[test]
fn one_byte_at_a_time() {
    let bodies: [&[u8]; 2] = [b"hello", b"world!"];
    let all = stream_of(&bodies);
    let chunks: Vec<&[u8]> = all.chunks(1).collect();
    let (msgs, pending) = decode(&chunks, 64).unwrap();
    assert_eq!(pending, 0);
    assert_eq!(msgs.len(), 2);
    assert_eq!(&msgs[1].body[..], b"world!");
}

#[test]
fn incomplete_stream_leaves_bytes_pending() {
    let all = stream_of(&[b"abcdef"]);
    for cut in 1..all.len() {
        let (msgs, pending) = decode(&[&all[..cut]], 64).unwrap();
        assert!(msgs.is_empty());
        assert_eq!(pending, cut);
    }
}

#[test]
fn oversized_message_is_refused_from_its_prefix() {
    let all = stream_of(&[&[0u8; 100]]);
    // Only the prefix has arrived: already refused.
    for cut in 5..all.len() {
        let err = decode(&[&all[..cut]], 99).unwrap_err();
        assert_eq!(err, WireError::GrpcMessageTooLarge { len: 100, max: 99 });
    }
    // Split inside the prefix: refused once the prefix is whole.
    assert!(decode(&[&all[..3], &all[3..]], 99).is_err());
    assert!(decode(&[&all[..]], 100).is_ok());
}

#[test]
fn compressed_flag_is_reported() {
    let (msgs, _) = decode(&[b"\x01\0\0\0\x02", b"hi"], 64).unwrap();
    assert!(msgs[0].compressed);
    assert_eq!(
        decode(&[b"\x05\0\0\0\0"], 64).unwrap_err(),
        WireError::GrpcBadFlag(5)
    );
}
