//! Injected I/O errors on the write path of a real broker process (issue 14 item 3): a segment
//! write failing with EIO or ENOSPC, a short segment write, an fdatasync failing while a
//! segment is sealed at a roll, and a failing rename while a topic's layout is created; each
//! under one partition (or one topic) only, produced to over framed, REST and gRPC.
//!
//! For each: the producer is told (and with what), nothing refused is in the log after a
//! restart while every acknowledged message is, once and in order; the failed partition keeps
//! refusing once the fault has stopped firing (`nth=`), so a failed write is never retried and
//! then acknowledged; the other partitions of the topic, on the same shard and on the other,
//! and other topics are served throughout; a restart without the fault reopens the partition.

mod common;
mod fault_client;
mod grpc_client;

use common::{read_topic, Broker, Client, Response};
use fault_client::{key_of, partition_dir, text, Answer, Producers, Transport, RANGES, SHARDS};

/// A write-path fault, set up under partition 0 of its own topic per transport.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The second segment write of the partition fails with EIO.
    WriteEio,
    /// The second segment write fails with ENOSPC (the disk filled up mid-chunk).
    WriteEnospc,
    /// The second segment write writes half the chunk and says so.
    WriteShort,
    /// The fdatasync sealing segment 0 at the roll fails with EIO.
    SyncAtRoll,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::WriteEio,
        Fault::WriteEnospc,
        Fault::WriteShort,
        Fault::SyncAtRoll,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::WriteEio => "write-eio",
            Fault::WriteEnospc => "write-enospc",
            Fault::WriteShort => "write-short",
            Fault::SyncAtRoll => "sync-roll",
        }
    }

    /// The fail point for `topic`'s partition 0 (it fires once: later calls go through).
    fn spec(self, topic: &str) -> String {
        let p0 = format!("/{topic}/{}/", partition_dir(0));
        match self {
            Fault::WriteEio => format!("fs.write=eio(path={p0},nth=2)"),
            Fault::WriteEnospc => format!("fs.write=enospc(path={p0},nth=2)"),
            Fault::WriteShort => format!("fs.write=short(path={p0},nth=2)"),
            Fault::SyncAtRoll => {
                format!("fs.fdatasync=eio(path={p0}00000000000000000000.log,nth=1)")
            }
        }
    }

    /// A message body: big enough under [`Fault::SyncAtRoll`] that the second one rolls the
    /// 64 KiB segment.
    fn body(self, tag: &str, seed: u64) -> Vec<u8> {
        match self {
            Fault::SyncAtRoll => text(tag, 50_000, seed),
            _ => tag.as_bytes().to_vec(),
        }
    }
}

fn topic(f: Fault, t: Transport) -> String {
    format!("{}-{}", f.name(), t.name())
}

/// What one (fault, transport) case saw.
struct Case {
    fault: Fault,
    transport: Transport,
    topic: String,
    /// The answer to the produce the fault hit, and to the one after it.
    first: Answer,
    later: Answer,
    acked: Vec<String>,
    refused: Vec<String>,
}

fn broker_with_faults() -> Broker {
    let mut broker = Broker::new(
        SHARDS,
        &[
            "--ranges-per-shard",
            &RANGES.to_string(),
            "--segment-size",
            "64KiB",
        ],
    );
    let spec: Vec<String> = Fault::ALL
        .iter()
        .flat_map(|f| Transport::ALL.map(|t| f.spec(&topic(*f, t))))
        .chain(
            Transport::ALL.map(|t| format!("fs.rename=eio(path=/new-layout-{}/,nth=1)", t.name())),
        )
        .collect();
    broker
        .env
        .push((shardlog::failpoint::ENV.into(), spec.join(";")));
    broker.spawn();
    broker
}

/// Produces `tag` to partition `j` and records it as acknowledged or refused.
fn produce(p: &mut Producers, c: &mut Case, j: u32, tag: String, seed: u64) -> Answer {
    let (key, _) = key_of(j);
    let a = p.produce(c.transport, &c.topic, &key, &c.fault.body(&tag, seed));
    if a.is_ok() {
        c.acked.push(tag);
    } else {
        c.refused.push(tag);
    }
    a
}

fn run_case(p: &mut Producers, fault: Fault, transport: Transport) -> Case {
    let mut c = Case {
        fault,
        transport,
        topic: topic(fault, transport),
        first: Answer::Ok,
        later: Answer::Ok,
        acked: Vec::new(),
        refused: Vec::new(),
    };
    let t = c.topic.clone();
    let a = produce(p, &mut c, 0, format!("{t}:p0:ok"), 1);
    assert!(a.is_ok(), "{t}: before the fault: {a}");
    c.first = produce(p, &mut c, 0, format!("{t}:p0:refused-1"), 2);
    assert!(!c.first.is_ok(), "{t}: the faulty write was acknowledged");
    // The fault has stopped firing (nth): the partition still refuses, never acknowledges.
    c.later = produce(p, &mut c, 0, format!("{t}:p0:refused-2"), 3);
    assert!(
        !c.later.is_ok(),
        "{t}: a write after the fault was acknowledged"
    );
    // Partition 1 on the same shard, partition 2 on the other shard.
    for j in [1, 2] {
        let a = produce(p, &mut c, j, format!("{t}:p{j}:ok"), 4 + u64::from(j));
        assert!(a.is_ok(), "{t}: partition {j} (shard {}): {a}", key_of(j).1);
    }
    c
}

