#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark of outpost-server (issue 3): N agents (default 10,000) each on its own keep-alive
# mTLS connection heartbeating every 15 s (target: p99 < 50 ms), then lease acquire + complete
# cycles (target: >= 2,000/s), with the server's CPU beside every figure and the floor (a
# naive SQLite writer, one fsync per operation) measured in the same run on the same disk.
#
#   bench_server.sh [--agents N] [--interval S] [--duration S] [--workers W] [--tasks M]
#                   [--cycle-time S] [--cycles-alone]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
server=${OUTPOST_SERVER:-$src/build/server/outpost-server}
load=${BENCH_SERVER_LOAD:-$src/build/bench/server/bench-server-load}
agents=10000 interval=15
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --agents) agents=$2; shift ;;
    --interval) interval=$2; shift ;;
    --cycles-alone) args+=("$1") ;;
    --duration|--workers|--tasks|--cycle-time) args+=("$1" "$2"); shift ;;
    -h|--help) sed -n '3,10p' "$0"; exit 0 ;;
    *) echo "bench_server: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
args+=(--agents "$agents" --interval "$interval")
T=$(mktemp -d /tmp/outpost-bench-server.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
admin=$("$server" init --data-dir "$T/d" --listen "127.0.0.1:$port" 2>/dev/null)
"$server" serve --data-dir "$T/d" --access-log off --heartbeat-interval "${interval}s" 2>"$T/server.log" &
pid=$!
for _ in $(seq 100); do
  curl -sf --cacert "$T/d/ca.crt" "https://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.05
done
token=$("$server" token create --uses "$agents" --data-dir "$T/d" 2>/dev/null)
echo "outpost-server $("$server" --version | cut -d' ' -f2), $(nproc) cores, $(uname -r); $(date -u +%FT%TZ)"
"$load" --port "$port" --ca "$T/d/ca.crt" --token "$token" --admin "$admin" --server-pid "$pid" \
  --floor-dir "$T" "${args[@]}"
"$server" status --data-dir "$T/d" | sed -n '/^database/p'
"$server" status --json --data-dir "$T/d" | python3 -c 'import json,sys; d=json.load(sys.stdin)["database"]; print("database thread: %(run_seconds)ss running jobs, %(commit_seconds)ss committing, %(idle_seconds)ss idle; slowest commit %(commit_ms_max)sms" % d)'
grep -E "WARN|ERROR" "$T/server.log" | head -5 || true
