#!/usr/bin/env bash
# Merges what fuzz/run.sh found (fuzz/work/TARGET) into the checked-in corpus
# (fuzz/corpus/TARGET), keeping only inputs that add coverage (libFuzzer -merge=1, as
# `cargo fuzz cmin` does), then keeps the seeds and the smallest of the rest up to a byte
# budget per target, so the corpus stays small in git (the full merge stays in
# fuzz/work/TARGET for the next run). Every target, or those named.
#
#   fuzz/cmin.sh                    # every target
#   BUDGET=20000 fuzz/cmin.sh chunk # one target, 20 KB of non-seed inputs
#
# BUDGET defaults to 12 KB per target, 80 KB for recovery (a segment directory is several
# 4 KiB blocks).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/fuzz/target}
sanitizer=${SANITIZER:-none}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
budget_for() {
    if [ -n "${BUDGET:-}" ]; then echo "$BUDGET"; return; fi
    case $1 in
        recovery) echo 81920 ;;
        *) echo 12288 ;;
    esac
}

# Keeps the seeds and the smallest other files of directory $1 while their sizes add up to at
# most $2 bytes; the rest go to $3 (so they are not lost).
trim() {
    local dir=$1 budget=$2 spill=$3 used=0 size name
    while read -r size name; do
        if [ $((used + size)) -le "$budget" ]; then
            used=$((used + size))
        else
            mv "$dir/$name" "$spill/"
        fi
    done < <(find "$dir" -maxdepth 1 -type f ! -name 'seed-*' -printf '%s %f\n' | sort -n -k1,1 -k2,2)
}

for t in "${targets[@]}"; do
    mkdir -p "fuzz/work/$t"
    fresh=$(mktemp -d)
    # The seeds stay whatever they add: they are the encoders' own output.
    cp fuzz/corpus/"$t"/seed-* "$fresh"/ 2>/dev/null || true
    nice -n "${NICE:-10}" cargo fuzz run -s "$sanitizer" --fuzz-dir fuzz "$t" "$fresh" \
        "fuzz/corpus/$t" "fuzz/work/$t" -- -merge=1 -max_len=131072 -timeout=20 \
        -rss_limit_mb=2048 >"fuzz/logs/cmin-$t.log" 2>&1
    # What the budget leaves out stays in fuzz/work (libFuzzer names files by content hash).
    trim "$fresh" "$(budget_for "$t")" "fuzz/work/$t"
    rm -rf "fuzz/corpus/$t"
    mv "$fresh" "fuzz/corpus/$t"
    chmod 755 "fuzz/corpus/$t"
    echo "$t: $(ls "fuzz/corpus/$t" | wc -l) files, $(du -sb "fuzz/corpus/$t" | cut -f1) bytes"
done
