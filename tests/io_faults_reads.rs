//! Injected I/O errors off the produce path of a real broker process (issue 14 item 3): EIO on
//! every segment read of one partition, read over gRPC Consume, framed POLL and REST poll; and
//! a consumer offsets file whose fdatasync or rename fails, committed over framed COMMIT and
//! REST commit.
//!
//! A read error answers the reader with an error (never a hang, never records that are not
//! there) and leaves the partition taking writes; a failed commit is answered with an error
//! and, after a restart, the group resumes from its last saved commit (records are delivered
//! again, none skipped); every other partition, topic and group is served throughout.

mod common;
mod fault_client;
mod grpc_client;

use common::consumer::{bodies, ConsumerClient};
use common::http::HttpClient;
use common::Broker;
use fault_client::{key_of, partition_dir, Answer, Producers, Transport, RANGES, SHARDS};
use shardlog::wire::consumer::StartPolicy;

fn broker(spec: &str) -> Broker {
    let ranges = RANGES.to_string();
    // No hot tail: every read goes to the segment files.
    let mut broker = Broker::new(SHARDS, &["--ranges-per-shard", &ranges, "--hot-tail", "0"]);
    broker
        .env
        .push((shardlog::failpoint::ENV.into(), spec.to_string()));
    broker.spawn();
    broker
}

/// Produces `body` to partition `j` of `topic` (framed), which must be acknowledged.
fn produce_ok(p: &mut Producers, topic: &str, j: u32, body: &str) {
    let a = p.produce(Transport::Framed, topic, &key_of(j).0, body.as_bytes());
    assert!(a.is_ok(), "{topic} partition {j}: {a}");
}

/// A framed consumer's POLL, as an [`Answer`] plus the bodies it brought.
fn framed_poll(c: &mut ConsumerClient, id: &str) -> (Answer, Vec<String>) {
    match c.poll(id, Some(0)) {
        Ok(items) => (Answer::Ok, bodies(&items)),
        Err((code, message)) => (Answer::Framed(code, message), Vec::new()),
    }
}

/// A REST poll (binary), as an [`Answer`] plus the bodies it brought.
fn rest_poll(c: &mut HttpClient, id: &str) -> (Answer, Vec<String>) {
    let r = c.poll_raw(id, Some(0), None);
    match r.status {
        200 => (Answer::Ok, bodies(&common::consumer::decode_items(&r.body))),
        204 => (Answer::Ok, Vec::new()),
        s => (Answer::Http(s, r.text()), Vec::new()),
    }
}

#[test]
fn a_read_error_answers_the_reader_and_leaves_the_partition_writable() {
    let topics = Transport::ALL.map(|t| format!("read-eio-{}", t.name()));
    let spec: Vec<String> = topics
        .iter()
        .map(|t| {
            format!(
                "fs.read=eio(path=/{t}/{}/00000000000000000000.log)",
                partition_dir(0)
            )
        })
        .collect();
    let broker = broker(&spec.join(";"));
    let mut p = Producers::new(broker.framed, broker.http);
    for t in &topics {
        for j in 0..4 {
            produce_ok(&mut p, t, j, &format!("{t}:p{j}:0"));
        }
    }

    // gRPC Consume: partition 0 fails, the others are read.
    let t = &topics[2];
    let a = p.grpc_read(t, 0, 0).unwrap_err();
    eprintln!("| read EIO | gRPC Consume | {a} |");
    assert_eq!(a.code(), "Internal", "{a}");
    for j in 1..4 {
        let got = p
            .grpc_read(t, j, 0)
            .unwrap_or_else(|a| panic!("{t} {j}: {a}"));
        assert_eq!(got, format!("{t}:p{j}:0").into_bytes());
    }

    // Framed POLL.
    let t = &topics[0];
    let mut c = ConsumerClient::connect(broker.framed);
    c.register("cf", "gf", &[t], StartPolicy::Earliest).unwrap();
    let mut answers = Vec::new();
    let mut got = Vec::new();
    for _ in 0..8 {
        let (a, b) = framed_poll(&mut c, "cf");
        answers.push(a);
        got.extend(b);
    }
    eprintln!("| read EIO | framed POLL | {answers:?} {got:?} |");
    check_polls(t, &answers, &got);

    // REST poll.
    let t = &topics[1];
    let mut c = HttpClient::connect(broker.http);
    let r = c.register("cr", "gr", &[t], "startFromEarliest");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut answers = Vec::new();
    let mut got = Vec::new();
    for _ in 0..8 {
        let (a, b) = rest_poll(&mut c, "cr");
        answers.push(a);
        got.extend(b);
    }
    eprintln!("| read EIO | REST poll | {answers:?} {got:?} |");
    check_polls(t, &answers, &got);

    // The partitions whose reads fail still take writes, on every transport.
    for (tr, t) in Transport::ALL.iter().zip(&topics) {
        let a = p.produce(*tr, t, &key_of(0).0, format!("{t}:p0:1").as_bytes());
        assert!(a.is_ok(), "{t}: a write after read errors: {a}");
    }
}

