//! Helpers for end-to-end tests: a real `shardlog` process on loopback ports with its own data
//! directory; ordinary framed producers and consumers on the client library
//! ([`framed::FramedProducer`], [`consumer::ConsumerClient`]); and [`Client`], a byte-level
//! scripted peer on the wire crate's codecs, for tests that send raw or malformed frames.
#![allow(dead_code)]

pub mod cluster;
pub mod consumer;
pub mod ctl;
pub mod etcd;
pub mod framed;
pub mod http;
pub mod proc;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardlog::wire::error::parse_error_body;
use shardlog::wire::frame::{encode_frame, encode_frame_with, Flags, Frame, OpCode};
use shardlog::wire::produce::encode_produce_body;
use shardlog::wire::startup::encode_startup;

/// A free loopback port (bound then released; good enough for tests), never one this test
/// process handed out before: the kernel may give a released port again at once, and two
/// listeners of one broker on the same port stop it at start-up.
pub fn free_addr() -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// A broker process.
pub struct Broker {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub framed: SocketAddr,
    pub http: SocketAddr,
    pub shards: usize,
    pub extra: Vec<String>,
    /// Environment variables set for the process (e.g. `SHARDLOG_FAILPOINTS`).
    pub env: Vec<(String, String)>,
    /// `RLIMIT_NOFILE` (soft, hard) to start the process with, if not the test's own.
    pub nofile: Option<(u64, u64)>,
    _tmp: Option<tempfile::TempDir>,
}

impl Broker {
    /// Starts a broker with `shards` shards in a fresh temporary directory.
    pub fn start(shards: usize) -> Broker {
        Broker::start_with(shards, &[])
    }

    pub fn start_with(shards: usize, extra: &[&str]) -> Broker {
        let mut b = Broker::new(shards, extra);
        b.spawn();
        b
    }

    /// A broker (not started yet) in a fresh temporary directory.
    pub fn new(shards: usize, extra: &[&str]) -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        Broker {
            child: None,
            data_dir: tmp.path().join("data"),
            framed: free_addr(),
            http: free_addr(),
            shards,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            nofile: None,
            _tmp: Some(tmp),
        }
    }

    /// A broker (not started) on the same data directory as `self`, on ports of its own.
    pub fn sharing_data_dir(&self) -> Broker {
        Broker {
            child: None,
            data_dir: self.data_dir.clone(),
            framed: free_addr(),
            http: free_addr(),
            shards: self.shards,
            extra: self.extra.clone(),
            env: self.env.clone(),
            nofile: self.nofile,
            _tmp: None,
        }
    }

    /// The running process's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker running").id()
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
            .env(
                "RUST_LOG",
                std::env::var("TEST_BROKER_LOG")
                    .unwrap_or_else(|_| "warn,shardlog::broker=info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some((soft, hard)) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// Starts the process and waits until it says it is ready (its log line "shardlog
    /// ready"); the log is forwarded to the test's output.
    pub fn spawn(&mut self) {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .spawn()
            .expect("start shardlog");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("shardlog ready") {
                    let _ = tx.send(());
                }
                eprintln!("{line}");
            }
        });
        // Generous: recovery fdatasyncs, and on a disk busy writing back a fresh build an
        // fsync can take tens of seconds.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if rx.try_recv().is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("shardlog exited during start-up: {status}");
            }
            assert!(Instant::now() < deadline, "shardlog did not become ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -9`, then wait for the process to be gone and its port to be closed.
    ///
    /// A killed process's listening socket can outlive it briefly: io_uring tears a ring down
    /// asynchronously, and the ring's pending accept holds the socket open. Until then the
    /// kernel still completes handshakes on that port, and resets them when the socket finally
    /// closes; a client connecting in that window (or a readiness probe fooled by it) sees a
    /// reset. So wait until connecting is refused.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(self.framed).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Sends SIGTERM and waits (at most `within`) for the process to exit; returns its status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        self.wait_exit(within)
    }

    /// Waits (at most `within`, then kills it and fails) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("broker running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("shardlog did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
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

/// A response frame as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Ready(u16),
    Produced(u16),
    Error {
        stream_id: u16,
        code: u8,
        message: String,
    },
}

