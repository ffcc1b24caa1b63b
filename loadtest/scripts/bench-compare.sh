#!/usr/bin/env bash
# Pushpin and edgepush side by side, same box, same run: the same load-tool
# scenarios against a fresh Pushpin and a fresh edgepush, one after the
# other, then a markdown table of medians with ratios edgepush/Pushpin
# written into BENCHMARKS.md between
#   <!-- bench-compare:begin --> and <!-- bench-compare:end -->.
#
#   loadtest/scripts/bench-compare.sh            # CONNS=5000 RUNS=3
#   QUICK=1 loadtest/scripts/bench-compare.sh    # smoke: 300 conns, 1 run, 5 msgs
#
# Environment:
#   CONNS=5000        subscriber connections per scenario
#   RUNS=3            runs of every scenario against every system
#   MSGS=20 RATE=10   messages per fan-out scenario, publishes per second
#   WARMUP=100        connections opened and closed before each measured set
#                     (the same for both systems)
#   LOCAL_ADDRS=1     spread the client's source addresses over 127.0.0.1…K
#                     (needed beyond ~10k connections; the same for both)
#   SCENARIOS="stream ws setup ws-setup origin-down"
#   SYSTEMS="pushpin edgepush"
#   OUT=BENCHMARKS.md file whose marked block is replaced ("" or WRITE=0:
#                     print the table only)
#   RESULTS=FILE      where the JSON lines go (default: a temp file, printed)
#   QUICK=1           smoke mode (CONNS=300 RUNS=1 MSGS=5, no BENCHMARKS.md)
#   PLOTS=1           draw each run's delivery latency by percentile (SVG) and
#                     keep, for every system and scenario of PLOT_SCENARIOS,
#                     the plot of the run with the median p99, as
#                     PLOT_DIR/SYSTEM-SCENARIO.svg; with the table, a markdown
#                     table of them (side by side) goes into the block
#   PLOT_SCENARIOS="stream ws"
#   PLOT_DIR=docs/bench  (relative to the repository; with WRITE=0 the
#                     default is /tmp/bench-compare-plots)
#   EDGEPUSH_BIN, LT_BIN  use these binaries instead of building them
#   CDNBENCH=PATH     optional: an independent load client (cdnbench, kept
#                     outside this repository, built by whoever runs this;
#                     nothing here needs it). When set, every scenario of
#                     CDNBENCH_SCENARIOS also runs with it, on a fresh
#                     instance right after the load tool's run, as
#                     scenario NAME-cdnbench: a target holds when it holds
#                     with both clients. Its server CPU is not sampled.
#   CDNBENCH_SCENARIOS="stream ws"  (fan-out scenarios only)
#   KEEP=1            keep the work dir (logs, configs)
#
# Scenarios (each one on a fresh instance of the system):
#   stream       CONNS HTTP-stream subscribers, MSGS messages at RATE/s
#   ws           CONNS WebSocket subscribers (WebSocket-over-HTTP to the
#                origin), MSGS messages at RATE/s
#   setup        CONNS new HTTP-stream connections, one publish: the rate
#                at which the proxy opens connections (Pushpin asks the
#                origin for each one, edgepush answers from its cache)
#   ws-setup     CONNS new WebSocket sessions, one publish, against the
#                origin's uncacheable OPEN answer (/ws?cache=no): the rate
#                at which the proxy opens sessions when each one costs an
#                origin round trip (WebSocket-over-HTTP), and the RSS per
#                session held
#   origin-down  the same with the origin stopped after the warm-up
#
# Everything listens on 127.0.0.1: origin :18181, Pushpin :18799 (publish
# :18761, ZMQ :18760/:18762/:18763), edgepush :18899 (control :18861).
# Every process started here is stopped by PID on exit; every wait is
# bounded. Pushpin (Debian package "pushpin") is installed with apt-get if
# it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  CONNS=${CONNS:-300} RUNS=${RUNS:-1} MSGS=${MSGS:-5} WARMUP=${WARMUP:-10} WRITE=${WRITE:-0}
fi
CONNS=${CONNS:-5000}
RUNS=${RUNS:-3}
MSGS=${MSGS:-20}
RATE=${RATE:-10}
WARMUP=${WARMUP:-100}
SCENARIOS=${SCENARIOS:-stream ws setup ws-setup origin-down}
CDNBENCH=${CDNBENCH:-}
CDNBENCH_SCENARIOS=${CDNBENCH_SCENARIOS:-stream ws}
if [[ -n $CDNBENCH && ! -x $CDNBENCH ]]; then
  echo "CDNBENCH=$CDNBENCH is not an executable" >&2
  exit 2
