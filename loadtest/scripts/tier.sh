#!/usr/bin/env bash
# A tier of edgepush nodes on one box, each holding its own load process's
# subscribers, with the messages published at node 1 only: every delivery
# on nodes 2… crossed the tier. Usage:
#   loadtest/scripts/tier.sh                 # 3 nodes × 15,000 HTTP streams, 20 msgs at 1/s
#   NODES=3 CONNS=15000 MSGS=20 RATE=1 RUNS=1 LOCAL_ADDRS=4 loadtest/scripts/tier.sh
#
# One process holds at most ~19.9k sockets here (open-file hard limit
# 20,000), so each node gets its own load process: load process i opens
# CONNS subscribers on node i (source addresses spread over 127.0.0.1 …
# 127.0.0.LOCAL_ADDRS). Processes 2… only listen (-external-publish);
# once their nodes hold all their connections, process 1 opens its own
# and publishes at node 1. Prints one JSON line per node and run, then a
# summary. Ports on 127.0.0.1: origin :19081, node i :1900i (clients),
# :1910i (control), :1920i (memberlist). Every process started here is
# stopped by PID on exit; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."

NODES=${NODES:-3}
CONNS=${CONNS:-15000}
MSGS=${MSGS:-20}
RATE=${RATE:-1}
RUNS=${RUNS:-1}
LOCAL_ADDRS=${LOCAL_ADDRS:-4}
SETTLE=${SETTLE:-30s}
(( NODES >= 2 && NODES <= 9 )) || { echo "NODES must be 2…9" >&2; exit 2; }
(( RUNS >= 1 && RUNS <= 10 )) || { echo "RUNS must be 1…10" >&2; exit 2; }
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && (( CONNS + 200 > hard )); then
  echo "CONNS=$CONNS does not fit the open-file hard limit of $hard per process" >&2
  exit 2
fi
avail_mb=$(free -m | awk '/^Mem:/ {print $7}')
need_mb=$(( NODES * CONNS * 40 / 1024 + 512 )) # generous: ~40 KB per connection, node and client
if (( avail_mb < need_mb )); then
  echo "only $avail_mb MB available, want $need_mb MB" >&2
  exit 1
fi

