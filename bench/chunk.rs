//! Chunk building: what the group-commit writer pays per chunk — gathering the records, one
//! zstd compression (with content checksum) at the broker's level, the head CRC and padding —
//! next to plain one-shot zstd of the same bytes, the yardstick; and what the broker pays
//! instead for a frame a producer compressed (PRODUCE flag 0x08): `verify`, one bounded
//! decompression with the checksum and a walk of the records.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::storage::{ChunkEncoder, RecordBuf};

/// `n` JSON-like 1 KiB messages, about half random (like the perf harness's payloads).
fn records(n: usize) -> RecordBuf {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand_hex = |len: usize| -> String {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b"0123456789abcdef"[(seed % 16) as usize] as char
            })
            .collect()
    };
    let mut b = RecordBuf::default();
    for i in 0..n {
        let mut msg = format!(
            "{{\"event_id\":\"{}\",\"user\":\"user-{}\",\"type\":\"page_view\",\"session\":\"{}\",\"payload\":\"{}\"}}",
            rand_hex(32),
            i % 1000,
            rand_hex(24),
            rand_hex(400)
        );
        while msg.len() < 1024 {
            msg.push_str(" the quick brown fox jumps over the lazy dog");
        }
        msg.truncate(1024);
        b.push(1_700_000_000_000_000 + i as i64, msg.as_bytes());
    }
    b
}

fn chunk_building(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_building_level_1");
    for n in [64usize, 1024] {
        let batch = records(n);
        g.throughput(Throughput::Elements(n as u64));
        let mut encoder = ChunkEncoder::new(1).unwrap();
        let mut out = vec![0u8; ChunkEncoder::max_encoded_len(batch.bytes.len())];
        g.bench_with_input(BenchmarkId::new("chunk_encoder", n), &batch, |b, batch| {
            b.iter(|| encoder.encode(0, black_box(batch), &mut out).unwrap().1)
        });
        let mut raw = zstd::bulk::Compressor::new(1).unwrap();
        raw.include_checksum(true).unwrap();
        let mut dst = vec![0u8; zstd::zstd_safe::compress_bound(batch.bytes.len())];
        g.bench_with_input(BenchmarkId::new("plain_zstd", n), &batch, |b, batch| {
            b.iter(|| {
                raw.compress_to_buffer(black_box(&batch.bytes), &mut dst)
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// The broker's check of a producer-compressed frame against compressing the records itself.
fn compressed_frame_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("producer_compressed_level_1");
    for n in [64usize, 1000] {
        let batch = records(n);
        let msgs: Vec<&[u8]> = shardlog::wire::record::RecordIter::new(&batch.bytes)
            .map(|r| r.unwrap().body)
            .collect();
        let mut body = Vec::new();
        shardlog::wire::produce_compressed::CompressedEncoder::new(1)
            .unwrap()
            .encode(b"", 1_700_000_000_000_000, msgs.iter().copied(), &mut body)
            .unwrap();
        let layout = shardlog::wire::produce_compressed::CompressedLayout::decode(&body).unwrap();
        let payload = layout.payload(&body).to_vec();
        g.throughput(Throughput::Elements(n as u64));
        let mut scratch = Vec::new();
        g.bench_with_input(BenchmarkId::new("verify", n), &payload, |b, p| {
            b.iter(|| {
                shardlog::wire::produce_compressed::verify(
                    black_box(p),
                    n as u32,
                    8 << 20,
                    &mut scratch,
                )
                .unwrap()
                .raw_len
            })
        });
        let mut encoder = ChunkEncoder::new(1).unwrap();
        let mut out = vec![0u8; ChunkEncoder::max_encoded_len(batch.bytes.len())];
        g.bench_with_input(BenchmarkId::new("compress", n), &batch, |b, batch| {
            b.iter(|| encoder.encode(0, black_box(batch), &mut out).unwrap().1)
        });
    }
    g.finish();
}

criterion_group!(benches, chunk_building, compressed_frame_check);
criterion_main!(benches);
