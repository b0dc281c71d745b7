//! A real `shardlog` process on loopback ports with its own data directory. Needs nothing
//! from the crate, so test crates that only talk to the broker over sockets can include this
//! file alone (`#[path = "common/broker.rs"] mod broker;`).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound then released; good enough for tests).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A broker process.
pub struct Broker {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub framed: SocketAddr,
    pub http: SocketAddr,
    pub shards: usize,
    pub extra: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Broker {
    /// Starts a broker with `shards` shards in a fresh temporary directory.
    pub fn start(shards: usize) -> Broker {
        Broker::start_with(shards, &[])
    }

    pub fn start_with(shards: usize, extra: &[&str]) -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = Broker {
            child: None,
            data_dir: tmp.path().join("data"),
            framed: free_addr(),
            http: free_addr(),
            shards,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _tmp: Some(tmp),
        };
        b.spawn();
        b
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardlog"));
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--framed-listen")
            .arg(self.framed.to_string())
            .arg("--http-listen")
            .arg(self.http.to_string())
            .arg("--shards")
            .arg(self.shards.to_string())
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        cmd
    }

    /// Starts the process and waits until the framed and HTTP ports accept connections.
    pub fn spawn(&mut self) {
        let child = self.command().spawn().expect("start shardlog");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("shardlog exited during start-up: {status}");
            }
            if TcpStream::connect(self.framed).is_ok() && TcpStream::connect(self.http).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "shardlog did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`, then wait for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}
