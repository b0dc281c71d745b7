//! `consume`: as a consumer-group member (`--group`), or one partition from an offset or a
//! time (`--partition`, no group, nothing committed).
//!
//! A group member commits exactly what it printed: after printing from a poll it commits
//! through the printed records (a COMMIT with explicit positions, auto-commit off). When
//! `--count` needs only part of a poll, the rest is not printed, and GOODBYE — which in that
//! mode commits of each partition of the last poll only what was committed — leaves it to the
//! group's next read, which starts right after the N-th record. Ctrl-C, or a failure, during a
//! poll leaves differently: the broker may have answered a poll that was never printed, and
//! GOODBYE would confirm it, so the member first registers again with its id (a new session,
//! which drops the positions of that poll; commits made stay) and then says GOODBYE. Leaving
//! without GOODBYE would keep the member's partitions from the rest of the group until the
//! broker's consumer timeout.

use std::sync::Arc;

use shardlog_client::consumer::StartPolicy;
use shardlog_client::{
    ClientError, Consumer, ConsumerConfig, PartitionReader, ReaderConfig, Record,
};
use tokio::sync::Notify;

use crate::cli::{ConsumeArgs, Format};
use crate::error::CtlError;
use crate::output::{PartitionIndex, Printer};

pub async fn run(broker: &str, http: &str, args: ConsumeArgs) -> Result<(), CtlError> {
    let interrupted = ctrl_c();
    let partitions = match args.format {
        // Only JSON names partitions; text needs no HTTP port.
        Format::Json => PartitionIndex::fetch(http, &args.topic).await,
        Format::Text => PartitionIndex::default(),
    };
    let mut printer = Printer::new(args.format, partitions);
    match (&args.group, args.partition) {
        (Some(group), _) => with_group(broker, group, &args, &mut printer, &interrupted).await,
        (None, Some(p)) => from_partition(broker, p, &args, &mut printer, &interrupted).await,
        // clap requires one of them.
        (None, None) => Err(CtlError::Usage("--group or --partition is required")),
    }
}

/// A permit is stored when Ctrl-C is pressed, so a press between polls is not missed.
fn ctrl_c() -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    let n = notify.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            n.notify_one();
        }
    });
    notify
}

/// How many of `records` to print with `printed` already printed out of `count`.
fn wanted(records: &[Record], printed: u64, count: Option<u64>) -> usize {
    match count {
        None => records.len(),
        Some(n) => {
            let left = n.saturating_sub(printed);
            records
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX))
        }
    }
}

/// How a member leaves: GOODBYE after committing what it printed of its last poll, or after
/// dropping a poll it never printed.
#[derive(PartialEq)]
enum Leave {
    Committed,
    Discard,
}

async fn with_group(
    broker: &str,
    group: &str,
    args: &ConsumeArgs,
    printer: &mut Printer,
    interrupted: &Notify,
) -> Result<(), CtlError> {
    let id = args.id.clone().unwrap_or_else(default_id);
    let config = ConsumerConfig {
        start: if args.from_beginning {
            StartPolicy::Earliest
        } else {
            StartPolicy::Latest
        },
        auto_commit: false,
        ..ConsumerConfig::new(broker, group, id, &[args.topic.as_str()])
    };
    let mut consumer = Consumer::join(config).await?;
    let mut printed = 0u64;
    let mut failed = None;
    let leave = loop {
        if args.count.is_some_and(|n| printed >= n) {
            break Leave::Committed;
        }
        let records = tokio::select! {
            r = consumer.poll() => r,
            _ = interrupted.notified() => break Leave::Discard,
        };
        let records = match records {
            Ok(records) => records,
            Err(e) => {
                failed = Some(CtlError::from(e));
                break Leave::Discard;
            }
        };
        if records.is_empty() {
            if args.follow {
                continue;
            }
            break Leave::Committed;
        }
        let n = wanted(&records, printed, args.count);
        if let Err(e) = printer.print(&records[..n]) {
            failed = Some(e);
            break Leave::Discard;
        }
        printed += n as u64;
        if let Err(e) = consumer.commit_records(&records[..n]).await {
            // Whether it was applied is unknown; dropping the poll is safe either way.
            failed = Some(CtlError::from(e));
            break Leave::Discard;
        }
    };
    // After a failure, leaving is best effort and the failure is what is reported.
    let left = leave_group(consumer, leave).await;
    match failed {
        Some(why) => Err(why),
        None => Ok(left?),
    }
}

/// GOODBYE, after dropping the last poll if it must not be committed. If dropping it fails,
/// no GOODBYE: it would commit what was not printed (the broker forgets the member after its
/// consumer timeout instead).
async fn leave_group(mut consumer: Consumer, leave: Leave) -> Result<(), ClientError> {
    if leave == Leave::Discard {
        consumer.discard_last_poll().await?;
    }
    consumer.close().await
}

async fn from_partition(
    broker: &str,
    partition: u32,
    args: &ConsumeArgs,
    printer: &mut Printer,
    interrupted: &Notify,
) -> Result<(), CtlError> {
    let mut config = ReaderConfig::new(
        broker,
        args.topic.as_str(),
        partition,
        args.offset.unwrap_or(0),
    );
    config.start_time_us = args.from_time;
    let mut reader = PartitionReader::connect(config).await?;
    let mut printed = 0u64;
    while args.count.is_none_or(|n| printed < n) {
        let records = tokio::select! {
            r = reader.next_batch() => r?,
            _ = interrupted.notified() => break,
        };
        if records.is_empty() && !args.follow {
            break;
        }
        let n = wanted(&records, printed, args.count);
        printer.print(&records[..n])?;
        printed += n as u64;
    }
    Ok(())
}

/// `shardlogctl-HOST-PID`: unique among members, so two runs never share a session.
fn default_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("shardlogctl-{host}-{}", std::process::id())
}