/// The answer each transport gives to the write that failed, and to every later write of the
/// failed partition: class *storage*, or *resource exhausted* when the disk was full.
fn expected(fault: Fault, transport: Transport) -> &'static str {
    let full = matches!(fault, Fault::WriteEnospc);
    match (transport, full) {
        (Transport::Framed, false) => "5",
        (Transport::Rest, false) => "500",
        (Transport::Grpc, false) => "Internal",
        (Transport::Framed, true) => "10",
        (Transport::Rest, true) => "507",
        (Transport::Grpc, true) => "ResourceExhausted",
    }
}

#[test]
fn write_faults_refuse_one_partition_and_lose_nothing_acknowledged() {
    let mut broker = broker_with_faults();
    let mut p = Producers::new(broker.framed, broker.http);
    let mut cases = Vec::new();
    for f in Fault::ALL {
        for t in Transport::ALL {
            cases.push(run_case(&mut p, f, t));
        }
    }
    // Another topic, on both shards, is served after all of them.
    for j in 0..4 {
        let (key, _) = key_of(j);
        for t in Transport::ALL {
            let a = p.produce(t, "healthy", &key, format!("healthy:{j}").as_bytes());
            assert!(a.is_ok(), "healthy {j} over {t:?}: {a}");
        }
    }
    for c in &cases {
        eprintln!(
            "| {} | {} | {} | {} |",
            c.fault.name(),
            c.transport.name(),
            c.first,
            c.later
        );
    }
    for c in &cases {
        let what = format!("{:?} over {:?}", c.fault, c.transport);
        for a in [&c.first, &c.later] {
            assert_eq!(a.code(), expected(c.fault, c.transport), "{what}: {a}");
        }
        assert!(
            c.later.message().contains("refuses writes"),
            "{what}: {}",
            c.later
        );
    }

    // What is on disk, recovered as the broker would: every acknowledged message once, in
    // order; no refused one.
    broker.kill9();
    for c in &cases {
        let bodies: Vec<String> = read_topic(&broker.data_dir, &c.topic)
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        for tag in &c.refused {
            assert!(
                !bodies.iter().any(|b| b.contains(tag.as_str())),
                "{}: refused {tag} is in the log",
                c.topic
            );
        }
        let found: Vec<&String> = c
            .acked
            .iter()
            .filter(|tag| bodies.iter().filter(|b| b.contains(tag.as_str())).count() == 1)
            .collect();
        assert_eq!(found.len(), c.acked.len(), "{}: {bodies:.80?}", c.topic);
    }

    // Restarted without the fault, each failed partition is recovered and takes writes.
    broker.env.clear();
    broker.spawn();
    let mut p = Producers::new(broker.framed, broker.http);
    let (key, _) = key_of(0);
    for c in &cases {
        let body = c.fault.body(&format!("{}:p0:after", c.topic), 9);
        let a = p.produce(c.transport, &c.topic, &key, &body);
        assert!(a.is_ok(), "{} after a restart: {a}", c.topic);
    }
}

/// A topic whose layout cannot be renamed into place is not created: the producer is told,
/// and the next produce creates it.
#[test]
fn a_failing_layout_rename_refuses_the_produce_that_creates_the_topic() {
    let broker = broker_with_faults();
    let mut p = Producers::new(broker.framed, broker.http);
    let (key, _) = key_of(0);
    // Framed: the topic is created by STARTUP.
    let mut raw = Client::connect(broker.framed);
    raw.send_startup(1, "new-layout-framed");
    let answer = raw.recv().expect("an answer to STARTUP");
    eprintln!("| layout rename | framed STARTUP | {answer:?} |");
    let Response::Error { code, message, .. } = answer else {
        panic!("STARTUP answered {answer:?}");
    };
    assert_eq!(code, 5, "{message}");
    assert!(message.contains("new-layout-framed"), "{message}");
    let a = p.produce(Transport::Framed, "new-layout-framed", &key, b"then");
    assert!(a.is_ok(), "{a}");
    for (t, topic, want) in [
        (Transport::Rest, "new-layout-rest", "500"),
        (Transport::Grpc, "new-layout-grpc", "Internal"),
    ] {
        let a = p.produce(t, topic, &key, b"refused");
        eprintln!("| layout rename | {} | {a} |", t.name());
        assert_eq!(a.code(), want, "{a}");
        assert!(a.message().contains(topic), "{a}");
        let a = p.produce(t, topic, &key, b"then");
        assert!(a.is_ok(), "{topic}, once the rename works: {a}");
    }
}
