use super::*;
use crate::wire::record::{encode_record, Record};

/// A batch as the shard builds it: per message an 8-byte timestamp, then `len | body` taken
/// from the network frame.
struct Pieces {
    ts: Vec<[u8; 8]>,
    msgs: Vec<Vec<u8>>,
}

impl Pieces {
    fn new(n: usize, body_len: usize, seed: u64) -> Pieces {
        let mut ts = Vec::new();
        let mut msgs = Vec::new();
        for i in 0..n {
            ts.push((1_700_000_000_000_000i64 + i as i64).to_be_bytes());
            // JSON-ish log lines with some entropy: compress ~3-5x, like real logs.
            let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
            let mut pad = String::new();
            while pad.len() < body_len.saturating_sub(60) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                pad.push_str(["GET /api/", "user=", "ok ", "200 "][(x % 4) as usize]);
                pad.push_str(&format!("{:x}", x % 4096));
            }
            let body = format!(
                "{{\"seq\":{i},\"seed\":{seed},\"user\":\"user-{}\",\"pad\":\"{pad}\"}}",
                (i as u64 * 2654435761 + seed) % 1000,
            );
            let mut m = (body.len() as u32).to_be_bytes().to_vec();
            m.extend_from_slice(body.as_bytes());
            msgs.push(m);
        }
        Pieces { ts, msgs }
    }

    fn contiguous(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.for_each_piece(&mut |p| v.extend_from_slice(p));
        v
    }
}

impl RecordBatch for Pieces {
    fn record_count(&self) -> u32 {
        self.msgs.len() as u32
    }
    fn max_timestamp_us(&self) -> i64 {
        self.ts
            .iter()
            .map(|t| i64::from_be_bytes(*t))
            .max()
            .unwrap_or(i64::MIN)
    }
    fn raw_len(&self) -> usize {
        self.msgs.iter().map(|m| m.len() + 8).sum()
    }
    fn for_each_piece(&self, f: &mut dyn FnMut(&[u8])) {
        for (t, m) in self.ts.iter().zip(&self.msgs) {
            f(t);
            f(m);
        }
    }
}

#[test]
fn header_round_trip_and_crc_layout() {
    let h = ChunkHeader::new(0x0102_0304, 0x1122_3344_5566_7788, 9);
    let mut b = [0u8; HEADER_LEN];
    h.encode(&mut b);
    assert_eq!(
        &b[..17],
        &[0, 1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 9]
    );
    assert_eq!(&b[17..], &crc32fast::hash(&b[..17]).to_be_bytes());
    assert_eq!(ChunkHeader::parse(&b).unwrap(), Some(h));
    assert_eq!(ChunkHeader::parse(&b[..20]).unwrap(), None);
    for i in 0..HEADER_LEN {
        let mut bad = b;
        bad[i] ^= 0x10;
        assert!(matches!(
            ChunkHeader::parse(&bad),
            Err(ChunkError::HeadCrcMismatch { .. })
        ));
    }
}

#[test]
fn encode_pads_with_0x80_and_decodes_back() {
    let batch = Pieces::new(50, 100, 1);
    let mut enc = ChunkEncoder::new(3).unwrap();
    let mut out = vec![0u8; ChunkEncoder::max_encoded_len(batch.raw_len())];
    let (h, padded) = enc.encode(42, &batch, &mut out).unwrap();
    assert_eq!(padded as u64 % ALIGNMENT, 0);
    assert_eq!(padded as u64, h.padded_len());
    assert_eq!((h.flags, h.start_offset, h.record_count), (0, 42, 50));
    assert_eq!(ChunkHeader::parse(&out).unwrap(), Some(h));
    let end = h.unpadded_len() as usize;
    assert!(out[end..padded].iter().all(|&b| b == FLAG_ALIGNMENT));
    let payload = &out[HEADER_LEN..end];
    assert_eq!(decode_chunk_records(payload).unwrap(), batch.contiguous());
    assert_eq!(
        verify_chunk(&h, payload, MAX_FRAME_LIMIT).unwrap(),
        1_700_000_000_000_049
    );
    let records = decode_chunk_records(payload).unwrap();
    let recs: Vec<Record> = RecordIter::new(&records).map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 50);
    assert_eq!(recs[3].timestamp_us, 1_700_000_000_000_003);
}

