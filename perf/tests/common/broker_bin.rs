//! Where the broker binary is, for the tests that run the real one (`broker.rs`, `chaos.rs`).
//!
//! It is another package's binary, so Cargo does not hand its path to these tests: they look for
//! it next to the test executable's directory (`target/debug/shardlog`, which `cargo test
//! --workspace` builds), or at `SHARDLOG_BIN` (e.g. a broker built from another branch).

use std::path::PathBuf;

pub fn broker_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SHARDLOG_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    // target/debug/deps/<test>-<hash> → target/debug/shardlog
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("shardlog");
    bin.is_file().then_some(bin)
}
