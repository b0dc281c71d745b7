//! What a power cut leaves: the recorded operations are replayed up to the cut, tracking for
//! each file what its last fdatasync made durable and what was written since, and for each
//! directory what its last fsync made durable and which entry operations came since; then a
//! [`CutPolicy`] picks which of the unsynced changes reached the disk.

use std::collections::{BTreeMap, HashMap};

use super::tree::{Ino, Node, Op, Tree};

/// The block size at which unsynced data writes survive or vanish (torn writes).
pub const BLOCK: usize = 4096;

/// Which unsynced changes a power cut keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPolicy {
    /// Only what was made durable (fdatasync, O_DSYNC writes, directory fsync).
    SyncedOnly,
    /// Everything that was done (the cache happened to reach the disk).
    AllWritten,
    /// Per file, each 4096-byte block written since the last sync holds its durable content
    /// or any later version of it, the size is the durable one or any later one; per
    /// directory, a prefix of the entry operations since its last fsync. Seeded.
    RandomSubset(u64),
}

/// A small seeded generator (SplitMix64): the same seed always gives the same image (and, in
/// the power-loss tests, the same workload).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A file's durable bytes and what happened to it since its last sync.
#[derive(Debug, Default)]
struct FileHistory {
    durable: Vec<u8>,
    /// The sizes it had after each unsynced change.
    sizes: Vec<u64>,
    /// For each block changed since the sync, its content after each change, oldest first.
    blocks: BTreeMap<u64, Vec<Vec<u8>>>,
}

/// A directory's durable entries and the entry operations since its last fsync.
#[derive(Debug, Default)]
struct DirHistory {
    durable: BTreeMap<String, Ino>,
    pending: Vec<DirOp>,
}

#[derive(Debug)]
enum DirOp {
    Set(String, Ino),
    Remove(String),
    /// A rename inside one directory: one journal transaction, whole or absent.
    Rename(String, String),
}

fn block_of(data: &[u8], b: u64) -> Vec<u8> {
    let start = (b as usize * BLOCK).min(data.len());
    let end = (start + BLOCK).min(data.len());
    let mut out = data[start..end].to_vec();
    out.resize(BLOCK, 0);
    out
}

/// The replay: the tree as it was at each step, plus the durability history.
struct Replay {
    tree: Tree,
    files: HashMap<Ino, FileHistory>,
    dirs: HashMap<Ino, DirHistory>,
}

impl Replay {
    fn file(&mut self, ino: Ino) -> &mut FileHistory {
        let tree = &self.tree;
        self.files.entry(ino).or_insert_with(|| FileHistory {
            durable: tree.file(ino).cloned().unwrap_or_default(),
            ..FileHistory::default()
        })
    }

    fn dir(&mut self, ino: Ino) -> &mut DirHistory {
        let tree = &self.tree;
        self.dirs.entry(ino).or_insert_with(|| DirHistory {
            durable: tree.dir(ino).cloned().unwrap_or_default(),
            pending: Vec::new(),
        })
    }

    fn step(&mut self, op: &Op) {
        // Histories start from the state before the op (which is the durable one for an
        // inode not touched since the base image).
        match op {
            Op::Write {
                ino,
                pos,
                bytes,
                durable,
            } => {
                self.file(*ino);
                self.tree.apply(op);
                let now = self.tree.file(*ino).map(|f| &f[..]).unwrap_or_default();
                let end = pos + bytes.len() as u64;
                let first = pos / BLOCK as u64;
                let last = end.div_ceil(BLOCK as u64);
                let Some(h) = self.files.get_mut(ino) else {
                    return;
                };
                if *durable {
                    if h.durable.len() < end as usize {
                        h.durable.resize(end as usize, 0);
                    }
                    h.durable[*pos as usize..end as usize].copy_from_slice(bytes);
                    h.sizes.retain(|s| *s >= end);
                    for b in first..last {
                        h.blocks.remove(&b);
                    }
                } else {
                    for b in first..last {
                        h.blocks.entry(b).or_default().push(block_of(now, b));
                    }
                    h.sizes.push(now.len() as u64);
                }
            }
            Op::SetLen { ino, len } => {
                let old = self.tree.file(*ino).map(|f| f.len()).unwrap_or(0) as u64;
                self.file(*ino);
                self.tree.apply(op);
                let now = self.tree.file(*ino).map(|f| &f[..]).unwrap_or_default();
                let Some(h) = self.files.get_mut(ino) else {
                    return;
                };
                h.sizes.push(*len);
                if *len < old {
                    for b in len / BLOCK as u64..old.div_ceil(BLOCK as u64) {
                        h.blocks.entry(b).or_default().push(block_of(now, b));
                    }
                }
            }
            Op::Sync { ino } => {
                // The durable copy takes the blocks changed since the last sync (not a copy
                // of the whole file per sync: replays stay linear in the bytes written).
                self.file(*ino);
                let now = self.tree.file(*ino).map(|f| &f[..]).unwrap_or_default();
                let Some(h) = self.files.get_mut(ino) else {
                    return;
                };
                h.durable.resize(now.len(), 0);
                for b in std::mem::take(&mut h.blocks).into_keys() {
                    let start = (b as usize * BLOCK).min(now.len());
                    let end = (start + BLOCK).min(now.len());
                    h.durable[start..end].copy_from_slice(&now[start..end]);
                }
                h.sizes.clear();
            }
            Op::Link { dir, name, ino, .. } => {
                self.dir(*dir).pending.push(DirOp::Set(name.clone(), *ino));
                self.tree.apply(op);
            }
            Op::Unlink { dir, name } => {
                self.dir(*dir).pending.push(DirOp::Remove(name.clone()));
                self.tree.apply(op);
            }
            Op::Rename {
                from_dir,
                from,
                to_dir,
                to,
            } => {
                if from_dir == to_dir {
                    let d = self.dir(*from_dir);
                    d.pending.push(DirOp::Rename(from.clone(), to.clone()));
                } else if let Some(ino) = self.tree.dir(*from_dir).ok().and_then(|d| d.get(from)) {
                    let ino = *ino;
                    self.dir(*from_dir)
                        .pending
                        .push(DirOp::Remove(from.clone()));
                    self.dir(*to_dir).pending.push(DirOp::Set(to.clone(), ino));
                }
                self.tree.apply(op);
            }
            Op::SyncDir { dir } => {
                let now = self.tree.dir(*dir).cloned().unwrap_or_default();
                self.dirs.insert(
                    *dir,
                    DirHistory {
                        durable: now,
                        pending: Vec::new(),
                    },
                );
            }
        }
    }

