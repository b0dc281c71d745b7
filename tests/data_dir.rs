//! The data directory belongs to one broker: a second broker on it refuses to start (and the
//! first keeps serving), a crashed broker's lock does not outlive it, and files the broker did
//! not create are ignored rather than stopping start-up.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::consumer::{bodies, drain, produce_keyed, ConsumerClient};
use common::framed::FramedProducer;
use common::Broker;
use shardlog::wire::consumer::StartPolicy;

/// The lock file in the data directory (a name no topic can have).
const LOCK_FILE: &str = "@lock";

#[test]
fn a_second_broker_on_the_same_data_dir_refuses_and_the_first_keeps_serving() {
    let first = Broker::start(1);
    let mut c = FramedProducer::startup(first.framed, "t");
    assert_eq!(c.produce(b"", &[b"before"]), Ok(()));

    let second = first.sharing_data_dir();
    let mut child = second
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the second shardlog");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second shardlog on a data directory in use is still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("second broker: {status}\nstderr:\n{stderr}\nstdout:\n{stdout}");
    assert!(
        !status.success(),
        "the second broker must fail, got {status}"
    );
    let pid = format!("pid {}", first.pid());
    let lines: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("in use"))
        .collect();
    assert_eq!(lines.len(), 1, "one line saying the directory is in use");
    assert!(
        lines[0].contains(&pid),
        "names the holder ({pid}): {}",
        lines[0]
    );
    assert!(
        lines[0].contains(&first.data_dir.display().to_string()),
        "names the directory: {}",
        lines[0]
    );

    // The first broker is untouched: it still takes writes and serves what it had.
    assert_eq!(c.produce(b"", &[b"after"]), Ok(()));
    let mut fresh = FramedProducer::startup(first.framed, "t");
    assert_eq!(fresh.produce(b"", &[b"fresh"]), Ok(()));
    let mut cc = ConsumerClient::connect(first.framed);
    cc.register("c", "g", &["t"], StartPolicy::Earliest)
        .unwrap();
    let mut got = bodies(&drain(&mut cc, "c"));
    got.sort();
    assert_eq!(got, ["after", "before", "fresh"]);
}

#[test]
fn a_killed_brokers_lock_is_released_and_a_restart_takes_it() {
    let mut broker = Broker::start(1);
    let lock = broker.data_dir.join(LOCK_FILE);
    let holder = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(holder(&lock).trim(), broker.pid().to_string());
    let produced = produce_keyed(broker.framed, "k", 50, 5, "a");

    broker.kill9();
    // Still there, with the dead process's pid: the kernel released the flock, not the file.
    assert!(lock.exists());
    broker.spawn();
    assert_eq!(holder(&lock).trim(), broker.pid().to_string());
    let mut c = FramedProducer::startup(broker.framed, "k");
    assert_eq!(c.produce(b"k", &[b"after"]), Ok(()));
    let mut cc = ConsumerClient::connect(broker.framed);
    cc.register("c", "g", &["k"], StartPolicy::Earliest)
        .unwrap();
    assert_eq!(bodies(&drain(&mut cc, "c")).len(), produced.len() + 1);
}

#[test]
fn stray_files_and_directories_in_the_data_dir_are_ignored() {
    let mut broker = Broker::start(2);
    let produced = produce_keyed(broker.framed, "orders", 100, 7, "a");
    assert!(broker.terminate(Duration::from_secs(20)).success());

    let d = broker.data_dir.clone();
    // A stray file whose name is a valid topic name.
    std::fs::write(d.join("notes.txt"), "remember the milk").unwrap();
    // A plain file named like a topic.
    std::fs::write(d.join("orders2"), "").unwrap();
    // An editor's backup directory: not a valid topic name.
    std::fs::create_dir(d.join("backup~")).unwrap();
    std::fs::write(d.join("backup~").join("topic.toml"), "not toml at all [").unwrap();
    // A topic-named directory without a layout: empty, and with something in it.
    std::fs::create_dir(d.join("empty")).unwrap();
    std::fs::create_dir(d.join("leftover")).unwrap();
    std::fs::write(d.join("leftover").join("README"), "old stuff").unwrap();
    // An editor's swap file of a layout, inside a topic.
    std::fs::write(d.join("orders").join(".topic.toml.swp"), "x").unwrap();

    broker.spawn();
    let mut cc = ConsumerClient::connect(broker.framed);
    cc.register("c", "g", &["orders"], StartPolicy::Earliest)
        .unwrap();
    let mut got = bodies(&drain(&mut cc, "c"));
    let mut want: Vec<String> = produced.into_iter().map(|(_, b)| b).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "the existing topic's data is all there");

    // New writes work, to the old topic and to a topic whose empty directory was there.
    let mut c = FramedProducer::startup(broker.framed, "orders");
    assert_eq!(c.produce(b"x", &[b"more"]), Ok(()));
    let mut e = FramedProducer::startup(broker.framed, "empty");
    assert_eq!(e.produce(b"", &[b"first"]), Ok(()));
    // The strays are left as they were.
    assert!(d.join("notes.txt").is_file() && d.join("orders2").is_file());
    assert!(d.join("leftover").join("README").is_file());
}
