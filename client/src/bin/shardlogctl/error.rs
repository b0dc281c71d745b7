//! The one error of a `shardlogctl` command, printed as one line by `main` (exit code 1).

use std::path::PathBuf;

use shardlog_client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The broker or the connection to it.
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the input: {0}")]
    ReadInput(std::io::Error),
    #[error("cannot write the output: {0}")]
    Write(std::io::Error),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("the delivery counter failed: {0}")]
    Counter(#[from] tokio::task::JoinError),
    #[error("{missing} messages not acknowledged: {first}")]
    NotAcknowledged { missing: u64, first: ClientError },
    /// Options clap cannot check together.
    #[error("{0}")]
    Usage(&'static str),
}