fi
for name in $CDNBENCH_SCENARIOS; do
  [[ $name == stream || $name == ws ]] || { echo "CDNBENCH_SCENARIOS: $name is not a fan-out scenario (stream, ws)" >&2; exit 2; }
done
SYSTEMS=${SYSTEMS:-pushpin edgepush}
WRITE=${WRITE:-1}
OUT=${OUT-BENCHMARKS.md}
SETTLE=${SETTLE:-30s}
LOCAL_ADDRS=${LOCAL_ADDRS:-1}
LT_TIMEOUT=${LT_TIMEOUT:-300} # seconds, one load-test process
PLOTS=${PLOTS:-1}
PLOT_SCENARIOS=${PLOT_SCENARIOS:-stream ws}
if [[ -z ${PLOT_DIR:-} ]]; then
  PLOT_DIR=docs/bench
  [[ $WRITE == 1 && -n $OUT ]] || PLOT_DIR=/tmp/bench-compare-plots
fi
(( CONNS >= 1 && CONNS <= 19000 )) || { echo "CONNS must be 1…19000 (one process holds ~19.9k sockets here)" >&2; exit 2; }
(( RUNS >= 1 && RUNS <= 10 )) || { echo "RUNS must be 1…10" >&2; exit 2; }

ORIGIN=127.0.0.1:18181
PP_HTTP=18799 PP_PUB=18761
EP_HTTP=18899 EP_CTRL=18861

work=$(mktemp -d /tmp/bench-compare.XXXXXX)
results=${RESULTS:-$work/results.jsonl}
: >"$results"
mkdir -p "$work/plots"