    fn file_image(&self, ino: Ino, live: &[u8], policy: CutPolicy, rng: &mut Rng) -> Vec<u8> {
        let Some(h) = self.files.get(&ino) else {
            return live.to_vec();
        };
        match policy {
            CutPolicy::AllWritten => live.to_vec(),
            CutPolicy::SyncedOnly => h.durable.clone(),
            CutPolicy::RandomSubset(_) => {
                let mut data = h.durable.clone();
                let pick = rng.below(h.sizes.len() as u64 + 1) as usize;
                let size = if pick == 0 {
                    h.durable.len()
                } else {
                    h.sizes[pick - 1] as usize
                };
                for (b, versions) in &h.blocks {
                    let k = rng.below(versions.len() as u64 + 1) as usize;
                    if k > 0 {
                        let start = *b as usize * BLOCK;
                        if data.len() < start + BLOCK {
                            data.resize(start + BLOCK, 0);
                        }
                        data[start..start + BLOCK].copy_from_slice(&versions[k - 1]);
                    }
                }
                data.resize(size, 0);
                data
            }
        }
    }

    fn dir_image(
        &self,
        ino: Ino,
        live: &BTreeMap<String, Ino>,
        policy: CutPolicy,
        rng: &mut Rng,
    ) -> BTreeMap<String, Ino> {
        let Some(h) = self.dirs.get(&ino) else {
            return live.clone();
        };
        let keep = match policy {
            CutPolicy::AllWritten => return live.clone(),
            CutPolicy::SyncedOnly => 0,
            CutPolicy::RandomSubset(_) => rng.below(h.pending.len() as u64 + 1) as usize,
        };
        let mut entries = h.durable.clone();
        for op in &h.pending[..keep] {
            match op {
                DirOp::Set(name, ino) => {
                    entries.insert(name.clone(), *ino);
                }
                DirOp::Remove(name) => {
                    entries.remove(name);
                }
                DirOp::Rename(from, to) => {
                    if let Some(ino) = entries.remove(from) {
                        entries.insert(to.clone(), ino);
                    }
                }
            }
        }
        entries
    }
}

/// Replays `ops` on `base` and returns the tree a power cut after the last of them leaves.
pub(super) fn image(base: &Tree, ops: &[Op], policy: CutPolicy) -> Tree {
    let mut replay = Replay {
        tree: base.clone(),
        files: HashMap::new(),
        dirs: HashMap::new(),
    };
    for op in ops {
        replay.step(op);
    }
    let seed = match policy {
        CutPolicy::RandomSubset(seed) => seed,
        _ => 0,
    };
    let mut rng = Rng::new(seed);
    let mut out = Tree {
        nodes: HashMap::new(),
        next: replay.tree.next,
    };
    // In inode order, so a seed always gives the same image.
    let mut inos: Vec<Ino> = replay.tree.nodes.keys().copied().collect();
    inos.sort_unstable();
    for ino in inos {
        let node = match &replay.tree.nodes[&ino] {
            Node::File(live) => Node::File(replay.file_image(ino, live, policy, &mut rng)),
            Node::Dir(live) => Node::Dir(replay.dir_image(ino, live, policy, &mut rng)),
        };
        out.nodes.insert(ino, node);
    }
    out.reachable()
}
