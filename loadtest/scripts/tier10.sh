#!/usr/bin/env bash
# A regional tier on one box: 10 edgepush nodes, each with its own load
# process holding 2,000 HTTP streams, publishes at node 1 at 10/s; mid-run
# one node is killed and another is cut off from the tier (a real network
# partition of its tier traffic, its clients still connected), then healed.
# Usage (as root, for the partition; without nft or root the cut is
# skipped and the report says so):
#   loadtest/scripts/tier10.sh
#   NODES=10 CONNS=2000 MSGS=300 RATE=10 KILL_AT=50 CUT_AT=100 HEAL_AT=160 PROFILE=lan loadtest/scripts/tier10.sh
#
# It reports, per node: subscribers, deliveries, lost, p50/p99; for the
# tier: origin fetches of the subscribed key (at warm-up, and for one new
# connection per node after a purge-and-publish), the bytes and packets
# that crossed the tier per publish (nft counters on the tier's ports:
# operations to the control listeners, memberlist gossip), and the
# publishing node's CPU time per publish. Every client sends Host: $HOST
# (api.example), as clients of real edges behind one DNS name do: the
# cache key, and so the key's origin shield, is the same on every node.
#
# The partition: node CUT (default 9) runs as user nobody; an nft table
# drops, while the cut lasts, every packet nobody's sockets send to the
# tier's ports and every packet sent to node CUT's tier ports (its
# control listener, which carries operations, and its memberlist port);
# its client port is left alone, so its subscribers stay connected. The
# script's own requests to node CUT's control API run as another user
# (uid 65533), which the rules let through.
#
# Ports on 127.0.0.1: origin :19081; node i: clients :190ii, control
# :191ii, memberlist :192ii (ii = 01…NODES). Every process started here is
# stopped by PID on exit; the nft table is removed; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."

NODES=${NODES:-10}
export CONNS=${CONNS:-2000}
MSGS=${MSGS:-300}
RATE=${RATE:-10}
KILL=${KILL:-$NODES}       # the node killed mid-run (0: none)
CUT=${CUT:-$((NODES - 1))} # the node partitioned mid-run (0: none)
KILL_AT=${KILL_AT:-50}     # publishes made when KILL is killed
CUT_AT=${CUT_AT:-100}      # publishes made when CUT is cut off
HEAL_AT=${HEAL_AT:-160}    # publishes made when the cut heals
PROFILE=${PROFILE:-lan}    # -cluster-profile of every node (lan, wan, local)
SETTLE=${SETTLE:-30s}
EXTRA_FLAGS=${EXTRA_FLAGS:-} # more flags for every node
HOST=${HOST:-api.example}    # the Host every client sends, as to real edges behind one name
(( NODES >= 3 && NODES <= 20 )) || { echo "NODES must be 3…20" >&2; exit 2; }
(( KILL == 0 || KILL != CUT )) || { echo "KILL and CUT must differ" >&2; exit 2; }
(( KILL != 1 && CUT != 1 )) || { echo "node 1 publishes: it cannot be killed or cut" >&2; exit 2; }
(( KILL_AT < MSGS && CUT_AT < HEAL_AT && HEAL_AT < MSGS )) || { echo "want KILL_AT < MSGS and CUT_AT < HEAL_AT < MSGS" >&2; exit 2; }
for t in jq curl; do command -v $t >/dev/null || { echo "$t is required" >&2; exit 2; }; done
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && (( CONNS + 200 > hard )); then
  echo "CONNS=$CONNS does not fit the open-file hard limit of $hard per process" >&2
  exit 2
fi

nft_ok=0
if [[ $(id -u) == 0 ]] && command -v nft >/dev/null && command -v setpriv >/dev/null; then nft_ok=1; fi
if (( CUT > 0 && ! nft_ok )); then
  echo "no partition: it needs root, nft (apt-get install nftables) and setpriv; running without it" >&2
  CUT=0
fi

