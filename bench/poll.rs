//! Poll-response assembly: item headers plus slices of the stored chunks (no copy of the
//! payloads), up to the poll's byte budget.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shardlog::consumer::poll::PollAssembler;
use shardlog::ring::TopicLayout;
use shardlog::storage::StoredChunk;

fn poll_assembly(c: &mut Criterion) {
    let layout = TopicLayout::new(2, 4);
    // 64 chunks of 16 KiB (about 64 compressed 1 KiB messages each), over 8 partitions.
    let chunks: Vec<(u32, StoredChunk)> = (0..64u32)
        .map(|i| {
            (
                i % 8,
                StoredChunk {
                    start_offset: i64::from(i) * 64,
                    record_count: 64,
                    payload: Bytes::from(vec![i as u8; 16 << 10]),
                },
            )
        })
        .collect();
    let mut g = c.benchmark_group("poll_assembly");
    g.throughput(Throughput::Elements(chunks.len() as u64));
    g.bench_function("64_chunks_of_16KiB", |b| {
        b.iter(|| {
            let mut a = PollAssembler::new(4 << 20);
            for (j, chunk) in &chunks {
                a.try_push("events", layout.partition_id(*j), black_box(chunk));
            }
            a.finish().len
        })
    });
    g.finish();
}

criterion_group!(benches, poll_assembly);
criterion_main!(benches);
