//! A simulated file system for power-loss tests: in memory, shared between threads, and
//! recording every mutating operation in one global sequence, so a test can ask what a power
//! cut after any operation could have left on the disk ([`SimFs::power_cut`]).
//!
//! # Durability model
//!
//! Close to ext4 with `data=ordered` on a disk with a volatile write cache, and no stronger:
//!
//! - A file's data and size are durable up to its last `fdatasync` (for a file opened with
//!   durable writes, like O_DSYNC segment files, also each completed write). Writes since then
//!   may survive or not, each 4096-byte block on its own and in any order (a block holds its
//!   durable content or any later version of it: torn and reordered writes), and the size is
//!   the durable one or any size the file had since.
//! - A directory's entries (files and directories created, renamed, removed in it) are
//!   durable up to its last fsync (`sync_dir`). Syncing a file does not make its name
//!   durable. Of the entry operations since, a power cut keeps a prefix: we assume the
//!   journal commits one directory's operations in the order they were made. A rename inside
//!   one directory is one operation (the name holds the old file or the new one, never
//!   neither); a rename between directories is a removal in one and an addition in the other,
//!   each kept or not with its own directory.
//!
//! Every mutating operation gets the next op number (1, 2, ...): file writes, size changes
//! (truncate, preallocate, truncating open), file syncs, entry creation, rename and removal,
//! and directory syncs. Reads, listings and metadata are not numbered.
//!
//! It implements [`FileSystem`](crate::storage::fs::FileSystem), and the broker runs on it as
//! [`BrokerFs::Sim`](crate::storage::fs::BrokerFs::Sim). Segment files (`create`, `open`)
//! follow the O_DIRECT rules of the real
//! ones: a write whose position or length is not a multiple of the alignment fails with
//! EINVAL. Buffered files (`open_buffered`) take writes anywhere.

mod cut;
mod file;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod tests;
mod tree;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::storage::fs::{DirEntry, Metadata};
pub use cut::{CutPolicy, Rng, BLOCK};
pub use file::{SimBuf, SimBuffered, SimFile, SimLock};
use tree::{err, Ino, Node, Op, Tree};

/// The in-memory file system; clones share it.
#[derive(Debug, Clone)]
pub struct SimFs {
    inner: Arc<Mutex<State>>,
    /// O_DIRECT alignment of segment files.
    alignment: u64,
    /// Whether segment files' writes are durable when they complete (O_DSYNC).
    durable_writes: bool,
}

#[derive(Debug)]
struct State {
    /// What the disk held when this file system was made (empty, or a power cut's image).
    base: Tree,
    live: Tree,
    ops: Vec<Op>,
    modified: HashMap<Ino, SystemTime>,
}

impl Default for SimFs {
    fn default() -> SimFs {
        SimFs::new()
    }
}

impl SimFs {
    /// An empty file system: segment files aligned to 4096 bytes, writes not durable until
    /// fdatasync.
    pub fn new() -> SimFs {
        SimFs::from_tree(Tree::new(), HashMap::new())
    }

    fn from_tree(base: Tree, modified: HashMap<Ino, SystemTime>) -> SimFs {
        SimFs {
            inner: Arc::new(Mutex::new(State {
                live: base.clone(),
                base,
                ops: Vec::new(),
                modified,
            })),
            alignment: 4096,
            durable_writes: false,
        }
    }

    /// The same file system, whose segment files' writes are durable when they complete
    /// (like the real files opened with O_DSYNC).
    pub fn with_durable_writes(mut self, durable: bool) -> SimFs {
        self.durable_writes = durable;
        self
    }