# shellcheck source=procs.sh
source loadtest/scripts/procs.sh # the working directory is the repository root
log() { printf '%s bench-compare: %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  (( ${#started[@]} )) && stop_pids "${started[@]}"
  if [[ -z ${RESULTS:-} && $rc -ne 0 ]]; then
    log "results so far: $work/results.jsonl (logs in $work)"
  elif [[ -z ${KEEP:-} ]]; then
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports must be free: a stale process would be measured instead.
for port in ${ORIGIN##*:} $PP_HTTP $PP_PUB $((PP_PUB-1)) $((PP_PUB+1)) $((PP_PUB+2)) $EP_HTTP $EP_CTRL; do
  if ss -Htln "sport = :$port" | grep -q .; then
    echo "port 127.0.0.1:$port is in use; stop what listens there first" >&2
    exit 1
  fi
done

# Pushpin from Debian if missing.
if [[ " $SYSTEMS " == *" pushpin "* ]] && ! command -v pushpin >/dev/null; then
  sudo=""
  (( $(id -u) == 0 )) || sudo=sudo
  log "installing pushpin (apt-get)"
  timeout 300 $sudo apt-get update -qq
  timeout 600 $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pushpin
fi

log "binaries"
build_bins "$work"
ep_version=$("$work/edgepush" -version 2>&1 | head -1 || echo edgepush)
log "open-file limit: soft $(ulimit -Sn), hard $(ulimit -Hn); raising soft to hard"
ulimit -n "$(ulimit -Hn)" || true
log "memory: $(free -m | awk '/^Mem:/ {print $7 " MB available of " $2}')"

# wait_http URL CODE_REGEX: poll until URL answers with a matching status
# (at most 10 s).
wait_http() {
  local code
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" 2>/dev/null || true)
    [[ $code =~ ^($2)$ ]] && return 0
    sleep 0.1
  done
  log "timed out waiting for $1 (last status ${code:-none})"
  return 1
}

origin_pid=""
start_origin() {
  "$work/lt" origin -listen "$ORIGIN" 2>>"$work/origin.log" &
  origin_pid=$!
  started+=("$origin_pid")
  wait_http "http://$ORIGIN/" 200
}
stop_origin() {
  [[ -n $origin_pid ]] && stop_pids "$origin_pid"
  origin_pid=""
}

# The system under test: sys_pids (all its processes, for -pid), sys_url
# (client base URL), sys_pub (publish URL).
sys_pids="" sys_url="" sys_pub="" sys_main=""

start_pushpin() { # $1: status regex a client request must get once up
  local dir=$work/pushpin.$RANDOM
  mkdir -p "$dir/run" "$dir/log"
  echo "* $ORIGIN,over_http" >"$dir/routes"
  # Debian's packaged config, with its own ports, run and log dirs, its
  # own zurl (the packaged internal.conf points at a system zurl), and the
  # delivery throttle (message_rate, default 2500 deliveries/s for the
  # node) and queue limit raised so that they are not what is measured,
  # as in shared/notes/PUSHPIN-OBSERVED.md §4. client_maxconn stays above
  # the open-file limit (condure panics when it is reached).
  cat >"$dir/pushpin.conf" <<EOF
[global]
include={libdir}/internal.conf
rundir=$dir/run
ipc_prefix=pushpin-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:$PP_HTTP
logdir=$dir/log
log_level=2
client_buffer_size=8192
client_maxconn=100000
condure_bin=condure
zurl_bin=zurl

[proxy]
routesfile=routes
debug=false
auto_cross_origin=false
accept_x_forwarded_protocol=false
set_x_forwarded_protocol=proto-only
sig_iss=pushpin
sig_key=changeme
updates_check=off
zurl_out_specs=ipc://{rundir}/{ipc_prefix}zurl-in
zurl_out_stream_specs=ipc://{rundir}/{ipc_prefix}zurl-in-stream
zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out

[handler]
push_in_spec=tcp://127.0.0.1:$((PP_PUB-1))
push_in_sub_specs=tcp://127.0.0.1:$((PP_PUB+1))
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=$PP_PUB
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{rundir}/{ipc_prefix}stats
command_spec=tcp://127.0.0.1:$((PP_PUB+2))
message_rate=1000000
message_hwm=1000000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
EOF
  pushpin --config "$dir/pushpin.conf" >"$dir/log/runner.out" 2>&1 &
  local runner=$!
  started+=("$runner")
  sys_main=$runner
  wait_http "http://127.0.0.1:$PP_PUB/" 200
  # Up means a held stream works end to end (condure, proxy, zurl and the
  # handler's accept path), not only that condure listens.
  wait_http "http://127.0.0.1:$PP_HTTP/stream?ch=ready" "$1"
  local kids
  kids=$(ps -o pid= --ppid "$runner" | tr -s ' \n' ' ')
  for k in $kids; do started+=("$k"); done
  sys_pids=$(echo "$runner $kids" | xargs | tr ' ' ',')
  sys_url=127.0.0.1:$PP_HTTP
  sys_pub=http://127.0.0.1:$PP_PUB/publish/
  [[ $(echo "$kids" | wc -w) -ge 4 ]] || { log "pushpin: expected 4 child processes, got: $kids"; return 1; }
}

start_edgepush() { # $1: status regex a client request must get once up
  "$work/edgepush" -listen "127.0.0.1:$EP_HTTP" -control "127.0.0.1:$EP_CTRL" -origin "http://$ORIGIN" \
    -log-level error 2>>"$work/edgepush.log" &
  sys_main=$!
  started+=("$sys_main")
  sys_pids=$sys_main
  sys_url=127.0.0.1:$EP_HTTP
  sys_pub=http://127.0.0.1:$EP_CTRL/publish/
  wait_http "http://127.0.0.1:$EP_CTRL/status" 200
  if [[ $1 == 200 ]]; then
    wait_http "http://$sys_url/stream?ch=ready" 200
  else # origin down: do not count failures against the node's origin breaker
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$EP_HTTP") 2>/dev/null && return 0; sleep 0.1; done
    return 1
  fi
}

stop_system() {
  local pids
  IFS=, read -ra pids <<<"$sys_pids"
  stop_pids "${pids[@]}"
  sys_pids="" sys_main=""
}

# Let the previous scenario's TIME_WAIT sockets drain a little (at most 30 s).
pause() {
  sleep 2
  for _ in $(seq 30); do
    (( $(ss -Htan state time-wait | wc -l) < 8000 )) && return 0
    sleep 1
  done
}

label_of() {
  local n
  n=$(printf "%'d" "$CONNS" 2>/dev/null || echo "$CONNS")
  case $1 in
    stream) echo "$n HTTP-stream subscribers, $MSGS msgs at $RATE/s" ;;
    ws) echo "$n WebSocket subscribers, $MSGS msgs at $RATE/s" ;;
    setup) echo "$n new HTTP-stream connections (origin up)" ;;
    ws-setup) echo "$n new WebSocket sessions (uncacheable OPEN: one origin round trip each)" ;;
    origin-down) echo "$n new HTTP-stream connections, origin down" ;;
    *-cdnbench) echo "$(label_of "${1%-cdnbench}") — cdnbench (independent client)" ;;
  esac
}