#[test]
fn encoder_is_reused_for_many_chunks_of_all_sizes() {
    let mut enc = ChunkEncoder::new(1).unwrap();
    let mut out = Vec::new();
    // Sizes from one tiny record to batches past the 1 MiB staging limit (streamed).
    for round in 0..40u64 {
        let (n, body) = match round {
            0 => (1, 0),
            1 => (300, 4000),
            _ => (
                1 + (round as usize * 37) % 200,
                (round as usize * 131) % 3000,
            ),
        };
        let batch = Pieces::new(n, body, round);
        out.resize(ChunkEncoder::max_encoded_len(batch.raw_len()), 0);
        let (h, _) = enc.encode(round as i64 * 1000, &batch, &mut out).unwrap();
        let payload = &out[HEADER_LEN..h.unpadded_len() as usize];
        assert_eq!(decode_chunk_records(payload).unwrap(), batch.contiguous());
        verify_chunk(&h, payload, MAX_FRAME_LIMIT).unwrap();
    }
}

#[test]
fn bad_payloads_are_refused() {
    let mut rb = RecordBuf::default();
    rb.push(1, b"hello");
    rb.push(2, b"world");
    let mut enc = ChunkEncoder::new(3).unwrap();
    let mut out = vec![0u8; ChunkEncoder::max_encoded_len(rb.raw_len())];
    let (h, _) = enc.encode(0, &rb, &mut out).unwrap();
    let payload = out[HEADER_LEN..h.unpadded_len() as usize].to_vec();
    for i in 0..payload.len() {
        let mut bad = payload.clone();
        bad[i] ^= 0x01;
        assert!(
            verify_chunk(&h, &bad, MAX_FRAME_LIMIT).is_err(),
            "flip at {i} accepted"
        );
    }
    let wrong = ChunkHeader::new(h.length, 0, 3);
    assert!(matches!(
        verify_chunk(&wrong, &payload, MAX_FRAME_LIMIT),
        Err(ChunkError::RecordCount { .. })
    ));
    let plain = zstd::bulk::compress(&rb.bytes, 3).unwrap();
    assert_eq!(
        decode_chunk_records(&plain),
        Err(ChunkError::BadFrame("no content checksum"))
    );
    assert_eq!(
        enc.encode(0, &RecordBuf::default(), &mut out),
        Err(ChunkError::Empty)
    );
}

#[test]
fn record_buf_matches_wire_record_encoding() {
    let mut rb = RecordBuf::default();
    rb.push(7, b"abc");
    let mut v = Vec::new();
    encode_record(7, b"abc", &mut v);
    assert_eq!(rb.bytes, v);
}

/// `cargo test --release --lib bench_encoder -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_encoder() {
    use std::time::Instant;
    for (n, body) in [(16, 100), (1000, 200), (4000, 100), (200, 2000)] {
        let batches: Vec<Pieces> = (0..8).map(|s| Pieces::new(n, body, s)).collect();
        let raw: usize = batches.iter().map(|b| b.raw_len()).sum();
        let iters = (64 << 20) / raw + 1;
        let mut out = vec![0u8; ChunkEncoder::max_encoded_len(raw)];
        let level = 1;
        let mut cctx = CCtx::create();
        cctx.set_parameter(CParameter::ChecksumFlag(true)).unwrap();
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .unwrap();
        let flat: Vec<Vec<u8>> = batches.iter().map(|b| b.contiguous()).collect();
        let t = Instant::now();
        for _ in 0..iters {
            for f in &flat {
                cctx.compress2(&mut out[..], f).unwrap();
            }
        }
        let one_shot = t.elapsed();
        let mut enc = ChunkEncoder::new(level).unwrap();
        let t = Instant::now();
        for _ in 0..iters {
            for b in &batches {
                enc.encode(0, b, &mut out).unwrap();
            }
        }
        let staged = t.elapsed();
        // Feeding every piece straight into the stream.
        let t = Instant::now();
        for _ in 0..iters {
            for b in &batches {
                cctx.reset(zstd_safe::ResetDirective::SessionOnly).unwrap();
                cctx.set_pledged_src_size(Some(b.raw_len() as u64)).unwrap();
                let mut o = OutBuffer::around(&mut out[..]);
                b.for_each_piece(&mut |p| {
                    let mut i = InBuffer::around(p);
                    while i.pos() < p.len() {
                        cctx.compress_stream2(&mut o, &mut i, ZSTD_EndDirective::ZSTD_e_continue)
                            .unwrap();
                    }
                });
                let mut i = InBuffer::around(&[]);
                while cctx
                    .compress_stream2(&mut o, &mut i, ZSTD_EndDirective::ZSTD_e_end)
                    .unwrap()
                    != 0
                {}
            }
        }
        let direct = t.elapsed();
        let mbs = |d: std::time::Duration| (raw * iters) as f64 / d.as_secs_f64() / 1e6;
        println!(
            "{n} msgs x {body} B: one-shot {:.0} MB/s, staged {:.0} MB/s ({:.0}%), direct pieces {:.0} MB/s ({:.0}%)",
            mbs(one_shot),
            mbs(staged),
            100.0 * mbs(staged) / mbs(one_shot),
            mbs(direct),
            100.0 * mbs(direct) / mbs(one_shot),
        );
    }
}

