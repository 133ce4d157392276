#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A tiny service manager for the end-to-end tests (systemd is not PID 1 here, decisions.md 20):
#   svc.sh run DIR -- CMD...   runs CMD, restarts it on SIGHUP (and when it dies), writes its
#                              pid to DIR/pid and the number of restarts to DIR/restarts
#   svc.sh restart DIR         asks the manager in DIR for a restart; waits for the new pid
# The restart command a change runs only signals the manager, so the service is never a child
# of the agent's worker (which would end it with the task), as with systemctl.
set -u
case "${1:-}" in
run)
  dir=$2
  shift 2
  [ "${1:-}" = -- ] && shift
  mkdir -p "$dir"
  echo $$ >"$dir/manager.pid"
  n=0 hup=0 child=
  echo 0 >"$dir/restarts"
  trap 'hup=1' HUP
  trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait; exit 0' TERM INT
  start() { "$@" & child=$!; echo "$child" >"$dir/pid.tmp"; mv "$dir/pid.tmp" "$dir/pid"; }
  start "$@"
  while :; do
    wait "$child"
    if [ "$hup" = 1 ]; then
      hup=0
      kill -TERM "$child" 2>/dev/null
      wait "$child" 2>/dev/null
    else
      sleep 0.2 # it died on its own: start it again
    fi
    n=$((n + 1))
    echo "$n" >"$dir/restarts"
    start "$@"
  done
  ;;
restart)
  dir=$2
  old=$(cat "$dir/pid")
  kill -HUP "$(cat "$dir/manager.pid")" || { echo "svc: no manager in $dir" >&2; exit 1; }
  for _ in $(seq 200); do
    new=$(cat "$dir/pid" 2>/dev/null)
    if [ -n "$new" ] && [ "$new" != "$old" ]; then echo "restarted: pid $old -> $new"; exit 0; fi
    sleep 0.05
  done
  echo "svc: the service did not restart within 10s" >&2
  exit 1
  ;;
*)
  echo "usage: svc.sh run DIR -- CMD... | svc.sh restart DIR" >&2
  exit 2
  ;;
esac