# scenario SYSTEM NAME RUN
scenario() {
  local system=$1 name=$2 run=$3 up=200
  # With the origin down, the proxy is started before the load process
  # serves the origin: Pushpin's readiness request may get 502 then.
  [[ $name == origin-down ]] && up='502|200'
  local -a flags=(-conns "$CONNS" -concurrency 64 -local-addrs "$LOCAL_ADDRS" -warmup "$WARMUP" -timeout "${LT_TIMEOUT}s" -json)
  case $name in
    stream) flags+=(-transport stream -msgs "$MSGS" -rate "$RATE" -settle "$SETTLE") ;;
    ws) flags+=(-transport ws -msgs "$MSGS" -rate "$RATE" -settle "$SETTLE") ;;
    setup) flags+=(-transport stream -msgs 1 -rate 1 -settle 10s) ;;
    ws-setup) flags+=(-transport ws -msgs 1 -rate 1 -settle 10s) ;;
    origin-down) flags+=(-transport stream -msgs 1 -rate 1 -settle 10s -origin-listen "$ORIGIN" -origin-down) ;;
    *) log "unknown scenario $name"; return 1 ;;
  esac
  if [[ $name == origin-down ]]; then
    stop_origin # the load process serves the origin and takes it down
  elif [[ -z $origin_pid ]]; then
    start_origin
  fi
  "start_$system" "$up"
  local url=http://$sys_url/stream?ch=bench
  [[ $name == ws ]] && url=ws://$sys_url/ws?ch=bench
  [[ $name == ws-setup ]] && url="ws://$sys_url/ws?ch=bench&cache=no"
  [[ $PLOTS == 1 && " $PLOT_SCENARIOS " == *" $name "* ]] && flags+=(-plot "$work/plots/$system-$name-$run.svg")
  log "$system: $name, run $run ($CONNS conns, pids $sys_pids)"
  local report rc=0
  report=$(timeout $((LT_TIMEOUT + 30)) "$work/lt" -url "$url" -publish "$sys_pub" -pid "$sys_pids" "${flags[@]}" \
    2>>"$work/lt.log") || rc=$?
  stop_system
  if [[ -z $report ]]; then
    log "$system $name run $run: no report (exit $rc; see $work/lt.log)"
    return 0
  fi
  printf '{"system":"%s","scenario":"%s","label":"%s","run":%d,"report":%s}\n' \
    "$system" "$name" "$(label_of "$name")" "$run" "$report" >>"$results"
  jq -r --arg s "$system" --arg n "$name" \
    '"  \($s) \($n): ok \(.conns_ok) failed \(.conns_failed) setups/s \(.setups_per_s|floor) p50 \(.latency_p50_ms) p99 \(.latency_p99_ms) lost \(.lost) KB/conn \(.kb_per_conn)"' \
    <<<"$report" >&2 || true
  pause
}

