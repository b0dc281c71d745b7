#!/usr/bin/env bash
# shardlog and Apache Iggy side by side, in turn, on the same cores, with fsync on.
#
#   perf/vs-iggy.sh /path/to/iggy-server /path/to/iggy-bench
#   ROUNDS=3 CPUS=0-1 perf/vs-iggy.sh ~/iggy/target/release/iggy-server ~/iggy/target/release/iggy-bench
#
# Iggy is not part of this project: build it yourself from its public source and pass the two
# binaries (docs/benchmarks.md says which version was measured). Each round runs, each with a
# fresh data directory, the server and the client on the same $CPUS ($SHARDS shards each,
# default 2):
#
#   iggy      iggy-server with 2 shards, every batch written and fsynced before it is
#             acknowledged (server settings [system.partition] enforce_fsync = true and
#             messages_required_to_save = 1, as environment variables); `iggy-bench -m 1024
#             -P 1000 -b $BATCHES pinned-producer --producers 2 --streams 2 tcp`, then the same
#             pinned-consumer (Iggy 0.8). Newer Iggy servers refuse those settings and their
#             bench takes `--enforce-fsync` (a topic option) instead:
#             IGGY_SERVER_ENV= IGGY_BENCH_FLAGS=--enforce-fsync.
#   shardlog  --shards 2; `shardlog-perf produce --connections 2 --in-flight 1
#             --messages-per-frame 1000 --message-size 1024` (1 KiB JSON-like messages, about
#             half random), then 2 consumers draining the topic
#   shardlog+ the same with --producer-compress 1 (the client compresses, PRODUCE flag 0x08)
#   shardlog~ only when ALT_ARGS is set: shardlog with those broker flags added, e.g.
#             ALT_ARGS="--zstd-level -3" or ALT_ARGS="--zstd-min-level -5" (adaptive level)
#
# BROKER_ARGS adds flags to every shardlog broker (default none).
#
# Per run: acknowledged msgs/s, latency p50/p99/p99.9 (Iggy: per batch, as its bench reports
# it; shardlog: per frame of 1000 messages), the server's CPU per message (utime + stime
# from /proc/PID/stat over the produce run), bytes on disk per message, consume msgs/s.
set -euo pipefail
cd "$(dirname "$0")/.."

IGGY_SERVER=${1:?usage: perf/vs-iggy.sh IGGY_SERVER IGGY_BENCH}
IGGY_BENCH=${2:?usage: perf/vs-iggy.sh IGGY_SERVER IGGY_BENCH}
IGGY_SERVER=$(realpath "$IGGY_SERVER")
IGGY_BENCH=$(realpath "$IGGY_BENCH")
SHARDLOG=${SHARDLOG:-target/release/shardlog}
PERF=${PERF:-target/release/shardlog-perf}
CPUS=${CPUS:-0-1}
ROUNDS=${ROUNDS:-2}
BATCHES=${BATCHES:-1500}
DUR=${DUR:-8s}
DIR=${DIR:-$PWD/target/vs-iggy}
IGGY_BENCH_FLAGS=${IGGY_BENCH_FLAGS:-}
IGGY_SERVER_ENV=${IGGY_SERVER_ENV-IGGY_SYSTEM_PARTITION_ENFORCE_FSYNC=true IGGY_SYSTEM_PARTITION_MESSAGES_REQUIRED_TO_SAVE=1}
SHARDS=${SHARDS:-2}
BROKER_ARGS=${BROKER_ARGS:-}
ALT_ARGS=${ALT_ARGS:-}
FRAMED=127.0.0.1:19454
HTTP=127.0.0.1:19452
IGGY_TCP=127.0.0.1:18090
TCK=$(getconf CLK_TCK)
mkdir -p "$DIR"

