//! The token ring: which partition a key belongs to. (Which shard owns a partition is the
//! broker's business: `shardlog::ring`.)
//!
//! - A key's token is its Murmur3 x64_128 hash as Cassandra and PolarStreams compute it (seed 0,
//!   tail bytes read as *signed*, first 64 bits as `i64`). The `murmur3` crates read the tail
//!   unsigned, which differs for keys whose tail holds bytes ≥ 0x80, hence our own copy.
//! - A topic's layout is fixed at creation: `T` token ranges (the shard count then) each cut
//!   into `R` ranges, `P = T × R` partitions. Partition `j` covers tokens from
//!   `i64::MIN + ⌊j·2⁶⁴/P⌋`; it is named `(gen, token of its token range's start, j mod R)`.
//! - A key's partition depends on the layout alone, never on how many shards or brokers serve
//!   the topic, so a client routes a key exactly as the broker does.

use serde::{Deserialize, Serialize};

/// Murmur3 token of a key, Cassandra-compatible.
pub fn token(key: &[u8]) -> i64 {
    murmur3_x64_128(key).0 as i64
}

/// Murmur3 x64_128 (seed 0, tail bytes sign-extended as in Cassandra): both 64-bit halves.
pub fn murmur3_x64_128(data: &[u8]) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let len = data.len();
    let (mut h1, mut h2) = (0u64, 0u64);
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let mut k1 = u64::from_le_bytes(block[..8].try_into().expect("8 bytes"));
        let mut k2 = u64::from_le_bytes(block[8..].try_into().expect("8 bytes"));
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    // Cassandra sign-extends each tail byte (Java's `byte` is signed) before shifting.
    let byte = |i: usize| tail[i] as i8 as i64 as u64;
    let (mut k1, mut k2) = (0u64, 0u64);
    for i in (8..tail.len()).rev() {
        k2 ^= byte(i) << ((i - 8) * 8);
    }
    for i in (0..tail.len().min(8)).rev() {
        k1 ^= byte(i) << (i * 8);
    }
    if tail.len() > 8 {
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if !tail.is_empty() {
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    h1 ^= len as u64;
    h2 ^= len as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    (h1, h2.wrapping_add(h1))
}

fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A topic's partitioning, persisted when the topic is created and never changed by a
/// restart with another shard count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TopicLayout {
    /// Generation of the layout: 1 at creation; reserved for later re-partitioning.
    pub gen: u32,
    /// Token ranges: the shard count when the topic was created.
    pub token_ranges: u32,
    /// Ranges per token range.
    pub ranges_per_token_range: u32,
}

/// A partition's name, exactly the triple a poll item carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartitionId {
    pub gen: u32,
    /// Start of the token range the partition belongs to.
    pub token: i64,
    pub range_index: u8,
}

impl PartitionId {
    /// Directory name for this partition's files: `{gen}_{token}_{range}`.
    pub fn dir_name(&self) -> String {
        format!("{}_{}_{}", self.gen, self.token, self.range_index)
    }
}

impl TopicLayout {
    pub fn new(shards: u32, ranges_per_shard: u32) -> TopicLayout {
        TopicLayout {
            gen: 1,
            token_ranges: shards.max(1),
            ranges_per_token_range: ranges_per_shard.clamp(1, 256),
        }
    }

    /// Number of partitions `P`.
    pub fn partitions(&self) -> u32 {
        self.token_ranges * self.ranges_per_token_range
    }

    /// Lowest token of partition `j` (`j ≤ P`; `j = P` wraps to `i64::MIN`).
    fn start(&self, j: u32) -> i64 {
        let pos = ((j as u128) << 64) / self.partitions() as u128;
        (pos as u64 as i64).wrapping_add(i64::MIN)
    }

    /// The tokens partition `j` covers, first and last (both included): what a cluster's
    /// partition table shows so that a client can route a key without the layout's math.
    pub fn token_range(&self, j: u32) -> (i64, i64) {
        (self.start(j), self.start(j + 1).wrapping_sub(1))
    }

    /// The partition whose token range holds `token`.
    pub fn partition_of_token(&self, token: i64) -> u32 {
        let pos = token.wrapping_sub(i64::MIN) as u64 as u128;
        let p = self.partitions();
        let mut j = ((pos * p as u128) >> 64) as u32;
        // Integer division can land one below; step up while the next start is still ≤ token.
        while j + 1 < p && self.start(j + 1).wrapping_sub(i64::MIN) as u64 as u128 <= pos {
            j += 1;
        }
        j
    }

    /// The partition of a non-empty key.
    pub fn partition_of_key(&self, key: &[u8]) -> u32 {
        self.partition_of_token(token(key))
    }

    /// The name of partition `j`.
    pub fn partition_id(&self, j: u32) -> PartitionId {
        let r = self.ranges_per_token_range;
        PartitionId {
            gen: self.gen,
            token: self.start(j / r * r),
            range_index: (j % r) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_shared_vectors() {
        let text = include_str!("../../tests/data/murmur3-tokens.tsv");
        let mut n = 0;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (hex, tok) = line.split_once('\t').expect("tab-separated");
            let key: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            assert_eq!(token(&key), tok.trim().parse::<i64>().unwrap(), "key {hex}");
            n += 1;
        }
        assert!(n >= 10);
        assert_eq!(token(b"test"), -6017608668500074083);
        assert_eq!(token("kremówki".as_bytes()), 4354931215268080151);
    }

    #[test]
    fn token_ranges_tile_the_ring() {
        let l = TopicLayout::new(3, 4);
        assert_eq!(l.token_range(0).0, i64::MIN);
        assert_eq!(l.token_range(l.partitions() - 1).1, i64::MAX);
        for j in 1..l.partitions() {
            assert_eq!(l.token_range(j - 1).1 + 1, l.token_range(j).0);
            let (first, last) = l.token_range(j);
            assert_eq!(l.partition_of_token(first), j);
            assert_eq!(l.partition_of_token(last), j);
        }
    }

    #[test]
    fn partitions_cover_the_ring_in_order() {
        for (t, r) in [(1, 1), (1, 4), (2, 4), (3, 4), (7, 3)] {
            let l = TopicLayout::new(t, r);
            assert_eq!(l.start(0), i64::MIN);
            assert_eq!(l.partition_of_token(i64::MIN), 0);
            assert_eq!(l.partition_of_token(i64::MAX), l.partitions() - 1);
            for j in 0..l.partitions() {
                let s = l.start(j);
                assert_eq!(l.partition_of_token(s), j);
                if j > 0 {
                    assert_eq!(l.partition_of_token(s - 1), j - 1);
                    assert!(s > l.start(j - 1));
                }
            }
        }
    }

    #[test]
    fn names_follow_token_ranges() {
        let l = TopicLayout::new(2, 4);
        assert_eq!(
            l.partition_id(0),
            PartitionId {
                gen: 1,
                token: i64::MIN,
                range_index: 0
            }
        );
        assert_eq!(
            l.partition_id(3),
            PartitionId {
                gen: 1,
                token: i64::MIN,
                range_index: 3
            }
        );
        assert_eq!(
            l.partition_id(4),
            PartitionId {
                gen: 1,
                token: 0,
                range_index: 0
            }
        );
        assert_eq!(l.partition_id(7).range_index, 3);
    }

    #[test]
    fn a_keys_partition_is_in_range() {
        let l = TopicLayout::new(2, 4);
        for k in 0..1000 {
            let key = format!("key-{k}");
            assert!(l.partition_of_key(key.as_bytes()) < 8);
        }
    }
}
