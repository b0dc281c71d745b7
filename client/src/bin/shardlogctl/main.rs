//! `shardlogctl`: the broker from a shell — topics and groups (the admin API on the HTTP
//! port), producing lines, consuming with a group or reading one partition (the framed
//! protocol). Built on `shardlog-client` only, so it runs on any machine that reaches a broker.
//!
//! Exit codes: 0 success, 1 a broker or connection error (one line on stderr), 2 bad usage.

mod cli;
mod consume;
mod error;
mod group;
mod output;
mod produce;
mod topic;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    // clap prints usage errors and exits 2 itself (0 for --help and --version).
    let cli = Cli::parse();
    // One thread is plenty for one command, and keeps the tool light.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&error::CtlError::Runtime(e)),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Topic(cmd) => topic::run(&cli.http, cmd).await,
            Command::Group(cmd) => group::run(&cli.http, cmd).await,
            Command::Produce(args) => produce::run(&cli.broker, &cli.http, args).await,
            Command::Consume(args) => consume::run(&cli.broker, &cli.http, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => fail(&why),
    }
}

/// One line on stderr, exit code 1.
fn fail(why: &error::CtlError) -> ExitCode {
    let line = why.to_string().replace('\n', " ");
    eprintln!("shardlogctl: {line}");
    ExitCode::from(1)
}
