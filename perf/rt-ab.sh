#!/usr/bin/env bash
# Compares two broker builds (glommio and `--features rt-compio`, say) on framed keyless
# produce, alternated ABBA so that drift of a shared machine falls on both equally.
#
#   perf/rt-ab.sh A_BINARY B_BINARY            # labels "A" and "B"
#   A_NAME=glommio B_NAME=compio ROUNDS=2 DUR=15s perf/rt-ab.sh target/ab/shardlog-glommio target/ab/shardlog-compio
#   # one build, two client behaviours: plain frames against producer-compressed ones
#   A_NAME=plain B_NAME=zipped B_ARGS="--producer-compress 1" perf/rt-ab.sh target/release/shardlog target/release/shardlog
#
# A_ARGS / B_ARGS are extra harness flags for each side's runs, PERF_ARGS for both (e.g.
# "--messages-per-frame 1000 --payload text"); A_BROKER_ARGS / B_BROKER_ARGS extra broker
# flags for each side (e.g. "--zstd-min-level -3"), BROKER_ARGS for both.
#
# Each run: a fresh data directory, the broker pinned to $BROKER_CPUS with --shards 1, the
# harness (`shardlog-perf produce`, $PERF) pinned to $HARNESS_CPUS, one client shape from
# $SHAPES (connections x frames in flight). Per run it prints msgs/s, ack p50/p99/p99.9 and the
# broker's CPU over the produce command (utime + stime ticks from /proc/PID/stat): ticks, busy
# share of one core, and µs of broker CPU per acknowledged message; and the chunk bytes
# written per message stored (from /metrics).
set -euo pipefail
cd "$(dirname "$0")/.."

A=${1:?usage: perf/rt-ab.sh A_BINARY B_BINARY}
B=${2:?usage: perf/rt-ab.sh A_BINARY B_BINARY}
A_NAME=${A_NAME:-A}
B_NAME=${B_NAME:-B}
PERF=${PERF:-target/release/shardlog-perf}
BROKER_CPUS=${BROKER_CPUS:-0}
HARNESS_CPUS=${HARNESS_CPUS:-1}
SHAPES=${SHAPES:-16x16 64x4}
ROUNDS=${ROUNDS:-2}
DUR=${DUR:-15s}
LEVEL=${LEVEL:-1}
DIR=${DIR:-$PWD/target/rt-ab}
FRAMED=127.0.0.1:19354
HTTP=127.0.0.1:19352
TCK=$(getconf CLK_TCK)
mkdir -p "$DIR"

# shellcheck source=perf/lib.sh
source perf/lib.sh

A_ARGS=${A_ARGS:-}
B_ARGS=${B_ARGS:-}
PERF_ARGS=${PERF_ARGS:-}
A_BROKER_ARGS=${A_BROKER_ARGS:-}
B_BROKER_ARGS=${B_BROKER_ARGS:-}
BROKER_ARGS=${BROKER_ARGS:-}

run() { # run NAME BINARY SHAPE BROKER_FLAGS [HARNESS FLAGS...]
  local name=$1 bin=$2 shape=$3 bflags=$4 conns inflight t0 t1 c0 c1 bytes msgs
  shift 4
  conns=${shape%x*}
  inflight=${shape#*x}
  rm -rf "$DIR/data"
  taskset -c "$BROKER_CPUS" "$bin" --data-dir "$DIR/data" --shards 1 --framed-listen $FRAMED \
    --http-listen $HTTP --zstd-level "$LEVEL" --min-free-space 0 --log warn,shardlog::broker=info \
    $BROKER_ARGS $bflags \
    > "$DIR/broker.log" 2>&1 &
  pid=$!
  # A start right after the previous run deleted gigabytes can wait on the disk: up to 2 min.
  for _ in $(seq 1200); do grep -q "shardlog ready" "$DIR/broker.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "shardlog ready" "$DIR/broker.log" || { echo "$name did not start"; cat "$DIR/broker.log"; exit 1; }
  c0=$(ticks "$pid")
  t0=$(date +%s.%N)
  "$PERF" produce --framed $FRAMED --duration "$DUR" --warmup 2s --connections "$conns" \
    --in-flight "$inflight" --cpus "$HARNESS_CPUS" --quiet --json $PERF_ARGS "$@" > "$DIR/run.json"
  t1=$(date +%s.%N)
  c1=$(ticks "$pid")
  bytes=$(metric shardlog_chunk_bytes_written)
  msgs=$(metric shardlog_messages_in)
  stop
  python3 - "$DIR/run.json" "$name" "$shape" "$c0" "$c1" "$t0" "$t1" "$TCK" "$bytes" "$msgs" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
name, shape = sys.argv[2], sys.argv[3]
c0, c1, t0, t1, tck = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
per_msg = int(sys.argv[9]) / max(1, int(sys.argv[10]))
ticks = c1 - c0
secs = t1 - t0
busy = ticks / tck / secs
us_per_msg = ticks / tck * 1e6 / max(1.0, d["msgs_per_sec"] * secs)
print(f"{name:8} {shape:6} {int(d['msgs_per_sec']):>9} msgs/s  p50 {d.get('p50_us', 0)/1000:6.2f} ms"
      f"  p99 {d['p99_us']/1000:6.2f} ms  p99.9 {d.get('p999_us', 0)/1000:6.2f} ms"
      f"  cpu {ticks:5} ticks  busy {busy:4.2f}  {us_per_msg:5.2f} µs/msg  {per_msg:6.1f} B/msg")
PY
}

echo "# broker CPU $BROKER_CPUS (--shards 1), harness CPU $HARNESS_CPUS, $DUR per run (+2 s warm-up), zstd level $LEVEL"
echo "# $A_NAME: $A $BROKER_ARGS $A_BROKER_ARGS | harness $PERF_ARGS $A_ARGS"
echo "# $B_NAME: $B $BROKER_ARGS $B_BROKER_ARGS | harness $PERF_ARGS $B_ARGS"
for shape in $SHAPES; do
  for _ in $(seq "$ROUNDS"); do
    # ABBA: each pair of rounds runs A, B, B, A.
    run "$A_NAME" "$A" "$shape" "$A_BROKER_ARGS" $A_ARGS
    run "$B_NAME" "$B" "$shape" "$B_BROKER_ARGS" $B_ARGS
    run "$B_NAME" "$B" "$shape" "$B_BROKER_ARGS" $B_ARGS
    run "$A_NAME" "$A" "$shape" "$A_BROKER_ARGS" $A_ARGS
  done
done
