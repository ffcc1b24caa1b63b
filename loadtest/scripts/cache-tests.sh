#!/usr/bin/env bash
# HTTP caching conformance: runs a checkout of the http-tests/cache-tests
# suite (the suite behind cache-tests.fyi; clone its public repository and
# run `npm install` in it) against a freshly built node with default
# flags, and prints the pass, required-failure and optional-failure counts
# and the ids of the failing tests, then the same counts for the published
# results the checkout ships (results/*.json), counted the same way.
#
#   loadtest/scripts/cache-tests.sh SUITE_DIR [NODE_FLAG...]
#
# NODE_FLAGs are added to the node's command line (e.g. -stale-if-error 0).
# Environment:
#   EDGEPUSH_BIN=PATH  use this binary instead of building one
#   KEEP=1             keep the work dir (results.json, logs)
#   CLI_TIMEOUT=1200   seconds the suite's client may run
#
# The suite's test server (the origin) and the node listen on free
# 127.0.0.1 ports; the server is made to listen on 127.0.0.1 by a preload
# written here. Both are stopped by PID on exit; every wait is bounded.
# Not part of `make test`: it needs Node.js and the suite's checkout.
set -euo pipefail
cd "$(dirname "$0")/../.."

suite=${1:?usage: $0 SUITE_DIR [NODE_FLAG...]}
shift
suite=$(cd "$suite" && pwd)
[[ -f $suite/test-engine/cli.mjs && -f $suite/tests/index.mjs ]] || { echo "$suite: not a cache-tests checkout" >&2; exit 2; }
[[ -d $suite/node_modules ]] || { echo "$suite: run 'npm install' there first" >&2; exit 2; }
command -v node >/dev/null || { echo "node (Node.js) not found" >&2; exit 2; }

work=$(mktemp -d /tmp/cache-tests.XXXXXX)
# shellcheck source=procs.sh
source loadtest/scripts/procs.sh # the working directory is the repository root
log() { printf '%s cache-tests: %s\n' "$(date +%T)" "$*" >&2; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_started
  if [[ ${KEEP:-0} == 1 ]]; then log "work dir kept: $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

# free_port: a 127.0.0.1 port nothing listens on now (bounded tries),
# below the usual ephemeral range (32768 and up), which connections of
# other programs may take meanwhile.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$(( 20000 + RANDOM % 12000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port found" >&2
  return 1
}

# wait_listening PID PORT: until 127.0.0.1:PORT accepts, while PID lives.
wait_listening() {
  for _ in $(seq 100); do
    alive "$1" || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

if [[ -n ${EDGEPUSH_BIN:-} ]]; then cp "$EDGEPUSH_BIN" "$work/edgepush"; else go build -o "$work/edgepush" ./cmd/edgepush; fi

# The suite's server listens on a bare port (all interfaces): bind it to
# 127.0.0.1 instead.
cat >"$work/loopback.cjs" <<'EOF'
const net = require('net')
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const bare = typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))
  if (bare && (args.length === 1 || typeof args[1] === 'function')) args.splice(1, 0, '127.0.0.1')
  return listen.apply(this, args)
}
EOF

# Counts the results of one run, and of the published ones, as
# cache-tests.fyi does: pass (required and optimal tests passed), required
# failures, optional failures (optimal tests failed).
cat >"$work/summary.mjs" <<'EOF'
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [suite, resultsFile] = process.argv.slice(2)
const load = (p) => import(pathToFileURL(path.join(suite, p)).href)
const tests = (await load('tests/index.mjs')).default
const { determineTestResult, resultTypes } = await load('test-engine/lib/results.mjs')
const typeOf = new Map(Object.entries(resultTypes).map(([name, t]) => [t[2], name]))

function count (results) {
  const ids = {}
  for (const s of tests) {
    for (const t of s.tests) {
      const type = typeOf.get(determineTestResult(tests, t.id, results)[2])
      ;(ids[type] ||= []).push(t.id)
    }
  }
  const n = (type) => (ids[type] || []).length
  return { ids, pass: n('pass'), fail: n('fail'), optional: n('optional_fail'), n }
}

const own = count(JSON.parse(fs.readFileSync(resultsFile, 'utf8')))
console.log(`edgepush: ${own.pass} passed, ${own.fail} required failures, ${own.optional} optional failures` +
  ` (checks: ${own.n('yes')} yes, ${own.n('no')} no; ${own.n('setup_fail')} setup failures,` +
  ` ${own.n('dependency_fail')} dependency failures, ${own.n('untested')} untested)`)
for (const [type, label] of [['fail', 'required failures'], ['optional_fail', 'optional failures'],
  ['setup_fail', 'setup failures'], ['dependency_fail', 'dependency failures'], ['no', 'checks answered no']]) {
  if (own.ids[type]) console.log(`${label}: ${own.ids[type].join(' ')}`)
}
const published = (await load('results/index.mjs')).default
console.log('\npublished results in this checkout, counted alike (pass / required failures / optional failures):')
for (const impl of published) {
  if (impl.type === 'browser') continue
  const r = count(JSON.parse(fs.readFileSync(path.join(suite, 'results', impl.file), 'utf8')))
  console.log(`  ${impl.name} ${impl.version}: ${r.pass} / ${r.fail} / ${r.optional}`)
}
EOF

# start_listening WHAT LOG LAUNCH: runs LAUNCH PORT on a free port (it
# starts a process in the background and sets launched), and waits until
# the process listens there; on other ports if one was taken between
# free_port and its listen, up to three times. Sets port and pid.
start_listening() {
  local what=$1 logf=$2 launch=$3
  for _ in 1 2 3; do
    port=$(free_port)
    "$launch" "$port"
    pid=$launched
    started+=("$pid")
    wait_listening "$pid" "$port" && return 0
    stop_pids "$pid"
  done
  log "$what did not start:"
  cat "$logf" >&2
  exit 1
}

launch_server() {
  log "suite server on 127.0.0.1:$1"
  (cd "$suite" && exec env npm_config_protocol=http npm_config_port="$1" npm_config_pidfile="$work/server.pid" \
    node --require "$work/loopback.cjs" test-engine/server/server.mjs) >"$work/server.log" 2>&1 &
  launched=$!
}

node_flags=("$@")
launch_node() {
  local control_port
  control_port=$(free_port)
  log "edgepush on 127.0.0.1:$1 (control :$control_port), flags: ${node_flags[*]:-(defaults)}"
  "$work/edgepush" -listen "127.0.0.1:$1" -control "127.0.0.1:$control_port" \
    -origin "http://127.0.0.1:$origin_port" "${node_flags[@]}" >"$work/edgepush.log" 2>&1 &
  launched=$!
}

start_listening "the suite's server" "$work/server.log" launch_server
origin_port=$port server_pid=$pid
start_listening edgepush "$work/edgepush.log" launch_node
node_port=$port node_pid=$pid

log "running the suite (about a minute)"
(cd "$suite" && exec env npm_config_base="http://127.0.0.1:$node_port" npm_config_id= npm_package_config_id= \
  timeout "${CLI_TIMEOUT:-1200}" node --no-warnings test-engine/cli.mjs) >"$work/results.json" 2>"$work/cli.log" ||
  { log "the suite's client failed:"; tail -20 "$work/cli.log" >&2; exit 1; }
stop_pids "$node_pid" "$server_pid"

node "$work/summary.mjs" "$suite" "$work/results.json"