/// Polls of a group over a topic whose partition 0 cannot be read: an error is an error (of
/// class storage), never records that are not there; the other partitions' records arrive.
fn check_polls(topic: &str, answers: &[Answer], got: &[String]) {
    for a in answers.iter().filter(|a| !a.is_ok()) {
        assert!(["5", "500"].contains(&a.code().as_str()), "{topic}: {a}");
    }
    assert!(
        answers.iter().any(|a| !a.is_ok()),
        "{topic}: the read error reached the consumer"
    );
    for b in got {
        assert!(!b.contains(":p0:"), "{topic}: {b} cannot have been read");
    }
    for j in 1..4 {
        let want = format!("{topic}:p{j}:0");
        assert!(got.contains(&want), "{topic}: {want} in {got:?}");
    }
}

/// A group's offsets file that cannot be saved: every fdatasync, every rename, or every write
/// (ENOSPC) of it fails.
fn offsets_fault(group: &str) -> String {
    let file = format!("/@consumer_offsets/{group}.offsets");
    if group.starts_with("sync") {
        format!("fs.fdatasync=eio(path={file})")
    } else if group.starts_with("full") {
        format!("fs.write_buffered=enospc(path={file})")
    } else {
        format!("fs.rename=eio(path={file})")
    }
}

/// The answer to a commit of `group` that cannot be saved: class *storage*, or *resource
/// exhausted* when the disk is full.
fn refused_commit(group: &str) -> [&'static str; 2] {
    if group.starts_with("full") {
        ["10", "507"]
    } else {
        ["5", "500"]
    }
}

#[test]
fn a_commit_that_cannot_be_saved_is_refused_and_nothing_is_skipped() {
    let faulty = [
        "sync-framed",
        "sync-rest",
        "rename-framed",
        "rename-rest",
        "full-framed",
        "full-rest",
    ];
    let spec: Vec<String> = faulty.iter().map(|g| offsets_fault(g)).collect();
    let mut broker = broker(&spec.join(";"));
    let topic = "offsets";
    let mut p = Producers::new(broker.framed, broker.http);
    for j in 0..4 {
        produce_ok(&mut p, topic, j, &format!("{topic}:p{j}"));
    }
    let everything: Vec<String> = (0..4).map(|j| format!("{topic}:p{j}")).collect();

    // Each group reads everything, then commits: refused for the faulty ones.
    let mut framed = ConsumerClient::connect(broker.framed);
    let mut rest = HttpClient::connect(broker.http);
    for group in faulty
        .iter()
        .copied()
        .chain(["healthy-framed", "healthy-rest"])
    {
        let id = format!("c-{group}");
        let healthy = group.starts_with("healthy");
        let (answer, mut got) = if group.ends_with("framed") {
            framed
                .register(&id, group, &[topic], StartPolicy::Earliest)
                .unwrap();
            let got = common::consumer::drain(&mut framed, &id);
            let a = match framed.commit(&id) {
                Ok(()) => Answer::Ok,
                Err((code, message)) => Answer::Framed(code, message),
            };
            (a, bodies(&got))
        } else {
            let r = rest.register(&id, group, &[topic], "startFromEarliest");
            assert_eq!(r.status, 200, "{group}: {}", r.text());
            let got = rest.drain(&id);
            let r = rest.commit(&id);
            let a = match r.status {
                200 | 204 => Answer::Ok,
                s => Answer::Http(s, r.text()),
            };
            (a, bodies(&got))
        };
        eprintln!("| offsets {group} | commit | {answer} |");
        got.sort();
        assert_eq!(got, everything, "{group}");
        if healthy {
            assert!(answer.is_ok(), "{group}: {answer}");
        } else {
            let want = refused_commit(group);
            assert!(want.contains(&answer.code().as_str()), "{group}: {answer}");
            assert!(answer.message().contains(group), "{group}: {answer}");
        }
    }

    // After a restart without the faults: a group whose commit was refused is given its
    // records again (none skipped); a group whose commit was answered is not.
    broker.env.clear();
    broker.restart();
    let mut framed = ConsumerClient::connect(broker.framed);
    for group in faulty
        .iter()
        .copied()
        .chain(["healthy-framed", "healthy-rest"])
    {
        let id = format!("c-{group}");
        framed
            .register(&id, group, &[topic], StartPolicy::Earliest)
            .unwrap();
        let mut got = bodies(&common::consumer::drain(&mut framed, &id));
        got.sort();
        if group.starts_with("healthy") {
            assert!(got.is_empty(), "{group} after its commit: {got:?}");
        } else {
            assert_eq!(got, everything, "{group} after a refused commit");
        }
    }
}