    /// The same file system, with segment files needing another O_DIRECT alignment.
    pub fn with_alignment(mut self, alignment: u64) -> SimFs {
        self.alignment = alignment.max(1);
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test tool: a panic elsewhere while holding the lock leaves consistent state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of the last mutating operation (0 before the first).
    pub fn op_count(&self) -> u64 {
        self.state().ops.len() as u64
    }

    /// The op numbers of every sync: file fdatasyncs, directory fsyncs and durable writes.
    pub fn sync_points(&self) -> Vec<u64> {
        let s = self.state();
        s.ops
            .iter()
            .enumerate()
            .filter(|(_, op)| {
                matches!(
                    op,
                    Op::Sync { .. } | Op::SyncDir { .. } | Op::Write { durable: true, .. }
                )
            })
            .map(|(i, _)| i as u64 + 1)
            .collect()
    }

    /// One line per op so far, in order (`write ino 7 @4096 +8192`, `link 3/"00.log" -> 7`):
    /// what a failing cut came after, and where two runs that should match part.
    pub fn op_log(&self) -> Vec<String> {
        let s = self.state();
        s.ops
            .iter()
            .map(|op| match op {
                Op::Write {
                    ino,
                    pos,
                    bytes,
                    durable,
                } => {
                    let d = if *durable { " durable" } else { "" };
                    format!("write ino {ino} @{pos} +{}{d}", bytes.len())
                }
                Op::SetLen { ino, len } => format!("set_len ino {ino} {len}"),
                Op::Sync { ino } => format!("fdatasync ino {ino}"),
                Op::Link { dir, name, ino, .. } => format!("link {dir}/{name:?} -> {ino}"),
                Op::Unlink { dir, name } => format!("unlink {dir}/{name:?}"),
                Op::Rename {
                    from_dir,
                    from,
                    to_dir,
                    to,
                } => format!("rename {from_dir}/{from:?} -> {to_dir}/{to:?}"),
                Op::SyncDir { dir } => format!("sync_dir {dir}"),
            })
            .collect()
    }

    /// A fresh file system holding what a power cut right after op `at_op` (0: before any)
    /// can leave on the disk, chosen by `policy`. Its segment files keep this one's settings.
    pub fn power_cut(&self, at_op: u64, policy: CutPolicy) -> SimFs {
        let s = self.state();
        let upto = (at_op as usize).min(s.ops.len());
        let tree = cut::image(&s.base, &s.ops[..upto], policy);
        let modified = s
            .modified
            .iter()
            .filter(|(ino, _)| tree.nodes.contains_key(ino))
            .map(|(i, t)| (*i, *t))
            .collect();
        let mut fs = SimFs::from_tree(tree, modified);
        fs.alignment = self.alignment;
        fs.durable_writes = self.durable_writes;
        fs
    }

    /// Validates nothing: records `op` and applies it to the live tree.
    fn record(s: &mut State, op: Op) {
        s.live.apply(&op);
        let touched = match &op {
            Op::Write { ino, .. } | Op::SetLen { ino, .. } => Some(*ino),
            Op::Link { dir, .. } | Op::Unlink { dir, .. } => Some(*dir),
            Op::Rename { to_dir, .. } => Some(*to_dir),
            Op::Sync { .. } | Op::SyncDir { .. } => None,
        };
        if let Some(ino) = touched {
            s.modified.insert(ino, SystemTime::now());
        }
        s.ops.push(op);
    }

    fn new_file(s: &mut State, path: &Path, exclusive: bool) -> io::Result<Ino> {
        let (dir, name) = s.live.parent(path)?;
        if let Some(&ino) = s.live.dir(dir)?.get(&name) {
            if exclusive {
                return Err(err(libc::EEXIST));
            }
            s.live.file(ino)?;
            return Ok(ino);
        }
        let ino = s.live.alloc();
        let new = Some(Node::File(Vec::new()));
        SimFs::record(
            s,
            Op::Link {
                dir,
                name,
                ino,
                new,
            },
        );
        Ok(ino)
    }

    /// Creates a new, empty segment file; fails with AlreadyExists if the name is taken.
    pub(super) fn do_create(&self, path: &Path) -> io::Result<SimFile> {
        let ino = SimFs::new_file(&mut self.state(), path, true)?;
        Ok(self.handle(ino, true))
    }

    /// Opens an existing segment file.
    pub(super) fn do_open(&self, path: &Path) -> io::Result<SimFile> {
        let s = self.state();
        let ino = s.live.lookup(path)?;
        s.live.file(ino)?;
        drop(s);
        Ok(self.handle(ino, true))
    }

    /// Opens a file for unaligned writes, creating it if missing; `truncate` empties it.
    pub(super) fn do_open_buffered(&self, path: &Path, truncate: bool) -> io::Result<SimFile> {
        let mut s = self.state();
        let ino = SimFs::new_file(&mut s, path, false)?;
        if truncate && !s.live.file(ino)?.is_empty() {
            SimFs::record(&mut s, Op::SetLen { ino, len: 0 });
        }
        drop(s);
        Ok(self.handle(ino, false))
    }

    fn handle(&self, ino: Ino, segment: bool) -> SimFile {
        SimFile {
            fs: self.clone(),
            ino,
            alignment: if segment { self.alignment } else { 1 },
            durable_writes: segment && self.durable_writes,
        }
    }

    /// A whole file's bytes.
    pub(super) fn do_read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.state();
        let ino = s.live.lookup(path)?;
        s.live.file(ino).cloned()
    }

