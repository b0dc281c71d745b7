#!/usr/bin/env bash
# Starts and stops the real broker again and again, in parallel loops, and counts hangs.
#
# Each start: a fresh data directory and free ports, the broker started, wait for its
# "shardlog ready" line, one produce and one read over REST (the read must return the message
# just produced), SIGTERM, and the process must exit with status 0. Every step has a deadline
# ($DEADLINE seconds); a step that misses it is a hang: the broker's threads' kernel stacks,
# system calls and wait channels are saved under $OUT, and it is killed.
#
#   perf/start-loop.sh                         # 1000 starts over 4 parallel loops
#   STARTS=200 LOOPS=2 SHARDS=4 perf/start-loop.sh
#   BROKER=target/debug/shardlog perf/start-loop.sh   # a given binary, not built here
#
# Prints one line per loop and a total; exits 1 if any start hung or failed. Also counts the
# starts in which the runtime's watchdog had to wake a shard whose ticker fell silent (their
# logs are kept under $OUT).
set -uo pipefail
cd "$(dirname "$0")/.."

STARTS=${STARTS:-1000}
LOOPS=${LOOPS:-4}
SHARDS=${SHARDS:-2}
DEADLINE=${DEADLINE:-30}
DIR=${DIR:-$PWD/target/start-loop}
OUT=${OUT:-$DIR/results}
if [[ -z ${BROKER:-} ]]; then
  cargo build --release -q -p shardlog
  BROKER=target/release/shardlog
