#!/usr/bin/env bash
# Runs a three-broker shardlog cluster on this machine with a local one-member etcd, for
# trying cluster mode out (docs/cluster.md). Everything lives under $DIR (default
# ./cluster-local); Ctrl-C stops it all.
#
#   deploy/cluster-local.sh            # builds target/release/shardlog if needed
#   SHARDLOG=path/to/shardlog DIR=/tmp/c deploy/cluster-local.sh
#
# Broker N (1..3) listens on framed 127.0.0.1:92N4 and HTTP 127.0.0.1:92N2 (9214/9212, ...);
# etcd on 127.0.0.1:23790. `curl -s 127.0.0.1:9212/v1/cluster` shows the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${DIR:-./cluster-local}"
SHARDLOG="${SHARDLOG:-target/release/shardlog}"
SHARDS="${SHARDS:-1}"
command -v etcd >/dev/null || { echo "etcd is missing (Debian: apt-get install etcd-server)" >&2; exit 1; }
if [ ! -x "$SHARDLOG" ]; then cargo build --release --bin shardlog; fi
mkdir -p "$DIR"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

etcd --name local --data-dir "$DIR/etcd" \
  --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster local=http://127.0.0.1:23800 --logger zap --log-level warn \
  >"$DIR/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:23790/health >/dev/null 2>&1 && break
  sleep 0.1
done

for n in 1 2 3; do
  "$SHARDLOG" --broker-id "$n" --etcd-endpoints http://127.0.0.1:23790 \
    --data-dir "$DIR/broker-$n" --shards "$SHARDS" --cpus none \
    --framed-listen "127.0.0.1:92${n}4" --http-listen "127.0.0.1:92${n}2" \
    >"$DIR/broker-$n.log" 2>&1 &
  pids+=($!)
done
for n in 1 2 3; do
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:92${n}2/status" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
curl -s http://127.0.0.1:9212/v1/cluster; echo
echo "cluster up: logs in $DIR; Ctrl-C stops it" >&2
wait
