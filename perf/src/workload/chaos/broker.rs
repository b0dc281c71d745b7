//! The broker under test: a child process started from `--broker-bin` on fixed loopback ports
//! and one data directory, killed with SIGKILL, paused with SIGSTOP/SIGCONT, and started again.
//! Its log (stderr) is appended to `broker.log` beside the data directory.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::ChaosError;

/// How to start the broker.
#[derive(Debug, Clone)]
pub struct BrokerSpec {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    pub shards: usize,
    /// Further arguments, e.g. `--segment-size 128KiB`.
    pub extra_args: Vec<String>,
    /// How long a start (recovery included) may take before it counts as failed.
    pub start_timeout: Duration,
}

/// A running broker process; killed when dropped.
pub struct Broker {
    spec: BrokerSpec,
    child: Child,
    pub framed: String,
    pub http: String,
}

fn free_port() -> Result<String, ChaosError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(ChaosError::Io)?;
    Ok(l.local_addr().map_err(ChaosError::Io)?.to_string())
}

impl Broker {
    /// Starts the broker on two free ports and waits until it is ready.
    pub fn start(spec: BrokerSpec) -> Result<(Broker, Duration), ChaosError> {
        let (framed, http) = (free_port()?, free_port()?);
        let started = Instant::now();
        let child = spawn(&spec, &framed, &http)?;
        let mut b = Broker {
            spec,
            child,
            framed,
            http,
        };
        b.wait_ready(started)?;
        Ok((b, started.elapsed()))
    }

    /// SIGKILL, reaped.
    pub fn kill(&mut self) -> Result<(), ChaosError> {
        self.signal(libc::SIGKILL)?;
        self.child.wait().map_err(ChaosError::Io)?;
        Ok(())
    }

    pub fn stop(&self) -> Result<(), ChaosError> {
        self.signal(libc::SIGSTOP)
    }

    pub fn resume(&self) -> Result<(), ChaosError> {
        self.signal(libc::SIGCONT)
    }

    /// Starts the broker again on the same ports and data directory (after [`Broker::kill`]);
    /// returns how long it took to become ready.
    pub fn restart(&mut self) -> Result<Duration, ChaosError> {
        let started = Instant::now();
        self.child = spawn(&self.spec, &self.framed, &self.http)?;
        self.wait_ready(started)?;
        Ok(started.elapsed())
    }

    fn signal(&self, sig: libc::c_int) -> Result<(), ChaosError> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; it has not been reaped while we hold it.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(ChaosError::Io(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Waits for the broker's "shardlog ready" line on stdout.
    fn wait_ready(&mut self, started: Instant) -> Result<(), ChaosError> {
        let stdout = self
            .child
            .stdout
            .take()
            .ok_or_else(|| ChaosError::Start("no stdout pipe".into()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && line.contains("shardlog ready") {
                    sent = tx.send(()).is_ok();
                }
            }
        });
        loop {
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(()) => return Ok(()),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map_err(ChaosError::Io)?;
                    return Err(ChaosError::Start(format!(
                        "the broker exited during start-up ({status}); see {}",
                        log_path(&self.spec.data_dir).display()
                    )));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if started.elapsed() > self.spec.start_timeout {
                return Err(ChaosError::Start(format!(
                    "the broker was not ready after {:?}; see {}",
                    self.spec.start_timeout,
                    log_path(&self.spec.data_dir).display()
                )));
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `broker.log` beside the data directory.
pub fn log_path(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    data_dir.with_file_name(format!("{name}.broker.log"))
}

fn spawn(spec: &BrokerSpec, framed: &str, http: &str) -> Result<Child, ChaosError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(&spec.data_dir))
        .map_err(ChaosError::Io)?;
    Command::new(&spec.bin)
        .arg("--data-dir")
        .arg(&spec.data_dir)
        .args(["--shards", &spec.shards.to_string()])
        .args(["--framed-listen", framed, "--http-listen", http])
        .args(&spec.extra_args)
        .env("RUST_LOG", "warn,shardlog::broker=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| ChaosError::Start(format!("cannot run {}: {e}", spec.bin.display())))
}
