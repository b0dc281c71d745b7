//! The bodies of the fuzz targets (`fuzz/`), one function per decoder of untrusted bytes.
//!
//! They live in the broker crate, not in `fuzz/`, so that two callers share them: the
//! cargo-fuzz targets (one line each, on the nightly features stable Rust allows with
//! `RUSTC_BOOTSTRAP=1`) and `tests/fuzz_corpus.rs`, which replays every checked-in corpus
//! file and every fixed crash through the same function on stable in `cargo test`.
//!
//! A target returns normally for any input: a decoder that refuses bad bytes with an error is
//! doing its job. It panics (the fuzzer's finding) when a decoder panics, or when a property
//! that must hold beyond "no panic" fails: what decodes re-encodes to the same thing, decoded
//! lengths stay within the input, what recovery keeps all decodes.
//!
//! - [`wire_targets`]: the framed header and frames, every request body, ERROR bodies, the
//!   binary poll response and records (what clients decode).
//! - [`http_targets`]: the HTTP/1.1 request head, the REST JSON bodies, the gRPC
//!   length-prefixed message reader.
//! - [`storage_targets`]: chunks (bounded decompression) and recovery of a segment directory.
//! - [`file_targets`]: the consumer offsets file, the topic layout file, the TOML config.
//! - [`seeds`]: seed inputs for every target, made by the project's own encoders.

pub mod file_targets;
pub mod http_targets;
pub mod seeds;
pub mod storage_targets;
pub mod wire_targets;

/// A target's body: takes the input, panics on a finding.
pub type TargetFn = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/{name}.rs` file and `fuzz/corpus/{name}/`)
/// and its body.
pub const TARGETS: &[(&str, TargetFn)] = &[
    ("frame_header", wire_targets::frame_header),
    ("frames", wire_targets::frames),
    ("startup", wire_targets::startup),
    ("produce", wire_targets::produce),
    ("register", wire_targets::register),
    ("poll", wire_targets::poll),
    ("commit", wire_targets::commit),
    ("goodbye", wire_targets::goodbye),
    ("fetch", wire_targets::fetch),
    ("error_body", wire_targets::error_body),
    ("poll_response", wire_targets::poll_response),
    ("records", wire_targets::records),
    ("http1_head", http_targets::http1_head),
    ("rest_commit", http_targets::rest_commit),
    ("rest_topic_create", http_targets::rest_topic_create),
    ("grpc_messages", http_targets::grpc_messages),
    ("chunk", storage_targets::chunk),
    ("recovery", storage_targets::recovery),
    ("offsets_file", file_targets::offsets_file),
    ("topic_layout", file_targets::topic_layout),
    ("config_toml", file_targets::config_toml),
];

/// The body of the target called `name`.
pub fn target(name: &str) -> Option<TargetFn> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Splits `data` into a control byte (its first) and the rest, for targets that take a
/// parameter from the input (0 for empty input).
fn split_control(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((c, rest)) => (*c, rest),
        None => (0, data),
    }
}
