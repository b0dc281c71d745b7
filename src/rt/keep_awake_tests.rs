//! Reproduces glommio 0.9's park with runnable work, and shows the ticker bounds it.
//!
//! The workload is the simplest one that has nothing but runnable work: a task that yields
//! again and again (it wakes itself each time). Its executor runs the task queue until the
//! 1 ms preemption timer fires, then goes round its loop and re-arms the timer. Busy threads
//! pinned to the same CPU deschedule the executor's thread at random points; once one lands
//! between the re-arm and the first `need_preempt` check, the executor parks with the task
//! queued, and with no timer and no I/O nothing ever wakes it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::wake_thread;
use crate::rt::pool::{allowed_cpus, spawn_shard_with, KeepAwake};

/// With the ticker, the loop yields this many times and finishes.
const YIELDS: u64 = 6_000_000;

/// A standstill this long, with the thread asleep, is a park with runnable work: every step
/// of the loop takes microseconds, and a runnable thread on a busy CPU waits tens of ms.
const STANDSTILL: Duration = Duration::from_secs(1);

/// How long to wait for the loop to finish (ticker) or to hang (no ticker).
const DEADLINE: Duration = Duration::from_secs(120);

/// Whether thread `tid` of this process is asleep (state `S`), from `/proc`.
fn asleep(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            // The state follows the parenthesised command name.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st == "S")
        })
        .unwrap_or(false)
}

/// The system call thread `tid` of this process is blocked in (its number), from `/proc`.
fn blocked_in(tid: i32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// What a run of the yield loop showed.
#[derive(Debug)]
struct Outcome {
    /// The loop finished its yields.
    finished: bool,
    /// The shard's thread was seen asleep, with the loop standing still for [`STANDSTILL`].
    parked_with_work: bool,
    yields: u64,
    /// The system call the parked thread was blocked in (426 is `io_uring_enter`).
    parked_in: Option<i64>,
    /// From the start to the end of the run (the park, when there was one).
    ran_for: Duration,
}

/// Runs the yield loop on a shard pinned to one CPU shared with two busy threads, until it
/// has yielded `yields` times, parks with work, or [`DEADLINE`] passes.
fn run_yield_loop(keep: KeepAwake, yields: u64) -> Outcome {
    let cpu = allowed_cpus().first().copied();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                if let Some(id) = cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (stop_here, progress_here) = (stop.clone(), progress.clone());
    let shard = spawn_shard_with(0, cpu.into(), Duration::ZERO, keep, move || async move {
        // SAFETY: gettid has no preconditions.
        let _ = tid_tx.send(unsafe { libc::gettid() });
        for i in 1..=yields {
            if stop_here.load(Ordering::Relaxed) {
                break;
            }
            futures_lite::future::yield_now().await;
            progress_here.store(i, Ordering::Relaxed);
        }
    })
    .expect("spawn shard");
    let tid = tid_rx.recv().expect("the shard runs");
    let begin = Instant::now();
    let (mut last, mut since) = (0, Instant::now());
    let (mut parked_with_work, mut parked_in) = (false, None);
    while !shard.is_finished() && begin.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(50));
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= STANDSTILL && asleep(tid) {
            parked_with_work = true;
            parked_in = blocked_in(tid);
            break;
        }
    }
    let ran_for = if parked_with_work {
        since - begin
    } else {
        begin.elapsed()
    };
    stop.store(true, Ordering::Relaxed);
    let finished = progress.load(Ordering::Relaxed) == yields;
    // A parked executor needs a wake-up to see `stop`.
    while !shard.is_finished() {
        wake_thread(tid);
        std::thread::sleep(Duration::from_millis(20));
    }
    shard.join().expect("the shard ran");
    for s in spinners {
        let _ = s.join();
    }
    Outcome {
        finished,
        parked_with_work,
        yields: progress.load(Ordering::Relaxed),
        parked_in,
        ran_for,
    }
}

/// glommio 0.9 itself: with neither ticker nor watchdog the executor parks with its task
/// queued and never wakes (the loop yields until it does, or [`DEADLINE`]). Should a glommio
/// upgrade fix this, this test fails: the ticker can then go. The park needs an unlucky
/// preemption, so on a machine that happens not to deschedule the thread at the wrong moment
/// it may not come within [`DEADLINE`]: a reproduction to run on demand
/// (`cargo test --lib keep_awake -- --ignored`), not a CI check.
#[test]
#[ignore = "a reproduction of glommio 0.9's park with work: probabilistic, up to DEADLINE long"]
fn without_a_ticker_a_contended_executor_parks_with_runnable_work() {
    let out = run_yield_loop(KeepAwake::Off, u64::MAX);
    eprintln!(
        "without a ticker: parked with work after {:?} and {} yields",
        out.ran_for, out.yields
    );
    assert!(
        out.parked_with_work,
        "the executor never parked with work ({out:?}); has glommio been fixed?"
    );
    assert_eq!(
        out.parked_in,
        Some(libc::SYS_io_uring_enter),
        "asleep, but not in io_uring_enter: {out:?}"
    );
}

/// The watchdog alone also ends such a park: the same loop finishes.
#[test]
fn the_watchdog_ends_a_park_with_runnable_work() {
    let out = run_yield_loop(KeepAwake::WatchdogOnly, YIELDS);
    assert!(!out.parked_with_work, "{out:?}");
    assert!(out.finished, "{} of {YIELDS} yields: {out:?}", out.yields);
}

/// With the ticker, the same loop finishes, never asleep with work for a second.
#[test]
fn the_ticker_bounds_a_park_with_runnable_work() {
    let out = run_yield_loop(KeepAwake::Ticker, YIELDS);
    eprintln!(
        "with the ticker: {} yields in {:?}, no park with work",
        out.yields, out.ran_for
    );
    assert!(!out.parked_with_work, "{out:?}");
    assert!(out.finished, "{} of {YIELDS} yields: {out:?}", out.yields);
}
