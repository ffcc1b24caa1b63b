#!/usr/bin/env bash
# HTTP-stream fan-out on a fresh node per run: N subscribers, 20 messages at
# 10/s, delivery latency and losses, node RSS per connection. Usage:
#   loadtest/scripts/fanout.sh [CONNS] [RUNS] [LOCAL_ADDRS]
# Starts its own origin and node on 127.0.0.1 (ports 18081, 18999/18561)
# and stops them (by PID). Prints one JSON report per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${1:-5000}
runs=${2:-3}
addrs=${3:-1}
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
go build -o "$bin/edgepush" ./cmd/edgepush
go build -o "$bin/lt" ./cmd/edgepush-loadtest
"$bin/lt" origin -listen 127.0.0.1:18081 2>/dev/null &
for run in $(seq "$runs"); do
  "$bin/edgepush" -listen 127.0.0.1:18999 -control 127.0.0.1:18561 -origin http://127.0.0.1:18081 -log-level error &
  node_pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18561/ && break; sleep 0.1; done
  report=$("$bin/lt" -url 'http://127.0.0.1:18999/stream?ch=bench' -publish http://127.0.0.1:18561/publish/ \
    -conns "$conns" -msgs 20 -rate 10 -concurrency 64 -settle 30s -local-addrs "$addrs" -json -pid "$node_pid")
  echo "{\"scenario\":\"stream fan-out $conns, run $run\",\"report\":$report}"
  kill "$node_pid"; wait "$node_pid" 2>/dev/null || true
  sleep 3
done
