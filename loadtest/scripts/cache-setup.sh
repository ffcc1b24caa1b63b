#!/usr/bin/env bash
# Connection setup through the origin vs from the edge cache vs with the
# origin down, on one box, one after the other. Usage:
#   loadtest/scripts/cache-setup.sh [CONNS] [RUNS]
# Starts its own origin and nodes on 127.0.0.1 (ports 18081, 18999/18561)
# and stops them (by PID) when done. Prints one JSON report per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${1:-5000}
runs=${2:-3}
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
go build -o "$bin/edgepush" ./cmd/edgepush
go build -o "$bin/lt" ./cmd/edgepush-loadtest

start_origin() { "$bin/lt" origin -listen 127.0.0.1:18081 & origin_pid=$!; sleep 0.3; }
start_node() {
  "$bin/edgepush" -listen 127.0.0.1:18999 -control 127.0.0.1:18561 -origin http://127.0.0.1:18081 \
    -log-level error "$@" & node_pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18561/ && return; sleep 0.1; done
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
load() { # scenario name, then loadtest flags
  local name=$1; shift
  local report
  report=$("$bin/lt" -url 'http://127.0.0.1:18999/stream?ch=bench' -publish http://127.0.0.1:18561/publish/ \
    -conns "$conns" -msgs 1 -rate 1 -settle 5s -concurrency 64 -json -pid "$node_pid" "$@")
  echo "{\"scenario\":\"$name\",\"report\":$report}"
}

for run in $(seq "$runs"); do
  start_origin
  start_node -cache-off
  load "origin (cache off), run $run"
  stop "$node_pid"

  start_node
  curl -s -o /dev/null --max-time 1 'http://127.0.0.1:18999/stream?ch=bench' || true  # warm the cache
  load "cache hit, run $run"
  stop "$origin_pid"
  load "origin down, from cache, run $run"
  stop "$node_pid"
  sleep 2 # let TIME_WAIT sockets of 127.0.0.1 settle a little
done
