//! The simulated file system's namespace: inodes (files and directories) and the one
//! operation type that changes them, applied the same way to the live tree and, during a
//! power cut's replay, to the model that decides what survives.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Component, Path};

/// An inode number; the root directory is [`ROOT`].
pub(super) type Ino = u64;
pub(super) const ROOT: Ino = 0;

/// A file's bytes or a directory's entries.
#[derive(Debug, Clone)]
pub(super) enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<String, Ino>),
}

/// Inodes by number. Unlinked inodes stay (open handles keep working on them).
#[derive(Debug, Clone)]
pub(super) struct Tree {
    pub nodes: HashMap<Ino, Node>,
    pub next: Ino,
}

/// One mutating operation, as recorded in the global sequence.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Bytes written at a position; `durable` when the file's writes are O_DSYNC.
    Write {
        ino: Ino,
        pos: u64,
        bytes: Vec<u8>,
        durable: bool,
    },
    /// A truncate or preallocate: the file's size becomes `len`.
    SetLen {
        ino: Ino,
        len: u64,
    },
    /// fdatasync of a file.
    Sync {
        ino: Ino,
    },
    /// A new entry `name` in `dir` for `ino`; `new` holds the inode when it is created here.
    Link {
        dir: Ino,
        name: String,
        ino: Ino,
        new: Option<Node>,
    },
    Unlink {
        dir: Ino,
        name: String,
    },
    Rename {
        from_dir: Ino,
        from: String,
        to_dir: Ino,
        to: String,
    },
    /// fsync of a directory.
    SyncDir {
        dir: Ino,
    },
}

pub(super) fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// A path's normal components (a leading `/` and `.` are ignored; `..` is refused).
pub(super) fn components(path: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(err(libc::EINVAL)),
            Component::Normal(s) => match s.to_str() {
                Some(s) => out.push(s.to_owned()),
                None => return Err(err(libc::EINVAL)),
            },
        }
    }
    Ok(out)
}

impl Tree {
    pub fn new() -> Tree {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::Dir(BTreeMap::new()));
        Tree { nodes, next: 1 }
    }

    pub fn alloc(&mut self) -> Ino {
        self.next += 1;
        self.next - 1
    }

    pub fn dir(&self, ino: Ino) -> io::Result<&BTreeMap<String, Ino>> {
        match self.nodes.get(&ino) {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(err(libc::ENOTDIR)),
            None => Err(err(libc::ENOENT)),
        }
    }

    /// A directory's entries, if `ino` is a directory (ops are validated before they are
    /// recorded, so it always is).
    fn dir_mut(&mut self, ino: Ino) -> Option<&mut BTreeMap<String, Ino>> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => Some(d),
            _ => None,
        }
    }

    pub fn file(&self, ino: Ino) -> io::Result<&Vec<u8>> {
        match self.nodes.get(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(err(libc::EISDIR)),
            None => Err(err(libc::ENOENT)),
        }
    }

    /// A file's bytes, if `ino` is a file (as for [`Tree::dir_mut`]).
    fn file_mut(&mut self, ino: Ino) -> Option<&mut Vec<u8>> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Some(f),
            _ => None,
        }
    }

    /// The inode a path names.
    pub fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let mut at = ROOT;
        for name in components(path)? {
            at = *self.dir(at)?.get(&name).ok_or_else(|| err(libc::ENOENT))?;
        }
        Ok(at)
    }

    /// The directory holding a path's last component, and that component.
    pub fn parent(&self, path: &Path) -> io::Result<(Ino, String)> {
        let mut names = components(path)?;
        let name = names.pop().ok_or_else(|| err(libc::EINVAL))?;
        let mut at = ROOT;
        for n in names {
            at = *self.dir(at)?.get(&n).ok_or_else(|| err(libc::ENOENT))?;
        }
        self.dir(at)?;
        Ok((at, name))
    }

    /// Applies a (validated) operation.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Write {
                ino, pos, bytes, ..
            } => {
                if let Some(f) = self.file_mut(*ino) {
                    let (pos, end) = (*pos as usize, *pos as usize + bytes.len());
                    if f.len() < end {
                        f.resize(end, 0);
                    }
                    f[pos..end].copy_from_slice(bytes);
                }
            }
            Op::SetLen { ino, len } => {
                if let Some(f) = self.file_mut(*ino) {
                    f.resize(*len as usize, 0);
                }
            }
            Op::Sync { .. } | Op::SyncDir { .. } => {}
            Op::Link {
                dir,
                name,
                ino,
                new,
            } => {
                if let Some(node) = new {
                    self.nodes.insert(*ino, node.clone());
                    self.next = self.next.max(ino + 1);
                }
                if let Some(d) = self.dir_mut(*dir) {
                    d.insert(name.clone(), *ino);
                }
            }
            Op::Unlink { dir, name } => {
                if let Some(d) = self.dir_mut(*dir) {
                    d.remove(name);
                }
            }
            Op::Rename {
                from_dir,
                from,
                to_dir,
                to,
            } => {
                let moved = self.dir_mut(*from_dir).and_then(|d| d.remove(from));
                if let (Some(ino), Some(d)) = (moved, self.dir_mut(*to_dir)) {
                    d.insert(to.clone(), ino);
                }
            }
        }
    }

    /// A copy holding only the inodes reachable from the root.
    pub fn reachable(&self) -> Tree {
        let mut out = Tree {
            nodes: HashMap::new(),
            next: self.next,
        };
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if out.nodes.contains_key(&ino) {
                continue;
            }
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            if let Node::Dir(d) = node {
                stack.extend(d.values().copied());
            }
            out.nodes.insert(ino, node.clone());
        }
        out
    }
}
