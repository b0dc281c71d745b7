#!/usr/bin/env bash
# Runs every fuzz target (or those named after SECONDS) for SECONDS each, one after another,
# then prints per target: seconds, executions, coverage (libFuzzer's cov/ft at the end), the
# corpus size, and any crash file. New inputs go to fuzz/work/TARGET (not checked in); run
# fuzz/cmin.sh to merge what they add into the checked-in corpus, minimized.
#
#   fuzz/run.sh 60                 # every target, a minute each
#   fuzz/run.sh 600 recovery chunk # two targets, ten minutes each
#
# Stable Rust is enough: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly flags.
# SANITIZER=address (default none: the decoders are safe Rust, and the runs go twice as far
# without it). JOBS=N runs N processes per target (libFuzzer -fork). NICE=10 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/fuzz/target}
sanitizer=${SANITIZER:-none}
nice_level=${NICE:-10}
jobs=${JOBS:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# Inputs the bigger formats need: a segment directory is several 4 KiB blocks.
max_len() {
    case $1 in
        recovery) echo 131072 ;;
        chunk | poll_response | records | frames | grpc_messages) echo 65536 ;;
        *) echo 8192 ;;
    esac
}

nice -n "$nice_level" cargo fuzz build -s "$sanitizer" --fuzz-dir fuzz
mkdir -p fuzz/logs
printf '%-18s %7s %11s %7s %7s %9s  %s\n' target seconds execs cov ft corpus crash
for t in "${targets[@]}"; do
    mkdir -p "fuzz/work/$t" "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="fuzz/logs/$t.log"
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    fork=()
    if [ "$jobs" -gt 1 ]; then fork=(-fork="$jobs"); fi
    set +e
    nice -n "$nice_level" cargo fuzz run -s "$sanitizer" --fuzz-dir fuzz "$t" \
        "fuzz/work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=20 \
        -rss_limit_mb=2048 -print_final_stats=1 "${fork[@]}" >"$log" 2>&1
    set -e
    execs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    last=$(grep -E 'cov: [0-9]+' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || true)
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || true)
    files=$(cat <(ls "fuzz/corpus/$t") <(ls "fuzz/work/$t") | sort -u | wc -l)
    crash=-
    if [ "$(ls "fuzz/artifacts/$t" | wc -l)" -gt "$before" ]; then
        crash=$(ls -t "fuzz/artifacts/$t" | head -1)
        crash="fuzz/artifacts/$t/$crash"
    fi
    printf '%-18s %7s %11s %7s %7s %9s  %s\n' "$t" "$seconds" "${execs:-?}" "${cov:-?}" \
        "${ft:-?}" "$files" "$crash"
done
