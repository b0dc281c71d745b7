//! The command line: one subcommand per workload, with the flags every workload shares
//! ([`Common`]) flattened into each; one file per subcommand's flags. Every broker workload is
//! driven the same way, through [`Workload`]: validate (exit 2), catch Ctrl-C, run (exit 1 when
//! it cannot start), print the report (exit 1 when the run failed).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use crate::run::{Report, Workload};
use crate::workload::e2e::E2e;

mod chaos;
mod common;
mod consume;
mod grpc;
mod limits;
mod produce;
#[cfg(test)]
mod tests;

pub use chaos::ChaosArgs;
pub use common::{fresh_group, Common, CpuList};
pub use consume::{ConsumeArgs, ConsumeFlags, E2eArgs};
pub use grpc::{GrpcConsumeArgs, GrpcProduceArgs};
pub use limits::{LimitKind, LimitsArgs};
pub use produce::{ProduceArgs, ProduceFlags, EXIT_VERIFY_FAILED};

#[derive(Debug, Parser)]
#[command(
    name = "shardlog-perf",
    version,
    about = "Load harness for the shardlog broker: throughput and latency percentiles"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Produce over the framed protocol (PRODUCE frames, acknowledged once durable).
    Produce(ProduceArgs),
    /// Consume over the framed protocol: consumers in a group poll and decode the records.
    Consume(ConsumeArgs),
    /// Produce (with timestamps) while consuming the same topic: end-to-end latency.
    E2e(E2eArgs),
    /// Produce over gRPC (`atomix.log.LogService/Produce` on the HTTP port): concurrent
    /// client-streaming calls of `--values-per-call` values, each answered once durable.
    GrpcProduce(GrpcProduceArgs),
    /// Consume over gRPC (`atomix.log.LogService/Consume`), one stream per partition.
    GrpcConsume(GrpcConsumeArgs),
    /// Measure this machine's limits: one-core zstd rate of the payload, fdatasync latency of
    /// chunk-sized O_DIRECT appends, O_DIRECT sequential write and read bandwidth.
    Limits(LimitsArgs),
    /// Crash loop: start the broker, load it (framed and gRPC produce, consumer groups), kill
    /// it (SIGKILL, SIGSTOP pauses) and restart it, checking after every restart that every
    /// acknowledged message is there exactly once, in order per key, and that groups resume.
    Chaos(ChaosArgs),
}

/// Set by the first Ctrl-C (SIGINT): the run stops sending, drains, and reports.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // A second Ctrl-C ends the process at once. (Both calls are async-signal-safe.)
    // SAFETY: restoring the default disposition of SIGINT from its own handler.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

fn catch_sigint() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic and calls signal(2).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
}

fn print_report(report: &Report, json: bool) -> ExitCode {
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if let Some(f) = &report.failure {
        eprintln!("error: the run failed: {f}");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Makes the workload stop on Ctrl-C and checks its settings (bad ones: exit 2).
fn prepare<W: Workload>(mut workload: W) -> Result<W, ExitCode> {
    workload.stop_on(&INTERRUPTED);
    match workload.validate() {
        Ok(()) => Ok(workload),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// Catches Ctrl-C and runs the workload (one that cannot start: exit 1).
fn launch<W: Workload>(workload: W) -> Result<W::Outcome, ExitCode> {
    catch_sigint();
    workload.run().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    })
}

/// Prepares, launches, and prints the report of a workload.
fn drive<W: Workload>(workload: W, json: bool) -> ExitCode {
    match prepare(workload).and_then(launch) {
        Ok(outcome) => print_report(outcome.as_ref(), json),
        Err(code) => code,
    }
}

/// Runs the command; the exit code is 0 on success, 1 when the run failed, 2 on bad usage,
/// 3 when `--verify` found acknowledged messages missing, duplicated, reordered or corrupt, or
/// `chaos` found a violation.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => drive(args.flags.config(&args.common, false), args.common.json),
        Command::E2e(args) => {
            if args.produce.verify {
                eprintln!("error: --verify belongs to produce, not e2e");
                return ExitCode::from(2);
            }
            let e2e = E2e::new(
                args.produce.config(&args.common),
                args.consume.config(&args.common, true),
            );
            drive(e2e, args.common.json)
        }
        Command::GrpcProduce(args) => drive(args.config(), args.common.json),
        Command::GrpcConsume(args) => drive(args.config(), args.common.json),
        Command::Limits(args) => limits::run(args),
        Command::Chaos(args) => chaos::run(args),
    }
}
