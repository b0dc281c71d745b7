//! `shardlogctl` (the client crate's command-line tool) against a real broker: topics are
//! created, listed, described and deleted, groups listed, described and reset; lines are produced keyed and
//! keyless from stdin and a file; a group reads them all back as text and JSON (a value that is
//! not UTF-8 in base64); `--count N` commits exactly the N records printed, also when they end
//! inside a poll or a stored chunk; Ctrl-C leaves the group; a partition is read from an
//! offset; a broker that cannot be reached is exit 1 with one line, bad usage exit 2.

mod common;

use std::process::{Command, Stdio};

use common::ctl::{ctl, ctl_binary, noisy_lines, ok};
use common::Broker;
use serde_json::Value;
use shardlog_client::wire::ring::TopicLayout;

#[test]
fn topics_are_created_listed_and_described() {
    let broker = Broker::start_with(2, &["--ranges-per-shard", "2"]);
    let out = ok(
        &broker,
        &["topic", "create", "orders", "--partitions", "4"],
        b"",
    );
    assert_eq!(out, "orders created (4 partitions)\n");
    let out = ok(&broker, &["topic", "create", "orders"], b"");
    assert_eq!(out, "orders exists (4 partitions)\n");
    ok(&broker, &["topic", "create", "audit"], b"");
    assert_eq!(
        ok(&broker, &["topic", "list"], b""),
        "audit\t4\norders\t4\n"
    );

    ok(&broker, &["produce", "orders", "--key", "k"], b"one\ntwo\n");
    let table = ok(&broker, &["topic", "describe", "orders"], b"");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 5, "{table}");
    assert_eq!(rows[0][0], "PARTITION", "{table}");
    // partition, token, range, shard, first, next, bytes: both messages in one partition.
    let next: Vec<&str> = rows[1..].iter().map(|r| r[5]).collect();
    assert_eq!(next.iter().filter(|n| **n == "2").count(), 1, "{table}");
    assert_eq!(next.iter().filter(|n| **n == "0").count(), 3, "{table}");

    let out = ctl(&broker, &["topic", "describe", "nope"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}

#[test]
fn a_topic_is_deleted_with_its_groups_offsets() {
    let broker = Broker::start(2);
    ok(
        &broker,
        &["topic", "create", "orders", "--partitions", "2"],
        b"",
    );
    ok(
        &broker,
        &["topic", "create", "kept", "--partitions", "3"],
        b"",
    );
    ok(&broker, &["produce", "orders"], b"one\ntwo\n");
    let out = ok(
        &broker,
        &[
            "consume",
            "orders",
            "--group",
            "billing",
            "--from-beginning",
        ],
        b"",
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(broker.data_dir.join("orders").exists());

    let out = ok(&broker, &["topic", "delete", "orders"], b"");
    assert_eq!(
        out,
        "orders deleted (2 partitions)\ncommitted offsets dropped for: billing\n"
    );
    assert_eq!(ok(&broker, &["topic", "list"], b""), "kept\t3\n");
    assert!(!broker.data_dir.join("orders").exists());

    let out = ctl(&broker, &["topic", "delete", "orders"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("shardlogctl: "), "{err}");
    assert!(
        err.contains("404") && err.contains("'orders' does not exist"),
        "{err}"
    );
    // Said once, and without the auto-create hint: a delete never creates, whatever the flag.
    assert!(
        !err.contains("topic: topic") && !err.contains("auto-create"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = ctl(&broker, &["topic", "delete", "a/b"], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = ctl(&broker, &["topic", "delete"], b"");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn lines_produced_come_back_to_a_group_as_text_and_json() {
    let broker = Broker::start_with(2, &["--ranges-per-shard", "2"]);
    ok(&broker, &["topic", "create", "events"], b"");
    let out = ok(
        &broker,
        &["produce", "events", "--key-separator", "="],
        b"a=1\nb=2\nc=3\nplain\n",
    );
    assert_eq!(out, "4 of 4 messages acknowledged\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines");
    std::fs::write(&file, b"from-file\r\nbin\xff\xfe\n\n").unwrap();
    let path = file.to_str().unwrap();
    let out = ok(&broker, &["produce", "events", "--file", path], b"");
    assert_eq!(out, "2 of 2 messages acknowledged\n");

    let text = ctl(
        &broker,
        &["consume", "events", "--group", "g1", "--from-beginning"],
        b"",
    );
    assert!(text.status.success(), "{text:?}");
    // Values exactly as stored, bytes that are not UTF-8 included.
    let mut lines: Vec<&[u8]> = text.stdout.split(|b| *b == b'\n').collect();
    assert_eq!(lines.pop(), Some(&b""[..]), "ends with a newline");
    lines.sort_unstable();
    let want: [&[u8]; 6] = [b"1", b"2", b"3", b"bin\xff\xfe", b"from-file", b"plain"];
    assert_eq!(lines, want);

    let json = ok(
        &broker,
        &[
            "consume",
            "events",
            "--group",
            "g2",
            "--from-beginning",
            "--format",
            "json",
        ],
        b"",
    );
    let layout = TopicLayout::new(2, 2);
    let mut values = Vec::new();
    for line in json.lines() {
        let v: Value = serde_json::from_str(line).expect("one JSON object per line");
        assert_eq!(v["topic"], "events");
        // The partition's index, from the topic's description.
        assert!(v["partition"].as_u64().is_some_and(|p| p < 4), "{line}");
        assert!(v["offset"].as_i64().is_some() && v["timestamp"].as_i64().is_some());
        let value = v["value"].as_str().expect("a string value").to_string();
        // Keyed lines went to their key's partition.
        if let Some(key) = [("1", "a"), ("2", "b"), ("3", "c")]
            .iter()
            .find_map(|(val, key)| (*val == value).then_some(key))
        {
            let j = layout.partition_of_key(key.as_bytes());
            assert_eq!(v["partition"].as_u64(), Some(u64::from(j)), "{line}");
        }
        match v.get("encoding") {
            Some(e) => {
                assert_eq!(e, "base64");
                values.push(format!("base64:{value}"));
            }
            None => values.push(value),
        }
    }
    values.sort();
    assert_eq!(
        values,
        ["1", "2", "3", "base64:Ymlu//4=", "from-file", "plain"].map(String::from)
    );
    // The group committed everything: it has nothing left.
    assert_eq!(
        ok(&broker, &["consume", "events", "--group", "g2"], b""),
        ""
    );

    // Over four partitions, one poll: --count commits exactly what it printed, so two reads
    // of one group get every record once.
    let args = [
        "consume",
        "events",
        "--group",
        "g3",
        "--from-beginning",
        "--format",
        "json",
    ];
    let first = ok(&broker, &[&args[..], &["--count", "4"]].concat(), b"");
    let rest = ok(&broker, &[&args[..], &["--count", "10"]].concat(), b"");
    assert_eq!(first.lines().count(), 4, "{first}");
    let mut positions: Vec<(u64, i64)> = first
        .lines()
        .chain(rest.lines())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            (
                v["partition"].as_u64().unwrap_or(99),
                v["offset"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), 6, "{first}{rest}");
}

#[test]
fn count_commits_exactly_what_was_printed() {
    let broker = Broker::start_with(1, &["--ranges-per-shard", "1", "--max-poll-bytes", "1KiB"]);
    ok(&broker, &["topic", "create", "t", "--partitions", "1"], b"");
    // Two produce runs: two chunks, offsets 0..3 and 3..5.
    let first = noisy_lines(1, 3, 3000);
    let second = noisy_lines(2, 2, 3000);
    ok(
        &broker,
        &["produce", "t"],
        (first.join("\n") + "\n").as_bytes(),
    );
    ok(
        &broker,
        &["produce", "t"],
        (second.join("\n") + "\n").as_bytes(),
    );
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let consume = |group: &str, count: &str| {
        let args = [
            "consume",
            "t",
            "--group",
            group,
            "--from-beginning",
            "--count",
            count,
        ];
        ok(&broker, &args, b"")
            .lines()
            .map(String::from)
            .collect::<Vec<String>>()
    };

    // Three records end the first poll: exactly they are committed, the rest comes next.
    assert_eq!(consume("exact", "3"), all[..3]);
    assert_eq!(consume("exact", "10"), all[3..]);
    assert!(consume("exact", "10").is_empty());

    // Two of the first poll's three: exactly they are committed (explicit positions), and the
    // group's next read starts inside that chunk.
    assert_eq!(consume("part", "2"), all[..2]);
    assert_eq!(consume("part", "2"), all[2..4]);
    assert_eq!(consume("part", "10"), all[4..]);

    // The groups, as the admin API shows them: no live members left, all committed.
    assert_eq!(ok(&broker, &["group", "list"], b""), "exact\t0\npart\t0\n");
    let table = ok(&broker, &["group", "describe", "part"], b"");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["TOPIC", "PARTITION", "OWNER", "COMMITTED", "END", "LAG"]
    );
    assert_eq!(rows[1..], [["t", "0", "-", "5", "5", "0"]], "{table}");

    // Back to offset 1: the group reads from there again.
    let out = ok(
        &broker,
        &["group", "reset", "part", "--topic", "t", "--to", "1"],
        b"",
    );
    assert_eq!(out, "PARTITION  COMMITTED\n        0          1\n");
    assert_eq!(consume("part", "10"), all[1..]);
}

#[test]
fn a_partition_is_read_from_an_offset() {
    let broker = Broker::start_with(1, &["--ranges-per-shard", "2"]);
    ok(&broker, &["topic", "create", "p", "--partitions", "2"], b"");
    let key = "k";
    let j = TopicLayout::new(1, 2).partition_of_key(key.as_bytes());
    ok(
        &broker,
        &["produce", "p", "--key", key],
        b"r0\nr1\nr2\nr3\n",
    );
    let j = j.to_string();
    let out = ok(
        &broker,
        &["consume", "p", "--partition", &j, "--offset", "1"],
        b"",
    );
    assert_eq!(out, "r1\nr2\nr3\n");
    let out = ok(
        &broker,
        &[
            "consume",
            "p",
            "--partition",
            &j,
            "--offset",
            "2",
            "--count",
            "1",
            "--format",
            "json",
        ],
        b"",
    );
    let v: Value = serde_json::from_str(out.trim_end()).expect("JSON");
    assert_eq!(v["partition"].as_str(), None);
    assert_eq!(v["partition"].to_string(), j);
    assert_eq!(v["offset"], 2);
    assert_eq!(v["value"], "r2");
    // The other partition is empty; nothing is printed.
    let other = if j == "0" { "1" } else { "0" };
    assert_eq!(
        ok(&broker, &["consume", "p", "--partition", other], b""),
        ""
    );
}

#[test]
fn errors_are_one_line_with_exit_1_and_bad_usage_is_exit_2() {
    let broker = Broker::start(1);
    let closed = common::free_addr().to_string();
    for args in [
        vec!["--broker", closed.as_str(), "produce", "t"],
        vec!["--http", closed.as_str(), "topic", "list"],
        vec!["--broker", closed.as_str(), "consume", "t", "--group", "g"],
    ] {
        let out = ctl(&broker, &args, b"x\n");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("shardlogctl: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    for args in [
        vec!["consume", "t"],
        vec!["produce"],
        vec!["topic", "frobnicate"],
        vec!["produce", "t", "--key", "k", "--key-separator", ":"],
        vec!["consume", "t", "--group", "g", "--partition", "0"],
        vec!["consume", "t", "--group", "g", "--offset", "3"],
        vec!["consume", "t", "--partition", "0", "--from-beginning"],
        vec!["consume", "t", "--group", "g", "--format", "yaml"],
        vec!["group", "reset", "g", "--topic", "t", "--to", "-1"],
        vec!["group", "reset", "g", "--to", "earliest"],
    ] {
        let out = ctl(&broker, &args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let help = ok(&broker, &["consume", "--help"], b"");
    assert!(help.contains("Exit codes"), "{help}");
}

#[test]
fn ctrl_c_leaves_the_group_at_once() {
    use std::io::BufRead;

    let broker = Broker::start(1);
    ok(&broker, &["topic", "create", "f", "--partitions", "1"], b"");
    ok(&broker, &["produce", "f"], b"first\n");
    let mut follower = Command::new(ctl_binary())
        .env("SHARDLOG_BROKER", broker.framed.to_string())
        .env("SHARDLOG_HTTP", broker.http.to_string())
        .args(["consume", "f", "--group", "g", "--id", "a"])
        .args(["--from-beginning", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start shardlogctl");
    let stdout = follower.stdout.take().expect("piped stdout");
    let mut lines = std::io::BufReader::new(stdout);
    let mut line = String::new();
    lines.read_line(&mut line).expect("a line");
    assert_eq!(line, "first\n");
    // It is waiting in a poll now; Ctrl-C.
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill(2) on a child this test started and has not waited for.
    let sent = unsafe { libc::kill(follower.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0);
    let status = follower.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut lines, &mut rest).expect("the rest");
    assert_eq!(rest, "");

    // It said GOODBYE (committing "first"): a new member gets the partition at once, rather
    // than after the broker's consumer timeout, and starts after "first".
    ok(&broker, &["produce", "f"], b"second\n");
    assert_eq!(
        ok(&broker, &["consume", "f", "--group", "g", "--id", "b"], b""),
        "second\n"
    );
}
