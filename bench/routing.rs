//! Key routing: Murmur3 token, partition lookup and owner shard for every keyed frame.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shardlog::ring::{token, ShardOwnership, TopicLayout};

fn routing(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("customer-{i:06}").into_bytes())
        .collect();
    let layout = TopicLayout::new(2, 4);
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("murmur3_token_1000_keys", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| token(black_box(k)))
                .fold(0i64, |a, t| a ^ t)
        })
    });
    g.bench_function("key_to_partition_to_shard_1000_keys", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| layout.owner(layout.partition_of_key(black_box(k)), 2))
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
