#!/usr/bin/env bash
# Reproduces every figure of docs/benchmarks.md on one host, in one run: the machine's own
# limits first (one-core zstd rate of the same payload, bare fdatasync of a chunk-sized O_DIRECT
# write, O_DIRECT sequential bandwidth), then the broker measured against them.
#
#   perf/bench.sh                      # everything, ~6 minutes
#   DUR=30s SOAK=10m perf/bench.sh     # longer runs and a 10-minute memory soak
#   SWEEP=only perf/bench.sh           # only the client-shape / frame-size / payload sweep
#   SWEEP=0 perf/bench.sh              # everything but the sweep
#
# The broker runs pinned to $BROKER_CPUS, the harness to $HARNESS_CPUS (one core each on a
# 2-core machine). Results go to $OUT (one JSON file per step) and a summary table to stdout.
# IO_WORKER_CPUS=1 also lets the broker's process run on CPU 1 and steers its io_uring workers
# there (--io-worker-cpus 1), the shards still pinned to $BROKER_CPUS.
set -euo pipefail
cd "$(dirname "$0")/.."

BROKER_CPUS=${BROKER_CPUS:-0}
HARNESS_CPUS=${HARNESS_CPUS:-1}
ALL_CPUS=${ALL_CPUS:-0,1}
LEVEL=${LEVEL:-1}
DUR=${DUR:-15s}
SOAK=${SOAK:-0}
SWEEP=${SWEEP:-1}
SWEEP_DUR=${SWEEP_DUR:-8s}
DIR=${DIR:-$PWD/target/bench-data}
OUT=${OUT:-$PWD/target/bench-results}
FRAMED=127.0.0.1:19254
HTTP=127.0.0.1:19252
CONNS=${CONNS:-16}
INFLIGHT=${INFLIGHT:-16}
IO_WORKER_CPUS=${IO_WORKER_CPUS:-}

cargo build --release --workspace -q
BROKER=target/release/shardlog
PERF=target/release/shardlog-perf
mkdir -p "$OUT"
rm -rf "$DIR"
mkdir -p "$DIR"

broker_pid=""
launch_broker() { # launch_broker SHARDS CPUS [extra flags...], in the background
  local shards=$1 cpus=$2 steer=()
  shift 2
  if [ -n "$IO_WORKER_CPUS" ]; then steer=(--io-worker-cpus "$IO_WORKER_CPUS"); fi
  taskset -c "$cpus${IO_WORKER_CPUS:+,$IO_WORKER_CPUS}" "$BROKER" --data-dir "$DIR/data" \
    --shards "$shards" --cpus "$cpus" ${steer[@]+"${steer[@]}"} --framed-listen $FRAMED \
    --http-listen $HTTP --zstd-level "$LEVEL" --min-free-space 0 \
    --log warn,shardlog::broker=info "$@" > "$OUT/broker.log" 2>&1 &
}
start_broker() { # start_broker SHARDS CPUS [extra flags...]
  local shards=$1 cpus=$2
  shift 2
  rm -rf "$DIR/data"
  # Emptied here, not by the redirection below: that runs in the background child, possibly
  # after the first look for "shardlog ready", which would then find the previous broker's.
  : > "$OUT/broker.log"
  launch_broker "$shards" "$cpus" "$@"
  broker_pid=$!
  for _ in $(seq 100); do grep -q "shardlog ready" "$OUT/broker.log" && return; sleep 0.1; done
  echo "broker did not start:"; cat "$OUT/broker.log"; exit 1
}
restart_broker() { # keeps the data directory
  local shards=$1 cpus=$2
  shift 2
  stop_broker
  : > "$OUT/broker.log"
  launch_broker "$shards" "$cpus" "$@"
  broker_pid=$!
  for _ in $(seq 600); do grep -q "shardlog ready" "$OUT/broker.log" && return; sleep 0.1; done
  echo "broker did not restart"; cat "$OUT/broker.log"; exit 1
}
stop_broker() {
  if [ -n "$broker_pid" ]; then kill -TERM "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  broker_pid=""
}
trap stop_broker EXIT
rss_mib() { echo $(( $(ps -o rss= -p "$broker_pid") / 1024 )); }
j() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