/// A zstd frame of RLE blocks with a content checksum and no declared content size:
/// `blocks` × 128 KiB of zeros from 4 bytes per block. The checksum is left wrong (0): a
/// decoder only finds out after producing the whole output.
fn rle_bomb(blocks: usize) -> Vec<u8> {
    // Magic, frame header descriptor (checksum flag, no content size, not single segment),
    // window descriptor (128 KiB).
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x38];
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = (128u32 << 10) << 3 | 1 << 1 | last;
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        f.push(0);
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f
}

#[test]
fn decompression_bomb_is_refused() {
    // 64 MiB from 2 KiB.
    let bomb = rle_bomb(512);
    assert!(bomb.len() < 4 << 10);
    assert!(matches!(zstd_safe::get_frame_content_size(&bomb), Ok(None)));
    assert_eq!(
        decode_payload(&bomb, 1 << 20),
        Err(ChunkError::TooLarge { limit: 1 << 20 })
    );
    // Under a bound it fits, the frame decodes to its end and fails the checksum: the bound,
    // not zstd, is what refused it above.
    assert!(matches!(
        decode_payload(&bomb, 128 << 20),
        Err(ChunkError::Zstd(_))
    ));
    // A frame that declares its size beyond the bound is refused before decoding.
    let mut raw = Vec::new();
    encode_record(1, &vec![0u8; 8 << 20], &mut raw);
    let mut c = zstd::bulk::Compressor::new(1).unwrap();
    c.include_checksum(true).unwrap();
    let declared = c.compress(&raw).unwrap();
    assert!(matches!(
        zstd_safe::get_frame_content_size(&declared),
        Ok(Some(n)) if n == raw.len() as u64
    ));
    let limit = max_decoded_len(Some(1), 4 << 20);
    assert_eq!(
        decode_payload(&declared, limit),
        Err(ChunkError::TooLarge { limit })
    );
    assert_eq!(decode_payload(&declared, raw.len()).unwrap(), raw);
    assert_eq!(
        decode_payload(&declared, raw.len() - 1),
        Err(ChunkError::TooLarge {
            limit: raw.len() - 1
        })
    );
}

#[test]
fn tiny_limits_are_refused_not_a_panic() {
    assert_eq!(
        decode_payload(&rle_bomb(1), 10),
        Err(ChunkError::TooLarge { limit: 10 })
    );
    assert_eq!(
        decode_payload(&rle_bomb(1), 0),
        Err(ChunkError::TooLarge { limit: 0 })
    );
}

#[test]
fn truncated_streamed_frame_is_refused() {
    let bomb = rle_bomb(4);
    assert!(decode_payload(&bomb[..bomb.len() - 6], 1 << 20).is_err());
}

