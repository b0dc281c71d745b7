//! The broker id a data directory belongs to: written into `{data}/broker-id` the first time
//! the directory serves a cluster, and checked at every later start, so a directory is never
//! served under another id (its partitions are the ones etcd assigned to that id).

use std::path::Path;

use super::ClusterError;
use crate::storage::fs::{replace_file, FileSystem};

/// The file, in the data directory, that holds the id.
pub const BROKER_ID_FILE: &str = "broker-id";

/// Checks that `data_dir` belongs to broker `id`, or records that it does (durably: a
/// temporary file renamed over it, see [`replace_file`]) if it belongs to none yet. Through
/// the broker's file system like every other file in the data directory; run once at start-up.
pub async fn claim<F: FileSystem>(fs: &F, data_dir: &Path, id: u32) -> Result<(), ClusterError> {
    let path = data_dir.join(BROKER_ID_FILE);
    let io = |op: &'static str| {
        let path = path.clone();
        move |source| ClusterError::IdFile { path, op, source }
    };
    match fs.read_file(&path).await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
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
            replace_file(fs, data_dir, BROKER_ID_FILE, format!("{id}\n").as_bytes())
                .await
                .map_err(io("write"))
        }
        Err(e) => Err(io("read")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::fs::BrokerFs;

    fn claim(dir: &Path, id: u32) -> Result<(), ClusterError> {
        let dir = dir.to_path_buf();
        crate::rt::block_on(async move { super::claim(&BrokerFs::default(), &dir, id).await })
    }

    #[test]
    fn a_directory_keeps_its_first_id() {
        let dir = tempfile::tempdir().unwrap();
        claim(dir.path(), 3).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(BROKER_ID_FILE)).unwrap(),
            "3\n"
        );
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