work=$(mktemp -d /tmp/tier10.XXXXXX)
chmod 755 "$work" # node CUT runs as nobody and must reach its binary
# shellcheck source=procs.sh
source loadtest/scripts/procs.sh # the working directory is the repository root
STOP_WAIT=15
table=edgepush_tier10_$$
log() { printf '%s tier10: %s\n' "$(date +%T)" "$*" >&2; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  (( nft_ok )) && nft delete table inet "$table" 2>/dev/null || true
  (( ${#started[@]} )) && stop_pids "${started[@]}"
  if [[ $rc -ne 0 || -n ${KEEP:-} ]]; then log "logs in $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nn() { printf '%02d' "$1"; }
port() { echo "$1$(nn "$2")"; } # port PREFIX I: 190 3 → 19003
for i in $(seq "$NODES"); do
  for p in $(port 190 "$i") $(port 191 "$i") $(port 192 "$i"); do
    if ss -Htln "sport = :$p" | grep -q .; then echo "port $p is in use" >&2; exit 1; fi
  done
done

build_bins "$work"
chmod 755 "$work/edgepush"
ulimit -n "$hard"

# status I [JQ]: node I's /status through jq (as uid 65533 for the cut node,
# whose control port the partition closes to everyone else).
status() {
  local as=()
  (( $1 == CUT )) && as=(setpriv --reuid=65533 --regid=65533 --clear-groups)
  "${as[@]}" curl -s --max-time 2 "http://127.0.0.1:$(port 191 "$1")/status" | jq -r "${2:-.}" 2>/dev/null
}
# origin_fetches: the origin requests every alive node made, summed.
origin_fetches() {
  local i n sum=0
  for i in $(seq "$NODES"); do
    alive "${node_pids[i-1]}" || continue
    local as=()
    (( i == CUT )) && as=(setpriv --reuid=65533 --regid=65533 --clear-groups)
    n=$("${as[@]}" curl -s --max-time 2 "http://127.0.0.1:$(port 191 "$i")/metrics" |
      awk '/^edgepush_origin_requests_total/ {s += $NF} END {printf "%d", s}')
    sum=$((sum + ${n:-0}))
  done
  echo "$sum"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$work/lt" origin -listen 127.0.0.1:19081 2>"$work/origin.log" &
started+=($!)
for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 http://127.0.0.1:19081/ && break; sleep 0.1; done

# Counters: bytes and packets to the tier's ports, whoever sends them
# (only nodes do: the script's own requests go to node 1's publish API,
# counted apart, and to /status and /metrics, which it makes only before
# and after the measured window).
if (( nft_ok )); then
  nft add table inet "$table"
  nft add chain inet "$table" out '{ type filter hook output priority 0; }'
  nft add counter inet "$table" ops
  nft add counter inet "$table" gossip
  nft add rule inet "$table" out tcp dport "$(port 191 1)-$(port 191 "$NODES")" tcp dport != "$(port 191 1)" counter name ops
  nft add rule inet "$table" out meta l4proto '{ tcp, udp }' th dport "$(port 192 1)-$(port 192 "$NODES")" counter name gossip
fi
counter() { nft -j list counter inet "$table" "$1" | jq -r ".nftables[] | .counter? | select(.) | \"\(.bytes) \(.packets)\""; }

key=base64:$(head -c16 /dev/urandom | base64)
declare -a node_pids=() lt_pids=()
for i in $(seq "$NODES"); do
  join=()
  (( i > 1 )) && join=(-join "127.0.0.1:$(port 192 1)")
  as=()
  (( i == CUT )) && as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  # shellcheck disable=SC2086 # EXTRA_FLAGS is a list of flags
  (ulimit -n "$hard" && exec "${as[@]}" "$work/edgepush" -listen "127.0.0.1:$(port 190 "$i")" \
    -control "127.0.0.1:$(port 191 "$i")" -origin http://127.0.0.1:19081 \
    -cluster-bind "127.0.0.1:$(port 192 "$i")" -node-name "edge-$(nn "$i")" -cluster-key "$key" \
    -cluster-profile "$PROFILE" -region "r$(( (i - 1) % 3 + 1 ))" "${join[@]}" -log-level warn $EXTRA_FLAGS) \
    2>>"$work/node$i.log" &
  node_pids+=($!)
  started+=($!)
done
members=0
for _ in $(seq 150); do
  members=$(status 1 '[.tier.members[]? | select(.state == "alive")] | length' || echo 0)
  (( ${members:-0} == NODES )) && break
  sleep 0.2
done
(( ${members:-0} == NODES )) || { log "only $members of $NODES members alive after 30 s"; exit 1; }
log "tier of $NODES up ($PROFILE profile); $NODES × $CONNS subscribers, $MSGS msgs at $RATE/s published at node 1;" \
  "kill node $KILL after $KILL_AT publishes; cut node $CUT from $CUT_AT to $HEAL_AT"

fetch0=$(origin_fetches)
common=(-host "$HOST" -transport stream -conns "$CONNS" -concurrency 32 -msgs "$MSGS" -rate "$RATE" -settle "$SETTLE" -timeout 900s -json)
for i in $(seq 2 "$NODES"); do
  timeout 960 "$work/lt" -url "http://127.0.0.1:$(port 190 "$i")/stream?ch=tier" -external-publish -publish-delay 300s \
    -pid "${node_pids[i-1]}" "${common[@]}" >"$work/lt$i.json" 2>>"$work/lt$i.log" &
  lt_pids+=($!)
  started+=($!)
done
for i in $(seq 2 "$NODES"); do
  held=0
  for _ in $(seq 240); do
    held=$(status "$i" .held_connections || echo 0)
    (( ${held:-0} >= CONNS )) && break
    alive "${lt_pids[i-2]}" || break
    sleep 0.5
  done
  (( ${held:-0} >= CONNS )) || log "node $i holds only $held connections"
done
warm_fetches=$(( $(origin_fetches) - fetch0 ))
log "subscribers of nodes 2…$NODES connected; origin fetches of the key so far: $warm_fetches"

read -r ops_b0 ops_p0 <<<"$( (( nft_ok )) && counter ops || echo '0 0')"
read -r gos_b0 gos_p0 <<<"$( (( nft_ok )) && counter gossip || echo '0 0')"
cpu0=$(cpu_ticks "${node_pids[0]}")
cpu0b=$(cpu_ticks "${node_pids[1]}")
timeout 960 "$work/lt" -url "http://127.0.0.1:$(port 190 1)/stream?ch=tier" -publish "http://127.0.0.1:$(port 191 1)/publish/" \
  -pid "${node_pids[0]}" "${common[@]}" >"$work/lt1.json" 2>>"$work/lt1.log" &
lt1=$!
started+=($lt1)

# The events, at publish counts seen at node 1 (polled; bounded).
killed=0 cut=0 healed=0 published=0
for _ in $(seq $(( (MSGS / RATE + 600) * 2 ))); do
  alive "$lt1" || break
  published=$(status 1 .published_items || echo "$published")
  published=${published:-0}
  if (( KILL > 0 && !killed && published >= KILL_AT )); then
    kill -9 "${node_pids[KILL-1]}"
    killed=1
    log "node $KILL killed at publish $published"
  fi
  if (( CUT > 0 && !cut && published >= CUT_AT )); then
    nft add chain inet "$table" cut
    nft add rule inet "$table" cut meta skuid 65534 meta l4proto '{ tcp, udp }' th dport "$(port 191 1)-$(port 192 "$NODES")" drop
    nft add rule inet "$table" cut meta skuid != 65533 meta l4proto '{ tcp, udp }' th dport "{ $(port 191 "$CUT"), $(port 192 "$CUT") }" drop
    nft insert rule inet "$table" out jump cut
    cut=1
    log "node $CUT cut off at publish $published"
  fi
  if (( cut && !healed && published >= HEAL_AT )); then
    nft flush chain inet "$table" cut
    healed=1
    log "node $CUT healed at publish $published"
  fi
  (( published >= MSGS )) && break
  sleep 0.5
done
cpu1=$(cpu_ticks "${node_pids[0]}")
cpu1b=$(cpu_ticks "${node_pids[1]}")
read -r ops_b1 ops_p1 <<<"$( (( nft_ok )) && counter ops || echo '0 0')"
read -r gos_b1 gos_p1 <<<"$( (( nft_ok )) && counter gossip || echo '0 0')"
wait "$lt1" || true
for p in "${lt_pids[@]}"; do wait "$p" || true; done
forget "$lt1" "${lt_pids[@]}"

# One purge-and-publish, then one new connection per alive node: how
# many times the origin is asked for the key by the whole tier.
f0=$(origin_fetches)
curl -s --max-time 5 -X POST "http://127.0.0.1:$(port 191 1)/purge-publish/" -d '{"purge":{"keys":["tier"]},
  "items":[{"channel":"tier","formats":{"http-stream":{"content":"after purge\n"}}}]}' >/dev/null
sleep 1 # the purge reaches every member
for i in $(seq "$NODES"); do
  alive "${node_pids[i-1]}" || continue
  curl -s -o /dev/null --max-time 1 -H "Host: $HOST" "http://127.0.0.1:$(port 190 "$i")/stream?ch=tier" || true
done
purge_fetches=$(( $(origin_fetches) - f0 ))

for i in $(seq "$NODES"); do
  if [[ -s $work/lt$i.json ]]; then
    role=""
    (( i == 1 )) && role=" (publisher)"
    (( i == KILL )) && role=" (killed)"
    (( i == CUT )) && role=" (partitioned)"
    printf '{"scenario":"tier10 node %d%s","report":%s}\n' "$i" "$role" "$(tail -1 "$work/lt$i.json")"
  else
    log "node $i: no report (see $work/lt$i.log)"
  fi
done
for i in $(seq "$NODES"); do
  alive "${node_pids[i-1]}" || continue
  status "$i" '{node: .tier.node, held_connections, published_items, ops_received: .tier.ops_received, region, ops_dropped: .tier.ops_dropped, members_failed: .tier.members_failed, rejoins: .tier.rejoins} | tojson' >&2 || true
done
hz=$(getconf CLK_TCK)
pubs=$published
(( pubs > 0 )) || pubs=1
jq -n -r --argjson pubs "$pubs" --argjson nodes "$NODES" --argjson warm "$warm_fetches" --argjson purge "$purge_fetches" \
  --argjson opsb $((ops_b1 - ops_b0)) --argjson opsp $((ops_p1 - ops_p0)) \
  --argjson gosb $((gos_b1 - gos_b0)) --argjson gosp $((gos_p1 - gos_p0)) \
  --argjson cpu "$(( (cpu1 - cpu0) * 1000000 / hz ))" --argjson cpub "$(( (cpu1b - cpu0b) * 1000000 / hz ))" --argjson nft "$nft_ok" '
  "tier of \($nodes): \($pubs) publishes; origin fetches of the key: \($warm) while \($nodes - 1) nodes connected their subscribers, \($purge) for one new connection per alive node after a purge-and-publish",
  (if $nft == 1 then "tier traffic per publish: operations \($opsb / $pubs | floor) B in \($opsp / $pubs * 10 | floor / 10) packets; memberlist \($gosb / $pubs | floor) B in \($gosp / $pubs * 10 | floor / 10) packets (during the publishing window, gossip included)" else "tier traffic: not measured (no nft)" end),
  "CPU per publish (user+system, whole process, its own \(env.CONNS) subscribers included): publishing node \($cpu / $pubs | floor) µs, node 2 \($cpub / $pubs | floor) µs"' >&2
# Per node: what its subscribers saw.
for i in $(seq "$NODES"); do
  [[ -s $work/lt$i.json ]] && tail -1 "$work/lt$i.json" | jq -c --arg i "$i" --argjson kill "$KILL" --argjson cut "$CUT" '{node: ($i | tonumber),
    role: (if ($i | tonumber) == 1 then "publisher" elif ($i | tonumber) == $kill then "killed" elif ($i | tonumber) == $cut then "partitioned" else "" end),
    conns_ok, conns_dropped, received: .deliveries_received, expected: .deliveries_expected, lost, duplicated,
    p50_ms: .latency_p50_ms, p99_ms: .latency_p99_ms, max_ms: .latency_max_ms, kb_per_conn}' >&2
done
