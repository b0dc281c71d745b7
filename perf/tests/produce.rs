//! The produce workload against the fake broker in `common/`.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{closed_port, FakeBroker, FakeOptions};
use shardlog_perf::payload::PayloadSpec;
use shardlog_perf::run::{KeyOrder, Stop};
use shardlog_perf::verify::KEYLESS;
use shardlog_perf::workload::produce::{self, ProduceConfig, ProduceOutcome};

fn config(fake: &FakeBroker) -> ProduceConfig {
    ProduceConfig {
        addr: fake.addr(),
        connections: 2,
        in_flight: 4,
        messages_per_frame: 64,
        stop: Stop::Messages(2000),
        progress: false,
        print_errors: false,
        ledger: true,
        ..ProduceConfig::default()
    }
}

fn run(cfg: ProduceConfig) -> ProduceOutcome {
    produce::run(cfg).expect("the run starts")
}

#[test]
fn closed_loop_acks_every_message() {
    let fake = FakeBroker::start(FakeOptions::default());
    let out = run(config(&fake));
    let m = &out.report.measured;
    assert_eq!(out.report.failure, None);
    assert_eq!((m.acked, m.errors), (2000, 0));
    // 31 frames of 64 and one of 16.
    assert_eq!(m.acked_frames, 32);
    assert_eq!(m.acked_bytes, 2000 * 1024);
    assert_eq!(out.unanswered, 0);
    assert_eq!(fake.stats.messages.load(Ordering::SeqCst), 2000);
    assert_eq!(fake.stats.connections.load(Ordering::SeqCst), 2);
    assert_eq!(*fake.stats.topics.lock().unwrap(), vec!["perf", "perf"]);
    assert_eq!(fake.stats.violations(), Vec::<String>::new());
    assert!(m.p50_us > 0 && m.p50_us <= m.p99_us && m.p99_us <= m.max_us);
    // The ledger has every frame once.
    let ledger = out.ledger.unwrap();
    assert_eq!(ledger.total_messages(), 2000);
    let mut frames = ledger.frames(KEYLESS);
    frames.sort();
    assert_eq!(frames, (0..32).collect::<Vec<u64>>());
}

#[test]
fn many_frames_in_flight_never_share_a_stream_id() {
    // Enough frames to wrap the u16 stream ids of each connection, answered out of order.
    let fake = FakeBroker::start(FakeOptions {
        reorder: true,
        ..FakeOptions::default()
    });
    let out = run(ProduceConfig {
        connections: 1,
        in_flight: 500,
        messages_per_frame: 1,
        payload: PayloadSpec {
            size: 16,
            ..PayloadSpec::default()
        },
        stop: Stop::Messages(140_000),
        ledger: false,
        ..config(&fake)
    });
    assert_eq!(out.report.failure, None);
    assert_eq!(out.report.measured.acked, 140_000);
    assert_eq!(out.report.measured.errors, 0);
    assert_eq!(fake.stats.violations(), Vec::<String>::new());
}

