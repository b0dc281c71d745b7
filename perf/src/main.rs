//! `shardlog-perf`: CLI → run. Everything else is in the library (`src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    shardlog_perf::cli::run(shardlog_perf::cli::Cli::parse())
}