fi
rm -rf "$DIR"
mkdir -p "$OUT"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# dump_stacks PID FILE: what every thread of the broker is doing: its state, wait channel,
# system call and kernel stack, its context switches sampled twice a second apart (a thread
# whose count moves is waking up, one whose count stands still sleeps for good), and the
# user-space stacks (gdb, when installed).
dump_stacks() {
  local pid=$1 file=$2 t
  ctx() { awk '/voluntary_ctxt_switches/ {printf "%s ", $2}' "$1/status" 2>/dev/null; }
  declare -A before
  for t in /proc/"$pid"/task/*; do before[$t]=$(ctx "$t"); done
  sleep 1
  {
    echo "# broker pid $pid"
    for t in /proc/"$pid"/task/*; do
      echo "## thread $(basename "$t") $(cat "$t/comm" 2>/dev/null)" \
        "state=$(awk '{print $3}' "$t/stat" 2>/dev/null)" \
        "wchan=$(cat "$t/wchan" 2>/dev/null)" "syscall=$(cut -d' ' -f1 "$t/syscall" 2>/dev/null)" \
        "ctxt_switches(voluntary involuntary)=${before[$t]:-?}-> $(ctx "$t")"
      cat "$t/stack" 2>/dev/null
    done
    echo "# io_uring instances (fdinfo: ring heads and tails)"
    for f in /proc/"$pid"/fd/*; do
      [[ $(readlink "$f") == *io_uring* ]] || continue
      echo "## fd $(basename "$f")"
      grep -E '^(SqHead|SqTail|CachedSqHead|CqHead|CqTail|CachedCqTail|SqThread)' \
        "/proc/$pid/fdinfo/$(basename "$f")" 2>/dev/null | tr '\n' ' '
      echo
    done
    # Last: attaching a debugger interrupts the threads' system calls, which can wake them.
    if command -v gdb >/dev/null; then
      echo "# user-space stacks"
      timeout 60 gdb -p "$pid" -batch -ex 'thread apply all bt 30' 2>&1 | grep -E '^(Thread|#)'
    fi
  } >"$file"
}

# gone PID: the process has exited (gone, or a zombie waiting to be reaped).
gone() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
  [[ -z $st || $st == Z ]]
}

# wait_for DEADLINE COMMAND...: runs COMMAND every 10 ms until it succeeds or DEADLINE passes.
wait_for() {
  local until=$((SECONDS + $1))
  shift
  while ! "$@"; do
    ((SECONDS < until)) || return 1
    sleep 0.01
  done
}

# one_start LOOP N: one start/produce/read/stop; prints "ok", "hang STEP" or "fail STEP".
one_start() {
  local loop=$1 n=$2 dir="$DIR/loop$1" http framed pid body msg="start-loop-$1-$2" status
  local fail tries
  # A port picked free can be taken by another process before the broker binds it: then the
  # broker says "cannot listen" and exits, and the start is tried again on other ports.
  for tries in 1 2 3; do
    rm -rf "$dir"
    mkdir -p "$dir"
    http=127.0.0.1:$(free_port)
    framed=127.0.0.1:$(free_port)
    RUST_LOG=warn,shardlog::broker=info "$BROKER" --data-dir "$dir/data" --shards "$SHARDS" \
      --http-listen "$http" --framed-listen "$framed" --min-free-space 0 \
      >"$dir/log" 2>&1 </dev/null &
    pid=$!
    fail=""
    if ! wait_for "$DEADLINE" grep -qs "shardlog ready" "$dir/log"; then
      kill -0 "$pid" 2>/dev/null && fail="hang ready" || fail="fail ready"
    fi
    if [[ $fail == "fail ready" ]] && grep -qs "cannot listen on" "$dir/log"; then
      wait "$pid" 2>/dev/null
      continue
    fi
    break
  done
  if [[ -z $fail ]]; then
    status=$(curl -sS -m "$DEADLINE" -o /dev/null -w '%{http_code}' -X POST \
      -H 'content-type: application/json' --data "\"$msg\"" "http://$http/v1/topic/loop/messages")
    case $status in 200) ;; 000) fail="hang produce" ;; *) fail="fail produce ($status)" ;; esac
  fi
  if [[ -z $fail ]]; then
    status=$(curl -sS -m "$DEADLINE" -o /dev/null -w '%{http_code}' -X PUT \
      "http://$http/v1/consumer/register?consumerId=c&group=g&onNewGroup=startFromEarliest&topic=loop")
    case $status in 200) ;; 000) fail="hang register" ;; *) fail="fail register ($status)" ;; esac
  fi
  if [[ -z $fail ]]; then
    status=$(curl -sS -m "$DEADLINE" -o "$dir/poll" -w '%{http_code}' -X POST \
      -H 'accept: application/json' \
      "http://$http/v1/consumer/poll?consumerId=c&maxWaitMs=5000")
    case $status in
      200) grep -q "$msg" "$dir/poll" || fail="fail read (message missing)" ;;
      000) fail="hang read" ;;
      *) fail="fail read ($status)" ;;
    esac
  fi
  if [[ -n $fail ]]; then
    [[ $fail == hang* ]] && dump_stacks "$pid" "$OUT/hang-loop$loop-start$n.txt"
    cp "$dir/log" "$OUT/log-loop$loop-start$n.txt"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "$fail"
    return
  fi
  kill -TERM "$pid"
  if ! wait_for "$DEADLINE" gone "$pid"; then
    dump_stacks "$pid" "$OUT/hang-loop$loop-start$n.txt"
    cp "$dir/log" "$OUT/log-loop$loop-start$n.txt"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "hang stop"
    return
  fi
  wait "$pid"
  status=$?
  if ((status != 0)); then
    cp "$dir/log" "$OUT/log-loop$loop-start$n.txt"
    echo "fail stop (exit $status)"
    return
  fi
  # The watchdog's wake-ups of a shard whose ticker fell silent (see src/rt/keep_awake.rs).
  local woken
  woken=$(grep -c "ticker was silent" "$dir/log")
  ((woken == 0)) || cp "$dir/log" "$OUT/log-loop$loop-start$n-woken.txt"
  echo "ok woken=$woken"
}

run_loop() {
  local loop=$1 starts=$2 n result begin
  for ((n = 1; n <= starts; n++)); do
    begin=$EPOCHREALTIME
    result=$(one_start "$loop" "$n")
    echo "$n $result $(awk "BEGIN {printf \"%.3f\", $EPOCHREALTIME - $begin}")" >>"$OUT/loop$loop.txt"
  done
}

per_loop=$(((STARTS + LOOPS - 1) / LOOPS))
echo "start-loop: $STARTS starts over $LOOPS loops of $per_loop, $SHARDS shards, $DEADLINE s per step, $BROKER"
began=$SECONDS
for ((l = 1; l <= LOOPS; l++)); do
  run_loop "$l" "$per_loop" &
done
wait
total=0 hangs=0 fails=0 woke=0
for ((l = 1; l <= LOOPS; l++)); do
  f="$OUT/loop$l.txt"
  t=$(wc -l <"$f")
  h=$(grep -c ' hang ' "$f")
  e=$(grep -c ' fail ' "$f")
  slowest=$(awk '{print $NF}' "$f" | sort -g | tail -1)
  w=$(grep ' ok ' "$f" | grep -c -v ' woken=0 ')
  echo "loop $l: $t starts, $h hangs, $e failures, $w woken by the watchdog, slowest start-to-stop ${slowest}s"
  total=$((total + t)) hangs=$((hangs + h)) fails=$((fails + e)) woke=$((woke + w))
done
echo "total: $total starts, $hangs hangs, $fails failures, $woke woken by the watchdog, in $((SECONDS - began)) s (details in $OUT)"
grep -h -E ' (hang|fail) ' "$OUT"/loop*.txt | head -20
((hangs == 0 && fails == 0))
