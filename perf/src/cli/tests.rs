use super::*;
use crate::client::session::Transport;
use crate::run::{KeyOrder, Stop, Workload};
use crate::workload::grpc_produce::Routing;
use std::time::Duration;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("shardlog-perf").chain(args.iter().copied()))
}

#[test]
fn defaults() {
    let Command::Produce(p) = parse(&["produce"]).unwrap().command else {
        panic!("produce")
    };
    let cfg = p.config();
    assert_eq!(cfg.addr, "127.0.0.1:9254");
    assert_eq!(p.common.http, "127.0.0.1:9252");
    assert_eq!(cfg.messages_per_frame, 64);
    assert_eq!(cfg.payload.size, 1024);
    assert_eq!(cfg.payload.randomness, 0.5);
    assert_eq!(cfg.keys, 0);
    assert_eq!(cfg.stop, Stop::Duration(Duration::from_secs(30)));
    assert_eq!(cfg.rate, None);
    assert!(cfg.validate().is_ok());
}

#[test]
fn all_flags() {
    let Command::Produce(p) = parse(&[
        "produce",
        "--framed",
        "10.0.0.1:1",
        "--connections",
        "8",
        "--in-flight",
        "4",
        "--messages-per-frame",
        "10",
        "--message-size",
        "100",
        "--randomness",
        "0.25",
        "--keys",
        "5",
        "--key-order",
        "random",
        "--duration",
        "1m",
        "--warmup",
        "2s",
        "--rate",
        "1000",
        "--timestamps",
        "--cpus",
        "0,2-3",
        "--json",
        "--topic",
        "t1",
    ])
    .unwrap()
    .command
    else {
        panic!("produce")
    };
    let cfg = p.config();
    assert_eq!(
        (cfg.connections, cfg.in_flight, cfg.messages_per_frame),
        (8, 4, 10)
    );
    assert_eq!((cfg.payload.size, cfg.payload.randomness), (100, 0.25));
    assert_eq!((cfg.keys, cfg.key_order), (5, KeyOrder::Random));
    assert_eq!(cfg.stop, Stop::Duration(Duration::from_secs(60)));
    assert_eq!(cfg.warmup, Duration::from_secs(2));
    assert_eq!(cfg.rate, Some(1000.0));
    assert!(cfg.timestamps && p.common.json);
    assert_eq!(cfg.cpus, Some(vec![0, 2, 3]));
    assert_eq!(cfg.topic, "t1");
}

#[test]
fn grpc_and_http_flags() {
    let Command::GrpcProduce(g) = parse(&[
        "grpc-produce",
        "--http",
        "10.0.0.2:1",
        "--streams",
        "8",
        "--values-per-call",
        "32",
        "--keys",
        "10",
        "--cpus",
        "1",
        "--messages",
        "1000",
    ])
    .unwrap()
    .command
    else {
        panic!("grpc-produce")
    };
    let cfg = g.config();
    assert_eq!(cfg.addr, "10.0.0.2:1");
    assert_eq!(
        (cfg.connections, cfg.streams, cfg.values_per_call),
        (4, 8, 32)
    );
    assert_eq!(
        cfg.routing,
        Routing::Keys {
            keys: 10,
            order: KeyOrder::RoundRobin
        }
    );
    assert_eq!(cfg.stop, Stop::Messages(1000));
    assert!(parse(&["grpc-produce", "--keys", "3", "--partition", "1"]).is_err());
    let Command::GrpcProduce(g) = parse(&["grpc-produce", "--partition", "2"])
        .unwrap()
        .command
    else {
        panic!("grpc-produce")
    };
    assert_eq!(g.config().routing, Routing::Partition(2));
    assert!(g.config().validate().is_ok());
    let Command::GrpcProduce(g) = parse(&["grpc-produce", "--spread", "4"]).unwrap().command else {
        panic!("grpc-produce")
    };
    assert_eq!(g.config().routing, Routing::Spread(4));
    assert!(parse(&["grpc-produce", "--spread", "4", "--keys", "2"]).is_err());
    assert!(parse(&["grpc-produce", "--spread", "4", "--partition", "1"]).is_err());

    let Command::GrpcConsume(c) = parse(&[
        "grpc-consume",
        "--partitions",
        "0,3",
        "--from-offset",
        "7",
        "--until-idle",
        "2s",
    ])
    .unwrap()
    .command
    else {
        panic!("grpc-consume")
    };
    let cfg = c.config();
    assert_eq!(cfg.addr, "127.0.0.1:9252");
    assert_eq!(cfg.partitions, vec![0, 3]);
    assert_eq!(cfg.from_offset, 7);
    assert_eq!(cfg.until_idle, Some(Duration::from_secs(2)));
    assert!(cfg.validate().is_ok());

    let Command::Consume(c) = parse(&["consume", "--transport", "http", "--until-empty"])
        .unwrap()
        .command
    else {
        panic!("consume")
    };
    let cfg = c.flags.config(&c.common, false);
    assert_eq!(
        (cfg.transport, cfg.addr.as_str()),
        (Transport::Http, "127.0.0.1:9252")
    );
}

#[test]
fn bad_input_is_rejected_clearly() {
    assert!(parse(&["produce", "--messages", "5", "--duration", "1s"]).is_err());
    assert!(parse(&["produce", "--duration", "soon"]).is_err());
    assert!(parse(&["produce", "--cpus", "a"]).is_err());
    assert!(parse(&["produce", "--cpus", "3-1"]).is_err());
    let bad = |args: &[&str]| {
        let Command::Produce(p) = parse(args).unwrap().command else {
            panic!("produce")
        };
        p.config().validate().unwrap_err()
    };
    assert!(bad(&["produce", "--randomness", "1.5"]).contains("--randomness"));
    assert!(bad(&["produce", "--connections", "0"]).contains("--connections"));
    assert!(bad(&["produce", "--in-flight", "70000"]).contains("--in-flight"));
    assert!(bad(&["produce", "--topic", "a/b"]).contains("--topic"));
    assert!(bad(&["produce", "--rate=-1"]).contains("--rate"));
    assert!(bad(&["produce", "--messages", "0"]).contains("--messages"));
    assert!(bad(&["produce", "--cpus", "100000"]).contains("--cpus"));
}