work=$(mktemp -d /tmp/tier.XXXXXX)
# shellcheck source=procs.sh
source loadtest/scripts/procs.sh # the working directory is the repository root
STOP_WAIT=15
log() { printf '%s tier: %s\n' "$(date +%T)" "$*" >&2; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  (( ${#started[@]} )) && stop_pids "${started[@]}"
  if [[ $rc -ne 0 || -n ${KEEP:-} ]]; then log "logs in $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for i in $(seq "$NODES"); do
  for port in 1900$i 1910$i 1920$i; do
    if ss -Htln "sport = :$port" | grep -q .; then echo "port $port is in use" >&2; exit 1; fi
  done
done

build_bins "$work"
ulimit -n "$hard"
log "memory: $avail_mb MB available; open files: soft $(ulimit -Sn), hard $hard"

wait_http() { # URL: until it answers 200, at most 10 s
  for _ in $(seq 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" 2>/dev/null || true) == 200 ]] && return 0
    sleep 0.1
  done
  log "timed out waiting for $1"
  return 1
}

"$work/lt" origin -listen 127.0.0.1:19081 2>"$work/origin.log" &
started+=($!)
wait_http http://127.0.0.1:19081/

key=base64:$(head -c16 /dev/urandom | base64)
for run in $(seq "$RUNS"); do
  declare -a node_pids=() lt_pids=()
  for i in $(seq "$NODES"); do
    join=()
    (( i > 1 )) && join=(-join 127.0.0.1:19201)
    # The soft open-file limit raised to the hard one (20,000 here) for
    # the node, explicitly, whatever the caller's shell had.
    (ulimit -n "$hard" && exec "$work/edgepush" -listen "127.0.0.1:1900$i" -control "127.0.0.1:1910$i" \
      -origin http://127.0.0.1:19081 -cluster-bind "127.0.0.1:1920$i" -node-name "edge-$i" \
      -cluster-key "$key" -cluster-local "${join[@]}" -log-level error) 2>>"$work/node$i.log" &
    node_pids+=($!)
    started+=($!)
  done
  for i in $(seq "$NODES"); do
    wait_http "http://127.0.0.1:1910$i/status"
    log "node $i pid ${node_pids[i-1]}: $(grep 'Max open files' "/proc/${node_pids[i-1]}/limits" | tr -s ' ')"
  done
  members=0
  for _ in $(seq 100); do
    members=$(curl -s --max-time 1 http://127.0.0.1:19101/status | jq '[.tier.members[]? | select(.state == "alive")] | length' 2>/dev/null || echo 0)
    (( members == NODES )) && break
    sleep 0.2
  done
  (( members == NODES )) || { log "only $members of $NODES members alive after 20 s"; exit 1; }
  log "run $run: tier of $NODES up; $NODES × $CONNS subscribers, $MSGS msgs at $RATE/s published at node 1"

  common=(-transport stream -conns "$CONNS" -concurrency 64 -local-addrs "$LOCAL_ADDRS" -msgs "$MSGS" -rate "$RATE"
    -settle "$SETTLE" -timeout 600s -json)
  for i in $(seq 2 "$NODES"); do
    timeout 660 "$work/lt" -url "http://127.0.0.1:1900$i/stream?ch=tier" -external-publish -publish-delay 120s \
      -pid "${node_pids[i-1]}" "${common[@]}" >"$work/lt$i.json" 2>>"$work/lt$i.log" &
    lt_pids+=($!)
    started+=($!)
  done
  # Publishing starts only once nodes 2… hold all their subscribers.
  for i in $(seq 2 "$NODES"); do
    held=0
    for _ in $(seq 240); do
      held=$(curl -s --max-time 2 "http://127.0.0.1:1910$i/status" | jq '.held_connections' 2>/dev/null || echo 0)
      (( held >= CONNS )) && break
      alive "${lt_pids[i-2]}" || break
      sleep 0.5
    done
    log "node $i holds $held connections"
  done
  timeout 660 "$work/lt" -url "http://127.0.0.1:19001/stream?ch=tier" -publish http://127.0.0.1:19101/publish/ \
    -pid "${node_pids[0]}" "${common[@]}" >"$work/lt1.json" 2>>"$work/lt1.log" || true
  for p in "${lt_pids[@]}"; do wait "$p" || true; done
  forget "${lt_pids[@]}"
  for i in $(seq "$NODES"); do
    if [[ -s $work/lt$i.json ]]; then
      printf '{"scenario":"tier %d x %d, node %d","run":%d,"report":%s}\n' "$NODES" "$CONNS" "$i" "$run" "$(tail -1 "$work/lt$i.json")"
    else
      log "node $i: no report (see $work/lt$i.log)"
    fi
  done
  for i in $(seq "$NODES"); do
    curl -s --max-time 2 "http://127.0.0.1:1910$i/status" | jq -c '{node: .tier.node, held_connections, published_items, ops_received: .tier.ops_received}' >&2 || true
  done
  # Summary: every node's figures and the worst.
  for i in $(seq "$NODES"); do tail -1 "$work/lt$i.json" 2>/dev/null; done | jq -s -r --arg run "$run" '
    "run \($run): conns ok \(map(.conns_ok) | add) failed \(map(.conns_failed) | add) dropped \(map(.conns_dropped) | add); " +
    "deliveries \(map(.deliveries_received) | add)/\(map(.deliveries_expected) | add), lost \(map(.lost) | add), dup \(map(.duplicated) | add); " +
    "p50 per node \(map(.latency_p50_ms)), p99 per node \(map(.latency_p99_ms)), worst p99 \(map(.latency_p99_ms) | max) ms, max \(map(.latency_max_ms) | max) ms; " +
    "RSS KB/conn \(map(.kb_per_conn)); setups/s \(map(.setups_per_s | floor))"' >&2
  stop_pids "${node_pids[@]}"
  if (( run < RUNS )); then sleep 20; fi # TIME_WAIT of the previous run
done
