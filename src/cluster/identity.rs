//! The broker id a data directory belongs to: written into `{data}/broker-id` the first time
//! the directory serves a cluster, and checked at every later start, so a directory is never
//! served under another id (its partitions are the ones etcd assigned to that id).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::ClusterError;

/// The file, in the data directory, that holds the id.
pub const BROKER_ID_FILE: &str = "broker-id";

/// Checks that `data_dir` belongs to broker `id`, or records that it does if it belongs to
/// none yet. Plain `std::fs`, once, at start-up (before any shard runs).
pub fn claim(data_dir: &Path, id: u32) -> Result<(), ClusterError> {
    let path = data_dir.join(BROKER_ID_FILE);
    let io = |op: &'static str| {
        let path = path.clone();
        move |source| ClusterError::IdFile { path, op, source }
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded: u32 = text
                .trim()
                .parse()
                .map_err(|_| ClusterError::IdFileCorrupt {
                    path: path.clone(),
                    text: text.chars().take(40).collect(),
                })?;
            if recorded != id {
                return Err(ClusterError::WrongBrokerId {
                    data_dir: data_dir.to_path_buf(),
                    recorded,
                    given: id,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_new(data_dir, &path, id).map_err(io("write"))
        }
        Err(e) => Err(io("read")(e)),
    }
}

/// Writes the file whole (a temporary file renamed over it), durably.
fn write_new(dir: &Path, path: &PathBuf, id: u32) -> std::io::Result<()> {
    let tmp = dir.join(format!("{BROKER_ID_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{id}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_keeps_its_first_id() {
        let dir = tempfile::tempdir().unwrap();
        claim(dir.path(), 3).unwrap();
        claim(dir.path(), 3).unwrap();
        let err = claim(dir.path(), 4).unwrap_err().to_string();
        assert!(
            err.contains("broker 3") && err.contains("--broker-id 4"),
            "{err}"
        );
        std::fs::write(dir.path().join(BROKER_ID_FILE), "three\n").unwrap();
        assert!(matches!(
            claim(dir.path(), 3),
            Err(ClusterError::IdFileCorrupt { .. })
        ));
    }
}