# shellcheck source=perf/lib.sh
source perf/lib.sh
wait_port() { for _ in $(seq 300); do (echo > "/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

row() { # row NAME MSGS_PER_SEC P50 P99 P999 TICKS MSGS BYTES CONSUME_MSGS_PER_SEC
  python3 - "$@" "$TCK" <<'PY'
import sys
name, rate, p50, p99, p999, ticks, msgs, disk, consume, tck = sys.argv[1:]
us = int(ticks) / int(tck) * 1e6 / max(1, int(msgs))
print(f"| {name:9} | {float(rate):>10,.0f} | {float(p50):6.2f} | {float(p99):6.2f} | {float(p999):6.2f} "
      f"| {us:5.2f} | {int(disk) / max(1, int(msgs)):7.1f} | {float(consume):>10,.0f} |")
PY
}

iggy_run() {
  rm -rf "$DIR/iggy"
  mkdir -p "$DIR/iggy"
  (cd "$DIR/iggy" && IGGY_SYSTEM_PATH="$DIR/iggy/data" IGGY_TCP_ADDRESS=$IGGY_TCP \
    IGGY_HTTP_ENABLED=false IGGY_QUIC_ENABLED=false IGGY_WEBSOCKET_ENABLED=false \
    IGGY_ROOT_USERNAME=iggy IGGY_ROOT_PASSWORD=iggy IGGY_SYSTEM_SHARDING_CPU_ALLOCATION=$SHARDS \
    env $IGGY_SERVER_ENV taskset -c "$CPUS" "$IGGY_SERVER" > server.log 2>&1) &
  pid=$!
  wait_port $IGGY_TCP || { echo "iggy-server did not start"; tail "$DIR/iggy/server.log"; exit 1; }
  sleep 1
  local spid c0 c1 out p
  spid=$(pgrep -f "^$IGGY_SERVER" | head -1)
  c0=$(ticks "$spid")
  taskset -c "$CPUS" "$IGGY_BENCH" -m 1024 -P 1000 -b "$BATCHES" $IGGY_BENCH_FLAGS pinned-producer \
    --producers 2 --streams 2 tcp --server-address $IGGY_TCP > "$DIR/iggy/produce.txt" 2>&1
  c1=$(ticks "$spid")
  taskset -c "$CPUS" "$IGGY_BENCH" -m 1024 -P 1000 -b "$BATCHES" pinned-consumer \
    --consumers 2 --streams 2 tcp --server-address $IGGY_TCP > "$DIR/iggy/consume.txt" 2>&1 || true
  local disk
  disk=$(du -sb "$DIR/iggy/data" | cut -f1)
  kill -TERM "$spid" 2>/dev/null || true
  stop
  p=$(python3 - "$DIR/iggy/produce.txt" "$DIR/iggy/consume.txt" <<'PY'
import re, sys
def parse(path, kind):
    text = re.sub(r"\x1b\[[0-9;]*m", "", open(path).read())
    m = re.search(kind + r" Results: Total throughput: [\d.]+ MB/s, (\d+) messages/s.*?p50 latency: ([\d.]+) ms.*?p99 latency: ([\d.]+) ms, p999 latency: ([\d.]+) ms", text)
    return m.groups() if m else ("0", "0", "0", "0")
rate, p50, p99, p999 = parse(sys.argv[1], "Producers")
crate = parse(sys.argv[2], "Consumers")[0]
print(rate, p50, p99, p999, crate)
PY
)
  read -r rate p50 p99 p999 crate <<< "$p"
  row iggy "$rate" "$p50" "$p99" "$p999" $((c1 - c0)) $((2 * BATCHES * 1000)) "$disk" "$crate"
}

shardlog_run() { # shardlog_run NAME "BROKER FLAGS" [HARNESS FLAGS...]
  local name=$1 extra=$2 c0 c1 msgs bytes
  shift 2
  rm -rf "$DIR/shardlog"
  mkdir -p "$DIR/shardlog"
  "$SHARDLOG" --data-dir "$DIR/shardlog/data" --shards "$SHARDS" --cpus "${CPUS/-/,}" \
    --framed-listen $FRAMED --http-listen $HTTP --min-free-space 0 \
    --log warn,shardlog::broker=info $BROKER_ARGS $extra > "$DIR/shardlog/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do grep -q "shardlog ready" "$DIR/shardlog/broker.log" 2>/dev/null && break; sleep 0.1; done
  c0=$(ticks "$pid")
  taskset -c "$CPUS" "$PERF" produce --framed $FRAMED --topic vs --duration "$DUR" --warmup 1s \
    --connections 2 --in-flight 1 --messages-per-frame 1000 --message-size 1024 \
    --quiet --json "$@" > "$DIR/shardlog/produce.json"
  c1=$(ticks "$pid")
  msgs=$(metric shardlog_messages_in)
  bytes=$(metric shardlog_chunk_bytes_written)
  taskset -c "$CPUS" "$PERF" consume --framed $FRAMED --topic vs --consumers 2 --start earliest \
    --until-empty --max-wait-ms 0 --quiet --json > "$DIR/shardlog/consume.json"
  stop
  local p
  p=$(python3 - "$DIR/shardlog/produce.json" "$DIR/shardlog/consume.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = json.load(open(sys.argv[2]))
print(d["msgs_per_sec"], d.get("p50_us", 0) / 1000, d["p99_us"] / 1000, d.get("p999_us", 0) / 1000,
      c.get("msgs_per_sec", 0))
PY
)
  read -r rate p50 p99 p999 crate <<< "$p"
  # CPU per message over every message the broker took in (warm-up included, as its ticks are).
  row "$name" "$rate" "$p50" "$p99" "$p999" $((c1 - c0)) "$msgs" "$bytes" "$crate"
}

echo "# $SHARDS shards; server and client on CPUs $CPUS; broker flags: ${BROKER_ARGS:-none}; shardlog~: ${ALT_ARGS:-not run}"
echo "# iggy: $("$IGGY_SERVER" --version 2>/dev/null | head -1 || echo '?')"
echo "| run | acked msgs/s | p50 ms | p99 ms | p99.9 ms | server µs CPU/msg | disk B/msg | consume msgs/s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for _ in $(seq "$ROUNDS"); do
  iggy_run
  shardlog_run shardlog ""
  shardlog_run shardlog+ "" --producer-compress 1
  if [ -n "$ALT_ARGS" ]; then shardlog_run shardlog~ "$ALT_ARGS"; fi
done