#[test]
fn keys_round_robin_and_timestamps() {
    let fake = FakeBroker::start(FakeOptions::default());
    let out = run(ProduceConfig {
        keys: 3,
        key_order: KeyOrder::RoundRobin,
        messages_per_frame: 10,
        stop: Stop::Messages(300),
        timestamps: true,
        ..config(&fake)
    });
    assert_eq!(out.report.measured.acked, 300);
    let keys = fake.stats.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    for k in ["key-0", "key-1", "key-2"] {
        assert_eq!(keys[k.as_bytes()], 10, "{k}");
    }
    assert_eq!(fake.stats.with_timestamp.load(Ordering::SeqCst), 30);
    let ledger = out.ledger.unwrap();
    let mut f0 = ledger.frames(0);
    f0.sort();
    assert_eq!(f0, vec![0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
    // In acknowledgement order, per key.
    let e = ledger.entries(1);
    assert!(e.windows(2).all(|w| w[0].acked <= w[1].acked));
}

#[test]
fn random_keys_spread_over_all_keys() {
    let fake = FakeBroker::start(FakeOptions::default());
    let out = run(ProduceConfig {
        keys: 4,
        key_order: KeyOrder::Random,
        messages_per_frame: 1,
        stop: Stop::Messages(400),
        ..config(&fake)
    });
    assert_eq!(out.report.measured.acked, 400);
    let keys = fake.stats.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 4);
    assert!(keys.values().all(|&n| n > 50), "{keys:?}");
}

#[test]
fn error_answers_are_counted() {
    let fake = FakeBroker::start(FakeOptions {
        error_every: Some(4),
        ..FakeOptions::default()
    });
    let out = run(ProduceConfig {
        messages_per_frame: 10,
        stop: Stop::Messages(400),
        ..config(&fake)
    });
    let m = &out.report.measured;
    assert_eq!(out.report.failure, None);
    assert_eq!(m.errors, 10);
    assert_eq!(m.failed_messages, 100);
    assert_eq!(m.acked, 300);
    assert_eq!(out.report.error_codes["unavailable(6)"], 10);
    assert_eq!(out.ledger.unwrap().total_messages(), 300);
}

#[test]
fn open_loop_latency_includes_the_brokers_delay() {
    let fake = FakeBroker::start(FakeOptions {
        delay: Duration::from_millis(40),
        ..FakeOptions::default()
    });
    // 100 frames/s for 1.5 s; the window is large enough for the delay.
    let out = run(ProduceConfig {
        messages_per_frame: 10,
        in_flight: 64,
        rate: Some(1000.0),
        stop: Stop::Duration(Duration::from_millis(1500)),
        ..config(&fake)
    });
    let m = &out.report.measured;
    assert_eq!(out.report.failure, None);
    assert_eq!(m.errors, 0);
    assert!(
        (1300..=1510).contains(&m.acked),
        "about 1500 messages at 1000/s, got {}",
        m.acked
    );
    assert!(
        (40_000..70_000).contains(&m.p50_us),
        "p50 {} μs should be the 40 ms delay",
        m.p50_us
    );
    assert_eq!(out.report.settings["mode"], "open-loop");
}

/// A 600 ms stall with one frame allowed in flight: a closed loop simply stops sending and
/// records one slow frame; the open loop keeps its schedule and charges every frame that
/// should have been sent during the stall with the time it waited.
#[test]
fn open_loop_does_not_hide_a_stall() {
    let stall = FakeOptions {
        delay: Duration::from_millis(1),
        stall: Some((20, Duration::from_millis(600))),
        ..FakeOptions::default()
    };
    let base = |fake: &FakeBroker| ProduceConfig {
        connections: 1,
        in_flight: 1,
        messages_per_frame: 1,
        stop: Stop::Duration(Duration::from_millis(1500)),
        ..config(fake)
    };
    let fake = FakeBroker::start(stall.clone());
    let open = run(ProduceConfig {
        rate: Some(100.0),
        ..base(&fake)
    });
    let fake = FakeBroker::start(stall);
    let closed = run(base(&fake));
    let (o, c) = (&open.report.measured, &closed.report.measured);
    assert!(o.max_us >= 600_000 && c.max_us >= 600_000, "{o:?} {c:?}");
    // About 60 of the open loop's ~150 frames were due during the stall: its p75 shows it.
    assert!(o.p90_us > 200_000, "open-loop p90 {} μs", o.p90_us);
    // In the closed loop the stall is one frame among many fast ones.
    assert!(c.p90_us < 50_000, "closed-loop p90 {} μs", c.p90_us);
}

#[test]
fn duration_run_with_warmup() {
    let fake = FakeBroker::start(FakeOptions::default());
    let out = run(ProduceConfig {
        stop: Stop::Duration(Duration::from_millis(1500)),
        warmup: Duration::from_millis(500),
        ..config(&fake)
    });
    let m = &out.report.measured;
    assert_eq!(out.report.failure, None);
    assert!(m.acked > 0);
    let all = fake.stats.messages.load(Ordering::SeqCst);
    assert!(m.acked < all, "warmup messages are not counted");
    assert!(
        (0.9..1.3).contains(&m.duration_s),
        "measured {} s",
        m.duration_s
    );
    assert_eq!(out.unanswered, 0);
}

#[test]
fn refused_connection_is_a_clear_setup_error() {
    let err = produce::run(ProduceConfig {
        addr: closed_port(),
        progress: false,
        ..ProduceConfig::default()
    })
    .unwrap_err();
    assert!(err.0.contains("cannot connect"), "{err}");
    assert!(err.0.contains("framed endpoint"), "{err}");
}

#[test]
fn refused_startup_is_a_clear_setup_error() {
    let fake = FakeBroker::start(FakeOptions {
        refuse_startup: Some((4, "invalid topic name".into())),
        ..FakeOptions::default()
    });
    let err = produce::run(config(&fake)).unwrap_err();
    assert!(
        err.0.contains("bad-request (4): invalid topic name"),
        "{err}"
    );
}

#[test]
fn garbage_from_the_broker_fails_the_run_without_panicking() {
    let fake = FakeBroker::start(FakeOptions {
        garbage_after: Some(5),
        ..FakeOptions::default()
    });
    let out = run(ProduceConfig {
        connections: 1,
        stop: Stop::Messages(100_000),
        ..config(&fake)
    });
    let failure = out.report.failure.expect("the run fails");
    assert!(failure.contains("malformed frame"), "{failure}");
    assert!(failure.contains("head crc mismatch"), "{failure}");
}

#[test]
fn a_closed_connection_fails_the_run() {
    let fake = FakeBroker::start(FakeOptions {
        close_after: Some(10),
        delay: Duration::from_millis(5),
        ..FakeOptions::default()
    });
    let out = run(ProduceConfig {
        connections: 1,
        stop: Stop::Messages(100_000),
        ..config(&fake)
    });
    let failure = out.report.failure.expect("the run fails");
    assert!(failure.contains("closed the connection"), "{failure}");
    assert!(out.report.measured.acked < 100_000);
}

#[test]
fn an_interrupt_stops_sending_and_drains() {
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let fake = FakeBroker::start(FakeOptions {
        delay: Duration::from_millis(20),
        ..FakeOptions::default()
    });
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(400));
        STOP.store(true, Ordering::SeqCst);
    });
    let out = run(ProduceConfig {
        stop: Stop::Messages(u64::MAX / 2),
        interrupt: Some(&STOP),
        ..config(&fake)
    });
    assert_eq!(out.report.failure, None);
    assert_eq!(out.report.settings["interrupted"], true);
    assert_eq!(out.unanswered, 0);
    let m = &out.report.measured;
    assert!(m.acked > 0);
    // Everything sent was answered and counted.
    assert_eq!(m.acked, fake.stats.messages.load(Ordering::SeqCst));
}
