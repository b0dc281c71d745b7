//! Running the client crate's `shardlogctl` binary in end-to-end tests (`tests/ctl.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::Broker;

/// The `shardlogctl` binary, built next to the broker's. Cargo builds a package's binaries
/// only for that package's own tests, so this test builds it (once per run; a no-op when it
/// is fresh) with the cargo that runs the tests, into the same target directory.
pub fn ctl_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let broker = Path::new(env!("CARGO_BIN_EXE_shardlog"));
        let profile_dir = broker.parent().expect("the binary's directory");
        let target_dir = profile_dir.parent().expect("the target directory");
        // Cargo sets both when it runs the tests (a target directory shared by checkouts may
        // hold a test binary built in another); the build-time values are for a run by hand.
        let var = |name: &str, built: &str| std::env::var(name).unwrap_or_else(|_| built.into());
        let manifest_dir = var("CARGO_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"));
        let mut cargo = Command::new(var("CARGO", env!("CARGO")));
        cargo
            .args(["build", "--quiet", "-p", "shardlog-client"])
            .args(["--bin", "shardlogctl", "--manifest-path"])
            .arg(Path::new(&manifest_dir).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        // The directory is named after the profile, except the dev profile's ("debug").
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some(profile) => {
                cargo.args(["--profile", profile]);
            }
        }
        let status = cargo.status().expect("run cargo");
        assert!(status.success(), "building shardlogctl failed");
        let bin = profile_dir.join("shardlogctl");
        // Not there: a target-directory layout this does not know.
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// Runs `shardlogctl` against `broker` with `args` and `stdin`.
pub fn ctl(broker: &Broker, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(ctl_binary())
        .env("SHARDLOG_BROKER", broker.framed.to_string())
        .env("SHARDLOG_HTTP", broker.http.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shardlogctl");
    let mut input = child.stdin.take().expect("piped stdin");
    // A run that exits before reading (bad usage, an unreachable broker) closes its stdin.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("shardlogctl output")
}

/// Runs it and expects success; returns standard output.
pub fn ok(broker: &Broker, args: &[&str], stdin: &[u8]) -> String {
    let out = ctl(broker, args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `n` lines of `len` hex digits from a simple generator: they barely compress, so with
/// `--max-poll-bytes 1KiB` every poll returns exactly one stored chunk.
pub fn noisy_lines(seed: u64, n: usize, len: usize) -> Vec<String> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    char::from_digit((x >> 60) as u32, 16).unwrap_or('0')
                })
                .collect()
        })
        .collect()
}
