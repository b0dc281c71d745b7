//! Which shard owns a partition. The key → token → partition math is the wire crate's
//! ([`shardlog_wire::ring`], re-exported here), shared with clients; ownership by shards is
//! the broker's alone.
//!
//! Partition `j` of a topic with `P` partitions is owned by shard `⌊j·N/P⌋` for the current
//! shard count `N`. With `N` = the token ranges `T` the topic was created with, that is token
//! range `j / R` → shard `j / R`; another `N` re-homes whole partitions, never moving a key to
//! another partition.

pub use shardlog_wire::ring::*;

/// Partition ownership by the shards of one broker.
pub trait ShardOwnership {
    /// The shard that owns partition `j` when the broker runs `shards` shards.
    fn owner(&self, j: u32, shards: usize) -> usize;
    /// The partitions owned by `shard`, in order.
    fn owned_by(&self, shard: usize, shards: usize) -> impl Iterator<Item = u32> + '_;
}

impl ShardOwnership for TopicLayout {
    fn owner(&self, j: u32, shards: usize) -> usize {
        ((j as u64 * shards as u64) / self.partitions() as u64) as usize
    }

    fn owned_by(&self, shard: usize, shards: usize) -> impl Iterator<Item = u32> + '_ {
        (0..self.partitions()).filter(move |&j| self.owner(j, shards) == shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_rehomes_whole_partitions() {
        let l = TopicLayout::new(2, 4);
        let at2: Vec<usize> = (0..8).map(|j| l.owner(j, 2)).collect();
        assert_eq!(at2, [0, 0, 0, 0, 1, 1, 1, 1]);
        let at3: Vec<usize> = (0..8).map(|j| l.owner(j, 3)).collect();
        assert_eq!(at3, [0, 0, 0, 1, 1, 1, 2, 2]);
        let at1: Vec<usize> = (0..8).map(|j| l.owner(j, 1)).collect();
        assert_eq!(at1, [0; 8]);
        assert_eq!(l.owned_by(1, 3).collect::<Vec<_>>(), vec![3, 4, 5]);
    }
}