/// Streams `raw` into a frame with a checksum and no declared content size.
fn streamed(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    e.include_checksum(true).unwrap();
    e.include_contentsize(false).unwrap();
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

#[test]
fn largest_chunks_the_broker_writes_still_decode() {
    let max_frame = 1 << 20;
    // One frame of max_frame bytes of empty messages (4 bytes each in the frame, 12 as
    // records): the most records, and the most bytes, a one-frame chunk holds.
    let count = (max_frame / 4) as u32;
    let mut rb = RecordBuf::default();
    for _ in 0..count {
        rb.push(1, b"");
    }
    assert_eq!(rb.bytes.len(), 3 * max_frame);
    // One frame of one message as large as the frame allows.
    let mut big = RecordBuf::default();
    big.push(1, &vec![7u8; max_frame - 4]);
    // Several frames filling a group-commit chunk to MAX_CHUNK_RAW.
    let mut full = RecordBuf::default();
    while full.bytes.len() + 12 + 100 <= MAX_CHUNK_RAW {
        full.push(1, &[b'x'; 100]);
    }
    let mut enc = ChunkEncoder::new(1).unwrap();
    for rb in [&rb, &big, &full] {
        let mut out = vec![0u8; ChunkEncoder::max_encoded_len(rb.raw_len())];
        let (h, _) = enc.encode(0, rb, &mut out).unwrap();
        let payload = &out[HEADER_LEN..h.unpadded_len() as usize];
        let limit = max_decoded_len(Some(h.record_count), max_frame);
        assert_eq!(decode_payload(payload, limit).unwrap(), rb.bytes);
        // Also without the record count (the JSON poll renderer) and with no declared size.
        let limit = max_decoded_len(None, max_frame);
        assert_eq!(
            decode_payload(&streamed(&rb.bytes), limit).unwrap(),
            rb.bytes
        );
        verify_chunk(&h, payload, max_frame).unwrap();
    }
}

#[test]
fn verify_refuses_a_bomb_under_the_frame_limit() {
    // 64 MiB from 2 KiB, declared as one record: far more than one 1 MiB frame holds.
    let bomb = rle_bomb(512);
    let h = ChunkHeader::new(bomb.len() as u32, 0, 1);
    let limit = max_decoded_len(Some(1), 1 << 20);
    assert_eq!(
        verify_chunk(&h, &bomb, 1 << 20),
        Err(ChunkError::TooLarge { limit })
    );
}

#[test]
fn trim_front_keeps_the_records_from_an_offset() {
    use crate::wire::record::encode_record;
    let mut raw = Vec::new();
    for i in 0..10i64 {
        encode_record(1_000 + i, format!("record {i}").as_bytes(), &mut raw);
    }
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    enc.include_checksum(true).unwrap();
    std::io::Write::write_all(&mut enc, &raw).unwrap();
    let chunk = StoredChunk {
        start_offset: 100,
        record_count: 10,
        payload: bytes::Bytes::from(enc.finish().unwrap()),
    };
    let t = trim_front(&chunk, 103, 1, 1 << 20).unwrap();
    assert_eq!((t.start_offset, t.record_count), (103, 7));
    let records = decode_payload(&t.payload, 1 << 20).unwrap();
    let bodies: Vec<(i64, String)> = RecordIter::new(&records)
        .map(|r| {
            let r = r.unwrap();
            (r.timestamp_us, String::from_utf8(r.body.to_vec()).unwrap())
        })
        .collect();
    assert_eq!(bodies.len(), 7);
    assert_eq!(bodies[0], (1_003, "record 3".to_string()));
    assert_eq!(bodies[6], (1_009, "record 9".to_string()));
    // Only an offset strictly inside the chunk can be trimmed to.
    for from in [99, 100, 110, 111] {
        assert!(trim_front(&chunk, from, 1, 1 << 20).is_err(), "{from}");
    }
}

/// A batch of plain record runs and producer-compressed frames, in order.
struct Mixed {
    parts: Vec<(bool, Vec<u8>)>,
    count: u32,
}

impl RecordBatch for Mixed {
    fn record_count(&self) -> u32 {
        self.count
    }
    fn max_timestamp_us(&self) -> i64 {
        0
    }
    fn raw_len(&self) -> usize {
        self.parts.iter().filter(|p| !p.0).map(|p| p.1.len()).sum()
    }
    fn for_each_piece(&self, f: &mut dyn FnMut(&[u8])) {
        for (_, p) in self.parts.iter().filter(|p| !p.0) {
            f(p);
        }
    }
    fn compressed_len(&self) -> (usize, usize) {
        let c = self.parts.iter().filter(|p| p.0);
        (c.clone().map(|p| p.1.len()).sum(), c.count())
    }
    fn for_each_part(&self, f: &mut dyn FnMut(Part<'_>)) {
        for (compressed, p) in &self.parts {
            f(if *compressed {
                Part::Compressed(p)
            } else {
                Part::Records(p)
            });
        }
    }
}

#[test]
fn producer_compressed_frames_are_stored_as_they_came_in_offset_order() {
    let rec = |i: u32| {
        let mut r = Vec::new();
        encode_record(i64::from(i), format!("record {i}").as_bytes(), &mut r);
        r
    };
    let frame_of = |range: std::ops::Range<u32>| {
        let raw: Vec<u8> = range.flat_map(rec).collect();
        zstd::bulk::Compressor::new(-3)
            .and_then(|mut c| {
                c.include_checksum(true)?;
                c.compress(&raw)
            })
            .unwrap()
    };
    // records 0..3 plain, 3..6 compressed, 6..7 plain, 7..9 and 9..10 compressed back to back.
    let shapes: Vec<Vec<(bool, Vec<u8>)>> = vec![
        vec![
            (false, (0..3).flat_map(rec).collect()),
            (true, frame_of(3..6)),
            (false, rec(6)),
            (true, frame_of(7..9)),
            (true, frame_of(9..10)),
        ],
        vec![(true, frame_of(0..10))],
    ];
    let expected: Vec<u8> = (0..10).flat_map(rec).collect();
    let mut enc = ChunkEncoder::new(1).unwrap();
    for parts in shapes {
        let batch = Mixed { parts, count: 10 };
        let mut out = vec![0u8; ChunkEncoder::max_encoded_len_of(&batch)];
        let (h, _) = enc.encode(100, &batch, &mut out).unwrap();
        let payload = &out[HEADER_LEN..h.unpadded_len() as usize];
        assert_eq!(decode_chunk_records(payload).unwrap(), expected);
        verify_chunk(&h, payload, MAX_FRAME_LIMIT).unwrap();
        // The producer's frames are in the payload byte for byte.
        for (_, p) in batch.parts.iter().filter(|p| p.0) {
            assert!(payload.windows(p.len()).any(|w| w == &p[..]));
        }
    }
    // Pieces that do not add up to raw_len are refused, and the encoder still works after.
    let lying = Mixed {
        parts: vec![(true, frame_of(0..2))],
        count: 2,
    };
    struct Short(Mixed);
    impl RecordBatch for Short {
        fn record_count(&self) -> u32 {
            self.0.count
        }
        fn max_timestamp_us(&self) -> i64 {
            0
        }
        fn raw_len(&self) -> usize {
            5
        }
        fn for_each_piece(&self, _: &mut dyn FnMut(&[u8])) {}
        fn compressed_len(&self) -> (usize, usize) {
            self.0.compressed_len()
        }
        fn for_each_part(&self, f: &mut dyn FnMut(Part<'_>)) {
            self.0.for_each_part(f)
        }
    }
    let short = Short(lying);
    let mut out = vec![0u8; ChunkEncoder::max_encoded_len_of(&short)];
    assert!(matches!(
        enc.encode(0, &short, &mut out),
        Err(ChunkError::BadRecord(_))
    ));
    let batch = Pieces::new(5, 50, 2);
    let mut out = vec![0u8; ChunkEncoder::max_encoded_len(batch.raw_len())];
    enc.encode(0, &batch, &mut out).unwrap();
}

/// A level set on a used encoder compresses exactly as a fresh encoder at that level (the
/// adaptive level moves a shard's one encoder between levels), and its work is accounted.
#[test]
fn a_changed_level_compresses_as_a_fresh_encoder_at_that_level() {
    for n in [64, 900, 2000] {
        changed_level_case(Pieces::new(n, 1000, 7));
    }
}

fn changed_level_case(batch: Pieces) {
    let mut out = vec![0u8; ChunkEncoder::max_encoded_len(batch.raw_len())];
    let mut encode = |enc: &mut ChunkEncoder| {
        let (h, _) = enc.encode(0, &batch, &mut out).unwrap();
        let payload = out[HEADER_LEN..h.unpadded_len() as usize].to_vec();
        assert_eq!(decode_chunk_records(&payload).unwrap(), batch.contiguous());
        payload
    };
    let mut moving = ChunkEncoder::new(3).unwrap();
    encode(&mut moving);
    for level in [-3, -1, 1, 3, 7, 1] {
        moving.set_level(level).unwrap();
        assert_eq!(moving.level(), level);
        let fresh = encode(&mut ChunkEncoder::new(level).unwrap());
        let moved = encode(&mut moving);
        eprintln!(
            "{} raw, level {level}: fresh {} moved {}",
            batch.raw_len(),
            fresh.len(),
            moved.len()
        );
        assert_eq!(moved, fresh, "level {level}");
    }
    let work = moving.take_work();
    assert_eq!(work.raw_bytes, 7 * batch.raw_len() as u64);
    assert!(work.nanos > 0);
    assert_eq!(moving.take_work(), CompressWork::default());
}
