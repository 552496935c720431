#!/bin/bash
# Sourced by the shell harnesses: logging with elapsed time, and daemons
# started in their own session and stopped by the PID they recorded, under
# $BASE (pids/NAME, log/NAME.out). Never a kill by name.
# shellcheck disable=SC2034   # PROC_* are set by the sourcing scripts

PROC_T0=${PROC_T0:-$(date +%s.%N)}   # the harness's start (proc_log's zero)
PROC_LOG_DIGITS=${PROC_LOG_DIGITS:-2} # decimals of the elapsed seconds

proc_elapsed() { awk -v s="$PROC_T0" -v e="$(date +%s.%N)" -v d="$PROC_LOG_DIGITS" 'BEGIN{printf "%.*f", d, e-s}'; }
proc_log() { printf "[%6ss] %s\n" "$(proc_elapsed)" "$*" >&2; }
proc_die() { proc_log "FATAL: $*"; exit 1; }

# proc_spawn NAME [ENV=V...] CMD... : own session (setsid: the PID leads a
# process group its workers share), output appended to $BASE/log/NAME.out,
# PID in $BASE/pids/NAME.
proc_spawn() {
  local name=$1; shift
  setsid env "$@" >> "$BASE/log/$name.out" 2>&1 < /dev/null &
  echo $! > "$BASE/pids/$name"
}

proc_pid() { cat "$BASE/pids/$1" 2>/dev/null; }
# alive = exists and is not a zombie (PID 1 may reap orphans lazily).
proc_pid_alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }
proc_alive() { local p; p=$(proc_pid "$1") && [ -n "$p" ] && proc_pid_alive "$p"; }

# proc_stop [-t SECONDS] NAME... : SIGTERM to each, wait until all are gone
# (at most SECONDS, default 20), then SIGKILL each one's process group
# (what is left of forked workers too).
proc_stop() {
  local secs=20 n pid i any pids=()
  if [ "${1:-}" = -t ]; then secs=$2; shift 2; fi
  for n in "$@"; do
    pid=$(proc_pid "$n") || continue
    rm -f "$BASE/pids/$n"
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null
    pids+=("$pid")
  done
  for ((i = 0; i < secs * 10; i++)); do
    any=0
    for pid in "${pids[@]}"; do proc_pid_alive "$pid" && any=1; done
    [ $any = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
  return 0
}

proc_wait() {   # proc_wait SECONDS DESCRIPTION CMD... : poll every 0.1 s
  local secs=$1 what=$2 i; shift 2
  for ((i = 0; i < secs * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  proc_log "timeout after ${secs}s waiting for $what"; return 1
}

# proc_free_base N: a base port with N free ports above it.
proc_free_base() { /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/../python/free_ports.py" "$1"; }
