#!/usr/bin/env bash
# Two edgepush binaries A/B on the same box, interleaved: for every round,
# both binaries (the order alternating between rounds) each on a fresh
# node, with the load tool and, when CDNBENCH is set, with the independent
# client too. Prints one line per run and the medians of the delivery p99.
#
#   loadtest/scripts/ab.sh BASE_BIN NEW_BIN [ROUNDS]     # ROUNDS=3
#
# Environment:
#   CONNS=19000 LOCAL_ADDRS=4 MSGS=20 RATE=10 SETTLE=60s
#   TRANSPORT=stream   or ws
#   LT_BIN            the load tool (default: built from this repository)
#   CDNBENCH=PATH     optional: an independent load client (cdnbench, built
#                     outside this repository; nothing here needs it)
#   RESULTS=FILE      where the JSON lines go (default: a temp file, kept)
#
# Everything listens on 127.0.0.1: origin :18381, node :18499 (control
# :18461). Every process started here is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
(( $# >= 2 )) || { echo "usage: $0 BASE_BIN NEW_BIN [ROUNDS]" >&2; exit 2; }
bins=("$1" "$2")
rounds=${3:-3}
CONNS=${CONNS:-19000} LOCAL_ADDRS=${LOCAL_ADDRS:-4} MSGS=${MSGS:-20} RATE=${RATE:-10} SETTLE=${SETTLE:-60s}
TRANSPORT=${TRANSPORT:-stream}
for b in "${bins[@]}" ${CDNBENCH:+"$CDNBENCH"}; do [[ -x $b ]] || { echo "$b is not an executable" >&2; exit 2; }; done
[[ $TRANSPORT == stream || $TRANSPORT == ws ]] || { echo "TRANSPORT must be stream or ws" >&2; exit 2; }
(( rounds >= 1 && rounds <= 50 )) || { echo "ROUNDS must be 1…50" >&2; exit 2; }

ORIGIN=127.0.0.1:18381 HTTP=127.0.0.1:18499 CTRL=127.0.0.1:18461
work=$(mktemp -d /tmp/ab.XXXXXX)
results=${RESULTS:-$work/results.jsonl}
# shellcheck source=procs.sh
source loadtest/scripts/procs.sh
trap 'stop_started' EXIT
trap 'exit 130' INT TERM
if [[ -n ${LT_BIN:-} ]]; then cp "$LT_BIN" "$work/lt"; else go build -o "$work/lt" ./cmd/edgepush-loadtest; fi
ulimit -n "$(ulimit -Hn)" || true

"$work/lt" origin -listen "$ORIGIN" 2>>"$work/origin.log" &
started+=("$!")

# run BIN CLIENT: one run on a fresh node; appends a JSON line, prints a line.
run() {
  local bin=$1 client=$2 node out p99 ok
  "$bin" -listen "$HTTP" -control "$CTRL" -origin "http://$ORIGIN" -log-level error 2>>"$work/node.log" &
  node=$!
  started+=("$node")
  for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "http://$CTRL/status" && break; sleep 0.1; done
  local path=/stream?ch=bench
  [[ $TRANSPORT == ws ]] && path=/ws?ch=bench
  curl -s -o /dev/null --max-time 1 "http://$HTTP/stream?ch=bench" || true # a caching node has the answer
  if [[ $client == lt ]]; then
    local scheme=http
    [[ $TRANSPORT == ws ]] && scheme=ws
    out=$(timeout 600 "$work/lt" -url "$scheme://$HTTP$path" -transport "$TRANSPORT" -publish "http://$CTRL/publish/" \
      -conns "$CONNS" -msgs "$MSGS" -rate "$RATE" -settle "$SETTLE" -local-addrs "$LOCAL_ADDRS" -json -pid "$node" \
      2>>"$work/lt.log") || true
  else
    local -a flags=()
    (( LOCAL_ADDRS > 1 )) && flags+=(--local-addrs $((LOCAL_ADDRS + 1)))
    [[ $TRANSPORT == ws ]] && flags+=(--ws)
    out=$(timeout 600 "$CDNBENCH" --url "http://$HTTP$path" --channel bench --publish "http://$CTRL/publish/" \
      --conns "$CONNS" --msgs "$MSGS" --rate "$RATE" --concurrency 64 --settle "$SETTLE" --pid "$node" "${flags[@]}" \
      2>>"$work/cdnbench.log") || true
  fi
  stop_pids "$node"
  p99=$(jq -r '.latency_p99_ms // empty' <<<"$out" 2>/dev/null || true)
  ok=$(jq -r '.conns_ok // empty' <<<"$out" 2>/dev/null || true)
  printf '{"bin":"%s","client":"%s","report":%s}\n' "$bin" "$client" "${out:-null}" >>"$results"
  printf '%s %s %s: p99 %s ms, %s conns, load %s\n' "$(date +%T)" "$bin" "$client" "${p99:-?}" "${ok:-?}" \
    "$(cut -d' ' -f1 /proc/loadavg)"
  sleep 2
}

clients=(lt)
[[ -n ${CDNBENCH:-} ]] && clients+=(cdnbench)
for r in $(seq "$rounds"); do
  order=("${bins[@]}")
  (( r % 2 == 0 )) && order=("${bins[1]}" "${bins[0]}")
  for c in "${clients[@]}"; do
    for b in "${order[@]}"; do run "$b" "$c"; done
  done
done

echo "medians of the delivery p99 (ms), every run in brackets; results: $results"
jq -rs 'group_by([.client, .bin])[] | [.[].report.latency_p99_ms | select(. != null)] as $v
  | ($v | sort) as $s | ($s | length) as $n
  | (if $n == 0 then "—" elif $n % 2 == 1 then $s[($n - 1) / 2] else ($s[$n / 2 - 1] + $s[$n / 2]) / 2 end
      | if type == "number" then . * 10 | round / 10 else . end) as $med
  | "\(.[0].client) \(.[0].bin): \($med) (\($v | map(tostring) | join(" / ")))"' "$results"