impl Response {
    pub fn stream_id(&self) -> u16 {
        match self {
            Response::Ready(s) | Response::Produced(s) => *s,
            Response::Error { stream_id, .. } => *stream_id,
        }
    }
}

/// A byte-level scripted peer of the framed protocol: it writes exactly the bytes and stream
/// ids a test gives (raw, malformed, pipelined in a chosen order) and reads answers one by
/// one. Ordinary produce goes through [`framed::FramedProducer`].
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and sends STARTUP for `topic`, expecting READY.
    pub fn startup(addr: SocketAddr, topic: &str) -> Client {
        let mut c = Client::connect(addr);
        c.send_startup(0, topic);
        assert_eq!(c.recv().expect("READY"), Response::Ready(0));
        c
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send_startup(&mut self, stream_id: u16, topic: &str) {
        let mut b = Vec::new();
        encode_frame_with(&mut b, OpCode::Startup, 0, stream_id, |d| {
            encode_startup(topic, d)
        });
        self.send_raw(&b);
    }

    pub fn send_produce(&mut self, stream_id: u16, key: &[u8], msgs: &[&[u8]]) {
        let mut b = Vec::new();
        encode_frame_with(&mut b, OpCode::Produce, 0, stream_id, |d| {
            encode_produce_body(None, key, msgs.iter().copied(), d)
        });
        self.send_raw(&b);
    }

    pub fn send_produce_ts(&mut self, stream_id: u16, ts: i64, key: &[u8], msgs: &[&[u8]]) {
        let mut b = Vec::new();
        encode_frame_with(
            &mut b,
            OpCode::Produce,
            Flags::WITH_TIMESTAMP,
            stream_id,
            |d| encode_produce_body(Some(ts), key, msgs.iter().copied(), d),
        );
        self.send_raw(&b);
    }

    pub fn send_frame(&mut self, op: OpCode, stream_id: u16, body: &[u8]) {
        let mut b = Vec::new();
        encode_frame(&mut b, op, 0, stream_id, body);
        self.send_raw(&b);
    }

    /// Produces one frame and waits for its answer.
    pub fn produce(&mut self, stream_id: u16, key: &[u8], msgs: &[&[u8]]) -> Response {
        self.send_produce(stream_id, key, msgs);
        self.recv().expect("response")
    }

    /// The next response, or `None` when the broker closed the connection.
    pub fn recv(&mut self) -> Option<Response> {
        loop {
            if let Some((f, used)) = Frame::parse(&self.buf, u32::MAX).expect("valid response") {
                let sid = f.header.stream_id;
                let r = match OpCode::from_u8(f.header.opcode).expect("known opcode") {
                    OpCode::Ready => Response::Ready(sid),
                    OpCode::ProduceResponse => Response::Produced(sid),
                    OpCode::Error => {
                        let (code, message) = parse_error_body(f.body).unwrap();
                        Response::Error {
                            stream_id: sid,
                            code,
                            message,
                        }
                    }
                    other => panic!("unexpected response opcode {other:?}"),
                };
                self.buf.drain(..used);
                return Some(r);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                // A signal to the test process (glommio's, when a test opened logs on a
                // runtime of its own) interrupts the blocking read: read again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

/// One stored record, as read back from the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub partition_dir: String,
    pub offset: i64,
    pub timestamp_us: i64,
    pub body: Vec<u8>,
}

/// Reads every record of `topic` from a (stopped) broker's data directory through the
/// storage layer, recovering each partition as the broker would.
pub fn read_topic(data_dir: &Path, topic: &str) -> Vec<StoredRecord> {
    let dir = data_dir.join(topic);
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    parts.sort();
    let mut out = Vec::new();
    for p in parts {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        for (offset, timestamp_us, body) in read_partition(&p) {
            out.push(StoredRecord {
                partition_dir: name.clone(),
                offset,
                timestamp_us,
                body,
            });
        }
    }
    out
}

/// Recovers every partition of `topic` as the broker would at start, returning the reports.
pub fn recover_topic(data_dir: &Path, topic: &str) -> Vec<shardlog::storage::RecoveryReport> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(data_dir.join(topic)).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push(shardlog::rt::block_on(async move {
                shardlog::storage::PartitionLog::open(p, test_log_config())
                    .await
                    .expect("open partition")
                    .1
            }));
        }
    }
    out
}