    /// A directory's entries, by name.
    pub(super) fn do_list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let s = self.state();
        let ino = s.live.lookup(dir)?;
        Ok(s.live
            .dir(ino)?
            .iter()
            .map(|(name, ino)| DirEntry {
                name: name.clone(),
                is_dir: matches!(s.live.nodes.get(ino), Some(Node::Dir(_))),
            })
            .collect())
    }

    pub(super) fn do_metadata(&self, path: &Path) -> io::Result<Metadata> {
        let s = self.state();
        let ino = s.live.lookup(path)?;
        let (len, is_dir) = match s.live.nodes.get(&ino) {
            Some(Node::File(f)) => (f.len() as u64, false),
            Some(Node::Dir(_)) => (0, true),
            None => return Err(err(libc::ENOENT)),
        };
        let modified = s
            .modified
            .get(&ino)
            .copied()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Metadata {
            len,
            modified,
            is_dir,
        })
    }

    /// Creates a directory and its missing parents (each a new entry in its parent).
    pub(super) fn do_create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let mut at = tree::ROOT;
        for name in tree::components(path)? {
            at = match s.live.dir(at)?.get(&name) {
                Some(&ino) => ino,
                None => {
                    let ino = s.live.alloc();
                    let new = Some(Node::Dir(BTreeMap::new()));
                    SimFs::record(
                        &mut s,
                        Op::Link {
                            dir: at,
                            name,
                            ino,
                            new,
                        },
                    );
                    ino
                }
            };
        }
        s.live.dir(at).map(|_| ())
    }

    /// Renames a file or directory, replacing a file (or an empty directory) at `to`.
    pub(super) fn do_rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        let (from_dir, from_name) = s.live.parent(from)?;
        let (to_dir, to_name) = s.live.parent(to)?;
        let ino = *s
            .live
            .dir(from_dir)?
            .get(&from_name)
            .ok_or_else(|| err(libc::ENOENT))?;
        let moving_dir = s.live.dir(ino).is_ok();
        if let Some(&old) = s.live.dir(to_dir)?.get(&to_name) {
            match (moving_dir, s.live.dir(old)) {
                (true, Ok(d)) if !d.is_empty() => return Err(err(libc::ENOTEMPTY)),
                (false, Ok(_)) => return Err(err(libc::EISDIR)),
                (true, Err(_)) => return Err(err(libc::ENOTDIR)),
                _ => {}
            }
        }
        SimFs::record(
            &mut s,
            Op::Rename {
                from_dir,
                from: from_name,
                to_dir,
                to: to_name,
            },
        );
        Ok(())
    }

    /// Removes a file's name (open handles keep working).
    pub(super) fn do_remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let (dir, name) = s.live.parent(path)?;
        let ino = *s
            .live
            .dir(dir)?
            .get(&name)
            .ok_or_else(|| err(libc::ENOENT))?;
        s.live.file(ino)?;
        SimFs::record(&mut s, Op::Unlink { dir, name });
        Ok(())
    }

    /// Removes a directory and everything under it, entry by entry, children first (as
    /// the real call does, so a power cut can leave it half removed).
    pub(super) fn do_remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let (dir, name) = s.live.parent(path)?;
        let ino = *s
            .live
            .dir(dir)?
            .get(&name)
            .ok_or_else(|| err(libc::ENOENT))?;
        s.live.dir(ino)?;
        SimFs::remove_tree(&mut s, ino);
        SimFs::record(&mut s, Op::Unlink { dir, name });
        Ok(())
    }

    fn remove_tree(s: &mut State, dir: Ino) {
        let entries: Vec<(String, Ino)> = match s.live.dir(dir) {
            Ok(d) => d.iter().map(|(n, i)| (n.clone(), *i)).collect(),
            Err(_) => return,
        };
        for (name, ino) in entries {
            SimFs::remove_tree(s, ino);
            SimFs::record(s, Op::Unlink { dir, name });
        }
    }

    /// Makes a directory's entries durable.
    pub(super) fn do_sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let dir = s.live.lookup(path)?;
        s.live.dir(dir)?;
        SimFs::record(&mut s, Op::SyncDir { dir });
        Ok(())
    }

    /// Every file under `dir` (recursively) with its bytes, paths relative to `dir`: for
    /// tests that inspect an image.
    pub fn files_under(&self, dir: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
        let s = self.state();
        let mut out = BTreeMap::new();
        let mut stack = vec![(String::new(), s.live.lookup(dir)?)];
        while let Some((prefix, ino)) = stack.pop() {
            match s.live.nodes.get(&ino) {
                Some(Node::File(f)) => {
                    out.insert(prefix, f.clone());
                }
                Some(Node::Dir(d)) => {
                    for (name, child) in d {
                        let p = if prefix.is_empty() {
                            name.clone()
                        } else {
                            format!("{prefix}/{name}")
                        };
                        stack.push((p, *child));
                    }
                }
                None => {}
            }
        }
        Ok(out)
    }
}
