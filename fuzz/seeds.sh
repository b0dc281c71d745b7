#!/usr/bin/env bash
# Writes the seed inputs the project's own encoders make (src/fuzzing/seeds.rs) into
# fuzz/corpus/TARGET/seed-NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDLOG_FUZZ_SEEDS=1 cargo test --test fuzz_corpus write_seeds
