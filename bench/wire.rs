//! Frame parsing: what the framed server does for every PRODUCE before any storage work
//! (header CRC, body validation, walking the messages).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardlog::wire::frame::{encode_frame_with, Frame, OpCode};
use shardlog::wire::produce::{encode_produce_body, ProduceLayout};

fn produce_frame(messages: usize, size: usize) -> Vec<u8> {
    let msg: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut buf = Vec::new();
    encode_frame_with(&mut buf, OpCode::Produce, 0, 1, |d| {
        encode_produce_body(None, b"key-1", (0..messages).map(|_| msg.as_slice()), d)
    });
    buf
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_produce_frame");
    for (messages, size) in [(1, 1024), (64, 1024), (64, 100)] {
        let frame = produce_frame(messages, size);
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{messages}x{size}B")),
            &frame,
            |b, frame| {
                b.iter(|| {
                    let (f, used) = Frame::parse(black_box(frame), u32::MAX).unwrap().unwrap();
                    let layout = ProduceLayout::decode(f.body, false).unwrap();
                    let total: usize = layout.view(f.body).iter().map(|m| m.len()).sum();
                    black_box((used, total))
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
