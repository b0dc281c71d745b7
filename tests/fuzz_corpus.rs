//! Replays the fuzz corpora on stable: every file under `fuzz/corpus/{target}/` and every
//! fixed crash under `fuzz/artifacts/{target}/` goes through the same function the fuzz
//! target calls (`shardlog::fuzzing`), so a decoder change that breaks on a once-found input
//! fails `cargo test`.
//!
//! `SHARDLOG_FUZZ_SEEDS=1 cargo test --test fuzz_corpus write_seeds` (what `fuzz/seeds.sh`
//! runs) writes the seed inputs the project's encoders make into `fuzz/corpus/`.

use std::path::{Path, PathBuf};

use shardlog::fuzzing::{seeds, target, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir/{target}/` for every target directory there, sorted.
fn inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(targets) = std::fs::read_dir(dir) else {
        return out;
    };
    for t in targets.flatten() {
        let name = t.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for f in files.flatten() {
            if f.path().is_file() {
                out.push((name.clone(), f.path()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_corpus_file_and_fixed_crash_replays() {
    let mut replayed = 0;
    for sub in ["corpus", "artifacts"] {
        for (name, path) in inputs(&fuzz_dir().join(sub)) {
            let run = target(&name)
                .unwrap_or_else(|| panic!("{}: no fuzz target called {name}", path.display()));
            let bytes = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{} fails its target", path.display());
            replayed += 1;
        }
    }
    // Every target has a corpus.
    for (name, _) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(
            n > 0,
            "no corpus for the fuzz target {name} in {}",
            dir.display()
        );
    }
    assert!(replayed >= TARGETS.len());
}

#[test]
fn every_target_has_a_fuzz_binary() {
    for (name, _) in TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("shardlog::fuzzing::target(\"{name}\")")),
            "{} must call the target {name}",
            file.display()
        );
    }
}

#[test]
fn seeds_pass_their_targets() {
    for s in seeds::all() {
        let run = target(s.target).unwrap_or_else(|| panic!("no target {}", s.target));
        run(&s.bytes);
    }
}

/// Writes the seeds into `fuzz/corpus/{target}/seed-{name}` (only with
/// `SHARDLOG_FUZZ_SEEDS=1`; `fuzz/seeds.sh`).
#[test]
fn write_seeds() {
    if std::env::var_os("SHARDLOG_FUZZ_SEEDS").is_none() {
        return;
    }
    for s in seeds::all() {
        let dir = fuzz_dir().join("corpus").join(s.target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{}", s.name)), &s.bytes).unwrap();
    }
}