/// Every record of one partition directory, in offset order.
pub fn read_partition(dir: &Path) -> Vec<(i64, i64, Vec<u8>)> {
    let dir = dir.to_path_buf();
    shardlog::rt::block_on(async move {
        let (log, _) = shardlog::storage::PartitionLog::open(dir, test_log_config())
            .await
            .expect("open partition");
        log.read_all_records().await.expect("read partition")
    })
}

pub fn test_log_config() -> shardlog::storage::LogConfig {
    shardlog::storage::LogConfig {
        retention_age: None,
        tail_bytes: 0,
        ..shardlog::config::Config::default().log_config()
    }
}

/// A field of `/proc/<pid>/status` given in kB (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kb << 10
}

/// A process's current resident memory (VmRSS), in bytes.
pub fn rss(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS")
}

/// A process's peak resident memory (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM")
}

/// Resets the process's peak RSS (VmHWM) to its current RSS; false if the kernel refused.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// `len` bytes starting with `prefix` and then incompressible (xorshift from `seed`), so zstd
/// cannot shrink them: chunks in memory and on disk are as big as what was written.
pub fn incompressible(prefix: &[u8], len: usize, seed: u64) -> Vec<u8> {
    let mut b = prefix.to_vec();
    let mut x = seed | 1;
    while b.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.truncate(len);
    b
}

/// A two-thread tokio runtime, for tests of the async client.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One key per partition of `layout` (`k0`, `k1`, … the first that land in each), in
/// partition order of discovery.
pub fn keys_per_partition(layout: &shardlog::ring::TopicLayout) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut keys = Vec::new();
    for i in 0.. {
        let k = format!("k{i}");
        if seen.insert(layout.partition_of_key(k.as_bytes())) {
            keys.push(k);
            if keys.len() == layout.partitions() as usize {
                break;
            }
        }
    }
    keys
}

/// Issue 13 item 18: in the one partition of `topic` that holds records (one record, at offset
/// 0, in segment 0; the broker stopped), replaces segment 0 by a chunk of one record whose
/// payload is a 32 KiB zstd frame of RLE blocks decompressing to 1 GiB, with no declared content
/// size and a wrong checksum, and adds segment 1 with a good chunk at offset 1 holding
/// `after`. Segment 0 is then a closed segment, which recovery walks by header CRC only, so
/// the bomb reaches readers. Returns the partition's directory.
pub fn plant_decompression_bomb(data_dir: &Path, topic: &str) -> PathBuf {
    use shardlog::storage::chunk::{ChunkEncoder, ChunkHeader, HEADER_LEN};
    use shardlog::storage::{index_file_name, log_file_name, RecordBuf};

    let dir = std::fs::read_dir(data_dir.join(topic))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join(log_file_name(0)).exists())
        .expect("the partition's directory");
    // Magic, header descriptor (checksum, no content size), window 128 KiB; 8192 RLE blocks of
    // 128 KiB; a checksum of 0.
    let mut bomb = vec![0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x38];
    let blocks = 8192;
    for i in 0..blocks {
        let header = (128u32 << 10) << 3 | 1 << 1 | u32::from(i + 1 == blocks);
        bomb.extend_from_slice(&header.to_le_bytes()[..3]);
        bomb.push(0);
    }
    bomb.extend_from_slice(&[0; 4]);
    let h = ChunkHeader::new(bomb.len() as u32, 0, 1);
    let mut head = [0u8; HEADER_LEN];
    h.encode(&mut head);
    let mut seg = head.to_vec();
    seg.extend_from_slice(&bomb);
    seg.resize(h.padded_len() as usize, 0x80);
    std::fs::write(dir.join(log_file_name(0)), &seg).unwrap();
    let _ = std::fs::remove_file(dir.join(index_file_name(0)));
    let mut rb = RecordBuf::default();
    rb.push(1, b"after");
    let mut out = vec![0u8; ChunkEncoder::max_encoded_len(rb.bytes.len())];
    let (_, len) = ChunkEncoder::new(1)
        .unwrap()
        .encode(1, &rb, &mut out)
        .unwrap();
    std::fs::write(dir.join(log_file_name(1)), &out[..len]).unwrap();
    dir
}