# scenario_cdnbench SYSTEM NAME RUN: the fan-out scenario NAME (stream or
# ws) with the independent client, on a fresh instance; its JSON line is
# turned into the load tool's report fields the table uses.
scenario_cdnbench() {
  local system=$1 name=$2 run=$3
  [[ -z $origin_pid ]] && start_origin
  "start_$system" 200
  local url=http://$sys_url/stream?ch=bench
  local -a flags=(--conns "$CONNS" --msgs "$MSGS" --rate "$RATE" --concurrency 64 --settle "$SETTLE"
    --timeout "${LT_TIMEOUT}s" --channel bench --publish "$sys_pub" --pid "$sys_pids")
  # Its --local-addrs K means 127.0.0.2…K: the same number of addresses.
  (( LOCAL_ADDRS > 1 )) && flags+=(--local-addrs $((LOCAL_ADDRS + 1)))
  if [[ $name == ws ]]; then
    url=http://$sys_url/ws?ch=bench
    flags+=(--ws)
  else # one connection first, so that a caching proxy has the answer (the load tool's warm-up does the same)
    curl -s -o /dev/null --max-time 1 "$url" || true
  fi
  log "$system: $name with cdnbench, run $run ($CONNS conns, pids $sys_pids)"
  local out rc=0
  out=$(timeout $((LT_TIMEOUT + 30)) "$CDNBENCH" --url "$url" "${flags[@]}" 2>>"$work/cdnbench.log") || rc=$?
  stop_system
  local report
  report=$(jq -c --arg tr "$name" '{transport: $tr, client: "cdnbench", conns_requested: .conns, conns_ok, conns_failed,
      msgs_requested: .msgs, msgs_published: .msgs, deliveries_expected: .expected, deliveries_received: .deliveries,
      lost, duplicated: .dups, latency_p50_ms, latency_p99_ms, latency_max_ms, setup_p50_ms, setup_p99_ms,
      setup_max_ms, setups_per_s: .setup_rate_per_s, kb_per_conn: .rss_per_conn_kb, rss_base_mb: .server_rss_base_mb,
      rss_loaded_mb: .server_rss_mb, raw: .}' <<<"$out" 2>/dev/null) || report=""
  if [[ -z $report ]]; then
    log "$system $name-cdnbench run $run: no report (exit $rc; see $work/cdnbench.log)"
    pause
    return 0
  fi
  printf '{"system":"%s","scenario":"%s","label":"%s","run":%d,"report":%s}\n' \
    "$system" "$name-cdnbench" "$(label_of "$name-cdnbench")" "$run" "$report" >>"$results"
  jq -r --arg s "$system" --arg n "$name" \
    '"  \($s) \($n) (cdnbench): ok \(.conns_ok) failed \(.conns_failed) setups/s \(.setups_per_s|floor) p50 \(.latency_p50_ms) p99 \(.latency_p99_ms) lost \(.lost) KB/conn \(.kb_per_conn)"' \
    <<<"$report" >&2 || true
  pause
}

