#!/usr/bin/env bash
# Merges what fuzz/run.sh found (fuzz/work/TARGET) into the checked-in corpus
# (fuzz/corpus/TARGET), keeping only inputs that add coverage (libFuzzer -merge=1, as
# `cargo fuzz cmin` does). Every target, or those named.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/fuzz/target}
sanitizer=${SANITIZER:-none}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
for t in "${targets[@]}"; do
    mkdir -p "fuzz/work/$t"
    fresh=$(mktemp -d)
    # The seeds stay whatever they add: they are the encoders' own output.
    cp fuzz/corpus/"$t"/seed-* "$fresh"/ 2>/dev/null || true
    nice -n "${NICE:-10}" cargo fuzz run -s "$sanitizer" --fuzz-dir fuzz "$t" "$fresh" \
        "fuzz/corpus/$t" "fuzz/work/$t" -- -merge=1 -max_len=131072 -timeout=20 \
        -rss_limit_mb=2048 >"fuzz/logs/cmin-$t.log" 2>&1
    rm -rf "fuzz/corpus/$t"
    mv "$fresh" "fuzz/corpus/$t"
    chmod 755 "fuzz/corpus/$t"
    echo "$t: $(ls "fuzz/corpus/$t" | wc -l) files, $(du -sb "fuzz/corpus/$t" | cut -f1) bytes"
done
