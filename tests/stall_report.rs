//! `--stall-report` (issue 16, item 4): a task that holds a shard's executor past its budget
//! is reported with the thread's backtrace, so a scheduling-delay tail can be traced to the
//! code that caused it. The `writer.submit=sleep(MS)` fail point blocks the shard's thread in
//! `PartitionWriter::submit`, as a task that never yields would.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::framed::FramedProducer;
use common::Broker;

/// Starts `broker` with its log into a channel, line by line; returns once it is ready, with
/// the lines logged until then.
fn spawn_with_log(broker: &mut Broker) -> (mpsc::Receiver<String>, Vec<String>) {
    let mut child = broker
        .command()
        .env("RUST_LOG", "warn,shardlog::broker=info,shardlog::rt=info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start shardlog");
    let stdout = child.stdout.take().expect("piped stdout");
    broker.child = Some(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut start = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("shardlog ready") => return (rx, start),
            Ok(line) => start.push(line),
            Err(e) => panic!("the broker did not become ready: {e}"),
        }
    }
}

/// Waits (at most a minute) for a log line containing `what`.
fn wait_for_line(rx: &mpsc::Receiver<String>, what: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(what) {
            return Some(line);
        }
    }
    None
}

#[test]
fn a_task_that_holds_the_shard_is_reported_and_the_broker_keeps_serving() {
    let mut broker = Broker::new(1, &["--stall-report", "5ms"]);
    broker.env.push((
        "SHARDLOG_FAILPOINTS".into(),
        "writer.submit=sleep(60)".into(),
    ));
    let (log, start) = spawn_with_log(&mut broker);
    let mut p = FramedProducer::startup(broker.framed, "stalls");
    for i in 0..3 {
        let body = format!("m{i}");
        assert_eq!(p.produce(b"k", &[body.as_bytes()]), Ok(()));
    }
    let report = wait_for_line(&log, "went over-budget")
        .expect("no stall report for a shard blocked 60 ms with --stall-report 5ms");
    assert!(report.contains("stall-detector"), "{report}");
    // The report names the shard's executor, which the shard logged at start.
    let named = start
        .iter()
        .find(|l| l.contains("stall reports name this shard"))
        .expect("the shard did not log its executor");
    let executor = named
        .split("executor=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("an executor number");
    assert!(
        report.contains(&format!("executor {executor}]")),
        "{report} / {named}"
    );
    assert_eq!(p.produce(b"k", &[b"after the report"]), Ok(()));
}

#[test]
fn without_the_flag_a_blocked_shard_is_not_reported() {
    let mut broker = Broker::new(1, &[]);
    broker.env.push((
        "SHARDLOG_FAILPOINTS".into(),
        "writer.submit=sleep(60)".into(),
    ));
    let (log, start) = spawn_with_log(&mut broker);
    assert!(
        !start.iter().any(|l| l.contains("stall reports")),
        "{start:?}"
    );
    let mut p = FramedProducer::startup(broker.framed, "stalls");
    for i in 0..3 {
        let body = format!("m{i}");
        assert_eq!(p.produce(b"k", &[body.as_bytes()]), Ok(()));
    }
    drop(p);
    broker.terminate(Duration::from_secs(30));
    // Everything it wrote: the reader ends at the closed pipe.
    let mut lines = Vec::new();
    while let Ok(line) = log.recv_timeout(Duration::from_secs(10)) {
        lines.push(line);
    }
    assert!(
        !lines.iter().any(|l| l.contains("went over-budget")),
        "{lines:?}"
    );
}