started_at=$(date -u +%FT%TZ)
read -ra systems <<<"$SYSTEMS"
for run in $(seq "$RUNS"); do
  # Alternate which system goes first, so neither always gets the
  # quieter (or busier) half of the run.
  order=("${systems[@]}")
  if (( run % 2 == 0 && ${#systems[@]} == 2 )); then order=("${systems[1]}" "${systems[0]}"); fi
  for system in "${order[@]}"; do
    for name in $SCENARIOS; do
      scenario "$system" "$name" "$run"
      if [[ -n $CDNBENCH && " $CDNBENCH_SCENARIOS " == *" $name "* ]]; then
        scenario_cdnbench "$system" "$name" "$run"
      fi
    done
    stop_origin
  done
done

table=$("$work/lt" compare -base pushpin -vs edgepush "$results")

# The plots of the median-p99 runs, and a markdown table showing them
# side by side (paths relative to OUT's folder when it is written).
plots=""
if [[ $PLOTS == 1 ]]; then
  mkdir -p "$PLOT_DIR"
  link_base=$PLOT_DIR
  [[ $WRITE == 1 && -n $OUT ]] && link_base=$(realpath -m --relative-to="$(dirname "$OUT")" "$PLOT_DIR")
  header="| scenario |" rule="|---|"
  for system in "${systems[@]}"; do header+=" $system |" rule+="---|"; done
  rows=""
  for name in $PLOT_SCENARIOS; do
    [[ " $SCENARIOS " == *" $name "* ]] || continue
    row="| $(label_of "$name") |"
    for system in "${systems[@]}"; do
      run=$(jq -rs --arg s "$system" --arg n "$name" \
        '[.[] | select(.system == $s and .scenario == $n)] | sort_by(.report.latency_p99_ms)
         | if length == 0 then "" else .[(length - 1) / 2 | floor].run end' "$results")
      if [[ -n $run && -f $work/plots/$system-$name-$run.svg ]]; then
        cp "$work/plots/$system-$name-$run.svg" "$PLOT_DIR/$system-$name.svg"
        row+=" ![$system, $name, run $run]($link_base/$system-$name.svg) |"
      else
        row+=" — |"
      fi
    done
    rows+="$row"$'\n'
  done
  plots="Delivery latency by percentile: for each system and scenario, the run with the median p99."$'\n\n'"$header"$'\n'"$rule"$'\n'"$rows"
  log "plots: $PLOT_DIR"
fi
block=$(cat <<EOF
<!-- bench-compare:begin -->
Generated by \`make bench-compare\` (\`CONNS=$CONNS RUNS=$RUNS MSGS=$MSGS RATE=$RATE WARMUP=$WARMUP LOCAL_ADDRS=$LOCAL_ADDRS\`${CDNBENCH:+, with cdnbench for $CDNBENCH_SCENARIOS}),
$started_at, $(pushpin --version 2>/dev/null | head -1 || echo "pushpin ?") vs $ep_version
(tree $(git -C "$repo" describe --always --dirty 2>/dev/null || echo "?")${EDGEPUSH_BIN:+, binary $EDGEPUSH_BIN}); $(nproc) cores, client on the same cores.
Each scenario on a fresh instance, systems alternating; median of the runs in
bold, every run in brackets; ratio = edgepush median / Pushpin median.

$table
${plots:+
$plots}<!-- bench-compare:end -->
EOF
)
echo "$block"
if [[ -z ${RESULTS:-} ]]; then
  cp "$results" /tmp/bench-compare-last.jsonl && log "results: /tmp/bench-compare-last.jsonl"
fi
if [[ $WRITE == 1 && -n $OUT ]]; then
  if grep -q '<!-- bench-compare:begin -->' "$OUT" && grep -q '<!-- bench-compare:end -->' "$OUT"; then
    BLOCK=$block awk '
      /<!-- bench-compare:begin -->/ { print ENVIRON["BLOCK"]; skip = 1; next }
      /<!-- bench-compare:end -->/ { skip = 0; next }
      !skip { print }' "$OUT" >"$work/out.md"
    cat "$work/out.md" >"$OUT"
  else
    printf '\n%s\n' "$block" >>"$OUT"
  fi
  log "table written to $OUT"
fi
