//! What a broker process holds, from `/proc`: its resident memory and open descriptors, read
//! once or sampled in the background while a test's clients are at work (the peak is what a
//! bound is checked against).
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A process's resident memory, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    super::rss(pid) >> 10
}

/// A process's open file descriptors (0 once it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The most a process held while it was sampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peak {
    pub rss_kib: u64,
    pub fds: usize,
}

/// Samples processes every few milliseconds on a thread of its own until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Peak>>,
}

impl Sampler {
    /// Starts sampling `pids`.
    pub fn start(pids: &[u32]) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (pids, flag) = (pids.to_vec(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut peaks = vec![Peak::default(); pids.len()];
            loop {
                for (pid, peak) in pids.iter().zip(&mut peaks) {
                    peak.rss_kib = peak.rss_kib.max(rss_kib(*pid));
                    peak.fds = peak.fds.max(open_fds(*pid));
                }
                if flag.load(Ordering::Acquire) {
                    return peaks;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Sampler { stop, thread }
    }

    /// Stops sampling; the peak of each process, in the order given.
    pub fn stop(self) -> Vec<Peak> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("sampler")
    }
}