# The sweep: keyless framed produce, 1 shard, across client shapes (connections x frames in
# flight), messages per frame and payloads of different compressibility, each figure against
# the one-core zstd rate of its own payload measured just before it (and, for payloads zstd
# cannot shrink, the disk's O_DIRECT write bandwidth: whichever is lower is the bound).
sweep_zstd() { # sweep_zstd KIND -> msgs/s of that payload on one core, and its zstd ratio
  $PERF limits --only zstd --dir "$DIR/limits" --cpus "$HARNESS_CPUS" --zstd-level "$LEVEL" \
    --payload "$1" --json > "$OUT/sweep-zstd-$1.json"
  j "$OUT/sweep-zstd-$1.json" "f\"{int(d['zstd']['batch']['msgs_per_sec'])} {d['zstd']['batch']['ratio']:.3f}\""
}
sweep_row() { # sweep_row LABEL KIND CONNS INFLIGHT MPF
  local label=$1 kind=$2 c=$3 f=$4 m=$5 name="sweep-$2-$3x$4-m$5"
  start_broker 1 "$BROKER_CPUS"
  $PERF produce --framed $FRAMED --duration "$SWEEP_DUR" --warmup 2s --connections "$c" \
    --in-flight "$f" --messages-per-frame "$m" --payload "$kind" --cpus "$HARNESS_CPUS" \
    --quiet --json > "$OUT/$name.json"
  # Scheduling delays over 10 ms during the run (a stalled executor would show here).
  local stalls
  stalls=$(curl -s "http://$HTTP/metrics" | python3 -c "
import sys
count = fast = 0
for line in sys.stdin:
    if line.startswith('shardlog_sched_delay_seconds_count'): count += float(line.split()[-1])
    if line.startswith('shardlog_sched_delay_seconds_bucket') and 'le=\"0.01\"' in line: fast += float(line.split()[-1])
print(int(count - fast))")
  stop_broker
  local rate p99
  rate=$(j "$OUT/$name.json" "int(d['msgs_per_sec'])")
  p99=$(j "$OUT/$name.json" "d['p99_us']")
  local zstd=${SWEEP_ZSTD[$kind]} ratio=${SWEEP_RATIO[$kind]}
  # The disk's bound in messages: its write bandwidth over the bytes each message takes stored.
  local disk
  disk=$(python3 -c "print(int($WRITE_BW * 1e6 / ((1024 + 12) / $ratio)))")
  local bound=$zstd which=zstd
  if [ "$disk" -lt "$zstd" ]; then bound=$disk which=disk; fi
  SWEEP_ROWS+=("| $label | $kind | ${c}x${f} | $m | $rate | $p99 | $bound ($which) | $(python3 -c "print(f'{$rate/$bound:.2f}')") | $stalls |")
  SWEEP_RATE[$name]=$rate
}
run_sweep() {
  echo "== sweep: client shapes, messages per frame, payloads (${SWEEP_DUR} each)"
  declare -gA SWEEP_ZSTD SWEEP_RATIO SWEEP_RATE
  SWEEP_ROWS=()
  for kind in json text random; do
    read -r SWEEP_ZSTD[$kind] SWEEP_RATIO[$kind] < <(sweep_zstd $kind)
  done
  for shape in "1 32" "4 8" "16 16" "64 4"; do
    sweep_row "shape" json $shape 64
  done
  for m in 1 16 64 256; do
    sweep_row "msgs/frame" json 16 64 "$m"
  done
  for kind in text random; do
    sweep_row "payload" $kind 16 16 64
  done
  local base=${SWEEP_RATE[sweep-json-4x8-m64]}
  cat <<SWEEPTABLE

Sweep (keyless framed produce, 1 shard on CPU $BROKER_CPUS, harness on CPU $HARNESS_CPUS, 1 KiB messages, zstd level $LEVEL; O_DIRECT write bandwidth $WRITE_BW MB/s)

| varied | payload | connections x in flight | msgs/frame | msgs/s | ack p99 µs | bound msgs/s | ratio to bound | sched delays > 10 ms |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
$(printf '%s\n' "${SWEEP_ROWS[@]}")

More connections against 4x8: 16x16 $(python3 -c "print(f'{${SWEEP_RATE[sweep-json-16x16-m64]}/$base:.2f}')")x, 64x4 $(python3 -c "print(f'{${SWEEP_RATE[sweep-json-64x4-m64]}/$base:.2f}')")x; one message per frame against 64 (16x64): $(python3 -c "print(f'{${SWEEP_RATE[sweep-json-16x64-m1]}/${SWEEP_RATE[sweep-json-16x64-m64]}:.2f}')")x
SWEEPTABLE
}

echo "== limits (CPU $HARNESS_CPUS, level $LEVEL)"
$PERF limits --dir "$DIR/limits" --cpus "$HARNESS_CPUS" --zstd-level "$LEVEL" --json > "$OUT/limits.json"
ZSTD=$(j "$OUT/limits.json" "int(d['zstd']['batch']['msgs_per_sec'])")
ZSTD_MB=$(j "$OUT/limits.json" "d['zstd']['batch']['payload_mb_per_sec']")
FSYNC_P99=$(j "$OUT/limits.json" "d['fsync']['p99_us']")
READ_BW=$(j "$OUT/limits.json" "d['bandwidth']['read_mb_per_sec']")
WRITE_BW=$(j "$OUT/limits.json" "d['bandwidth']['write_mb_per_sec']")

if [ "$SWEEP" = "only" ]; then
  run_sweep
  exit 0
fi

produce() { # produce NAME [flags...]
  local name=$1
  shift
  $PERF produce --framed $FRAMED --duration "$DUR" --warmup 2s --connections "$CONNS" \
    --in-flight "$INFLIGHT" --quiet --json "$@" > "$OUT/$name.json"
}

echo "== framed produce, 1 shard, keyless"
start_broker 1 "$BROKER_CPUS"
produce produce-keyless --cpus "$HARNESS_CPUS"
RSS1=$(rss_mib)
P_KEYLESS=$(j "$OUT/produce-keyless.json" "int(d['msgs_per_sec'])")
P_MB=$(j "$OUT/produce-keyless.json" "d['mb_per_sec']")
# The zstd rate again, just after: on a shared VM one 3-second measurement can be disturbed,
# so the yardstick is the higher of the two (the stricter ratio).
$PERF limits --only zstd --dir "$DIR/limits" --cpus "$HARNESS_CPUS" --zstd-level "$LEVEL" --json > "$OUT/limits-after.json"
ZSTD_BEFORE=$ZSTD
ZSTD_AFTER=$(j "$OUT/limits-after.json" "int(d['zstd']['batch']['msgs_per_sec'])")
ZSTD=$(( ZSTD_AFTER > ZSTD_BEFORE ? ZSTD_AFTER : ZSTD_BEFORE ))

echo "== ack latency at half the maximum rate"
chunk_writes() { # "<writes> <bytes>" so far, from the broker's /metrics
  curl -s "http://$HTTP/metrics" | python3 -c "
import sys
w = b = 0
for line in sys.stdin:
    if line.startswith('shardlog_chunk_write_seconds_count'): w += float(line.split()[-1])
    if line.startswith('shardlog_chunk_bytes_written_total'): b += float(line.split()[-1])
print(int(w), int(b))"
}
read -r W0 B0 < <(chunk_writes)
T0=$(date +%s.%N)
produce produce-half-rate --cpus "$HARNESS_CPUS" --rate $((P_KEYLESS / 2))
T1=$(date +%s.%N)
read -r W1 B1 < <(chunk_writes)
HALF_P99=$(j "$OUT/produce-half-rate.json" "d['p99_us']")
# The disk alone under the write pattern that step produced (its chunk writes per second and
# mean chunk size, from /metrics; one writer per partition), with no broker running.
MIX_RATE=$(python3 -c "print(round(($W1 - $W0) / ($T1 - $T0)))")
MIX_SIZE=$(python3 -c "print(max(4096, ($B1 - $B0) // max(1, $W1 - $W0)))")
stop_broker
$PERF limits --only fsync-mix --dir "$DIR/limits" --cpus "$HARNESS_CPUS" --mix-writers 4 \
  --mix-rate "$MIX_RATE" --mix-size "$MIX_SIZE" --json > "$OUT/limits-fsync-mix.json"
MIX_P99=$(j "$OUT/limits-fsync-mix.json" "d['fsync_mix']['p99_us']")
# And the core alone: how often the host took the broker's core from a thread spinning on it,
# for as long as the half-rate step ran (a gap there delays every acknowledgement in flight).
$PERF limits --only hiccup --hiccup-duration "$DUR" --cpus "${BROKER_CPUS%%[,-]*}" --json \
  > "$OUT/limits-hiccup.json"
HICCUP_10=$(j "$OUT/limits-hiccup.json" "dict(d['hiccup']['gaps_over_ms'])[10.0]")
HICCUP_WORST=$(j "$OUT/limits-hiccup.json" "round(d['hiccup']['worst_ms'], 1)")

echo "== consume what was just written (hot tail)"
stop_broker
start_broker 1 "$BROKER_CPUS" --hot-tail 128MiB
$PERF produce --framed $FRAMED --messages 300000 --connections "$CONNS" --topic hot --cpus "$HARNESS_CPUS" --quiet --json > "$OUT/hot-fill.json"
$PERF consume --framed $FRAMED --topic hot --consumers 2 --start earliest --until-empty --max-wait-ms 0 --cpus "$HARNESS_CPUS" --json > "$OUT/consume-hot.json"
HOT_MB=$(j "$OUT/consume-hot.json" "d['mb_per_sec']")

echo "== drain a cold backlog (after a restart: nothing in memory)"
$PERF produce --framed $FRAMED --duration 10s --connections "$CONNS" --topic cold --cpus "$HARNESS_CPUS" --quiet --json > "$OUT/cold-fill.json"
restart_broker 1 "$BROKER_CPUS"
$PERF consume --framed $FRAMED --topic cold --consumers 4 --start earliest --until-empty --max-wait-ms 0 --no-decode --cpus "$HARNESS_CPUS" --json > "$OUT/consume-cold.json"
COLD_MB=$(j "$OUT/consume-cold.json" "d['wire_mb_per_sec']")
RSS_CONSUME=$(rss_mib)
stop_broker

echo "== framed produce, 1 shard, 1000 keys"
start_broker 1 "$BROKER_CPUS"
produce produce-keys --cpus "$HARNESS_CPUS" --keys 1000
P_KEYS=$(j "$OUT/produce-keys.json" "int(d['msgs_per_sec'])")
stop_broker

echo "== gRPC produce, 1 shard"
start_broker 1 "$BROKER_CPUS"
if $PERF grpc-produce --help > /dev/null 2>&1; then
  # Calls spread over the topic's 4 partitions, as the framed producers' keyless connections
  # are; then every call to partition 0 (what a client sending no metadata gets).
  $PERF grpc-produce --http $HTTP --duration "$DUR" --warmup 2s --cpus "$HARNESS_CPUS" --spread 4 --quiet --json > "$OUT/grpc-produce.json"
  P_GRPC=$(j "$OUT/grpc-produce.json" "int(d['msgs_per_sec'])")
  $PERF grpc-produce --http $HTTP --duration "$DUR" --warmup 2s --cpus "$HARNESS_CPUS" --topic one --quiet --json > "$OUT/grpc-produce-one-partition.json"
  P_GRPC1=$(j "$OUT/grpc-produce-one-partition.json" "int(d['msgs_per_sec'])")
else
  P_GRPC=0
  P_GRPC1=0
fi
stop_broker

echo "== framed produce, 2 shards, harness on the same 2 cores"
start_broker 2 "$ALL_CPUS"
produce produce-2shards --cpus "$ALL_CPUS"
P_2=$(j "$OUT/produce-2shards.json" "int(d['msgs_per_sec'])")
RSS2=$(rss_mib)
stop_broker

if [ "$SOAK" != "0" ]; then
  echo "== memory soak: $SOAK of produce + consume, RSS sampled every 10 s"
  start_broker 1 "$BROKER_CPUS" --retention-bytes 2GiB --segment-size 256MiB
  $PERF e2e --framed $FRAMED --duration "$SOAK" --rate $((P_KEYLESS / 2)) --cpus "$HARNESS_CPUS" --quiet --json > "$OUT/soak.json" &
  soak=$!
  : > "$OUT/soak-rss.txt"
  while kill -0 $soak 2>/dev/null; do echo "$(date +%s) $(rss_mib)" >> "$OUT/soak-rss.txt"; sleep 10; done
  stop_broker
fi

if [ "$SWEEP" != "0" ]; then
  run_sweep
fi

pct() { python3 -c "print(f'{100*$1/$2:.0f}%')"; }
cat <<TABLE

| measurement | result | yardstick (same run) | ratio |
| --- | --- | --- | --- |
| one-core zstd, level $LEVEL, 1 MiB batches | $ZSTD_BEFORE msgs/s before, $ZSTD_AFTER after (the higher is the yardstick) | — | — |
| framed produce, 1 shard, keyless | $P_KEYLESS msgs/s ($P_MB MB/s) | zstd $ZSTD msgs/s | $(pct $P_KEYLESS $ZSTD) |
| framed produce, 1 shard, 1000 keys | $P_KEYS msgs/s | zstd $ZSTD msgs/s | $(pct $P_KEYS $ZSTD) |
| framed produce, 2 shards + harness on 2 cores | $P_2 msgs/s | zstd $ZSTD msgs/s | $(python3 -c "print(f'{$P_2/$ZSTD:.2f}x')") |
| ack p99 at half the max rate | $HALF_P99 µs | bare fdatasync p99 $FSYNC_P99 µs | $(python3 -c "print(f'{$HALF_P99/$FSYNC_P99:.2f}x')") |
| the disk alone under that step's writes ($MIX_RATE/s of $MIX_SIZE B, 4 writers, O_DSYNC) | p99 $MIX_P99 µs | bare fdatasync p99 $FSYNC_P99 µs | $(python3 -c "print(f'{$MIX_P99/$FSYNC_P99:.2f}x')") |
| the broker's core alone for $DUR (a thread spinning on it) | $HICCUP_10 gaps above 10 ms, worst $HICCUP_WORST ms | — | — |
| consume, hot tail | $HOT_MB MB/s payload | produce $P_MB MB/s | $(python3 -c "print(f'{$HOT_MB/$P_MB:.2f}x')") |
| consume, cold backlog | $COLD_MB MB/s read | O_DIRECT read $READ_BW MB/s | $(pct $COLD_MB $READ_BW) |
| gRPC produce, 1 KiB values, calls spread over 4 partitions | $P_GRPC msgs/s | framed $P_KEYLESS msgs/s | $(pct $P_GRPC $P_KEYLESS) |
| gRPC produce, 1 KiB values, every call to partition 0 | $P_GRPC1 msgs/s | framed $P_KEYLESS msgs/s | $(pct $P_GRPC1 $P_KEYLESS) |
| broker RSS | ${RSS1} MiB (1 shard, produce), ${RSS_CONSUME} MiB (consume), ${RSS2} MiB (2 shards) | 256 MiB per shard | |

JSON for every step: $OUT
TABLE
