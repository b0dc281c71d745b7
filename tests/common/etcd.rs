//! A real etcd for the cluster tests: one member on free loopback ports with a temporary data
//! directory, killed when dropped. Outside CI a machine without `etcd` skips (one line naming
//! the package to install); under CI (`CI=true`) a missing etcd fails the test.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_addr, Broker};

pub struct Etcd {
    child: Child,
    peer: SocketAddr,
    /// `http://127.0.0.1:PORT`, for `--etcd-endpoints`.
    pub endpoint: String,
    client: SocketAddr,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd and waits until it is healthy; `None` (after one line on stderr) when etcd
    /// is not installed and this is not CI.
    pub fn start() -> Option<Etcd> {
        let installed = Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "etcd is not installed (Debian: apt-get install etcd-server); CI must have it"
            );
            eprintln!("skipped: etcd is not installed (Debian: apt-get install etcd-server)");
            return None;
        }
        // A free port can be taken by another test between our look and etcd's bind: etcd
        // then exits, and we try again on other ports.
        let mut why = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let (client, peer) = (free_addr(), free_addr());
            let mut etcd = Etcd {
                child: Etcd::spawn(dir.path(), client, peer),
                peer,
                endpoint: format!("http://{client}"),
                client,
                dir,
            };
            match etcd.wait_healthy() {
                Ok(()) => return Some(etcd),
                Err(e) => why = e,
            }
        }
        panic!("etcd did not start: {why}");
    }

    fn spawn(dir: &Path, client: SocketAddr, peer: SocketAddr) -> Child {
        let endpoint = format!("http://{client}");
        let peer_url = format!("http://{peer}");
        let log = std::fs::File::create(dir.join("etcd.log")).expect("etcd log file");
        Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd")
    }

    /// `kill -9` etcd, wait `down`, start it again on the same ports and data.
    pub fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = Etcd::spawn(self.dir.path(), self.client, self.peer);
        if let Err(why) = self.wait_healthy() {
            panic!("etcd did not restart: {why}");
        }
    }

    /// Waits until etcd is healthy, or says why not (it exited, or never became healthy).
    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.healthy() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
                return Err(format!("etcd exited ({status}): {tail}"));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err("etcd did not become healthy within 60s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// etcd's `/health` says true.
    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(self.client) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req = format!("GET /health HTTP/1.0\r\nhost: {}\r\n\r\n", self.client);
        let mut answer = String::new();
        s.write_all(req.as_bytes()).is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.contains("\"health\":\"true\"")
    }

    /// A broker of this etcd's cluster (not started): one shard, no pinning, a 2 s session.
    pub fn broker(&self, id: u32) -> Broker {
        let id = id.to_string();
        Broker::new(
            1,
            &[
                "--etcd-endpoints",
                &self.endpoint,
                "--broker-id",
                &id,
                "--session-timeout",
                "2s",
                "--cpus",
                "none",
                "--spin-before-park",
                "0",
            ],
        )
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
