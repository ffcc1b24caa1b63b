# procs.sh: helpers shared by the load scripts (sourced): building the
# binaries and process bookkeeping.
# Every PID a script starts goes into `started`; stop_pids stops by PID
# only, and forget drops stopped PIDs so that cleanup never signals a PID
# the system has since given to someone else.
declare -a started=()

alive() { kill -0 "$1" 2>/dev/null; }

# forget PID...: drop stopped processes from started.
forget() {
  local p q keep=()
  for p in "${started[@]}"; do
    for q in "$@"; do [[ $p == "$q" ]] && continue 2; done
    keep+=("$p")
  done
  started=("${keep[@]}")
}

# stop_pids PID...: SIGTERM, wait up to STOP_WAIT seconds (default 10),
# then SIGKILL what is left.
stop_pids() {
  local p left
  for p in "$@"; do alive "$p" && kill "$p" 2>/dev/null || true; done
  for _ in $(seq $(( ${STOP_WAIT:-10} * 10 ))); do
    left=0
    for p in "$@"; do alive "$p" && left=1; done
    (( left )) || break
    sleep 0.1
  done
  for p in "$@"; do
    if alive "$p"; then kill -9 "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
  done
  forget "$@"
}

# stop_started: stop every process started and not stopped yet.
stop_started() {
  (( ${#started[@]} )) && stop_pids "${started[@]}"
  return 0
}

# build_bins DIR: DIR/edgepush and DIR/lt (the load tool), copied from
# $EDGEPUSH_BIN / $LT_BIN when set, else built from this repository.
build_bins() {
  if [[ -n ${EDGEPUSH_BIN:-} ]]; then cp "$EDGEPUSH_BIN" "$1/edgepush"; else go build -o "$1/edgepush" ./cmd/edgepush; fi
  if [[ -n ${LT_BIN:-} ]]; then cp "$LT_BIN" "$1/lt"; else go build -o "$1/lt" ./cmd/edgepush-loadtest; fi
}
