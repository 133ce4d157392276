#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The run-loop benchmark (issue 15): real outpost-server and outpost-agent on this machine.
#   bench/agent/run.sh [BUILD_DIR] [TASKS] [IDLE_SECONDS]     (defaults: build 1000 300)
# (a) submit -> completed of a no-op task, one at a time: p50/p99 (server's own timestamps)
# (b) throughput at concurrency 8, beside the posix_spawn ceiling measured now (and the
#     fork rate of a process that loaded the plugin: the fork server's own cost per task)
# (c) the idle agent: RSS, PSS, CPU over IDLE_SECONDS, beside a C program that made one HTTPS
#     request with libcurl + OpenSSL and sleeps (and collectd / prometheus-node-exporter
#     where installed)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${1:-$root/build}" && pwd)
N=${2:-1000}
IDLE=${3:-300}
export OUTPOST_SOURCE_DIR=$root OUTPOST_BUILD_DIR=$B OUTPOST_SANITIZE=0
export OUTPOST_AGENT=$B/core/outpost-agent OUTPOST_WORKER=$B/core/outpost-worker
export OUTPOST_SERVER=$B/server/outpost-server OUTPOST_PLUGIN_DIR=$B/plugins
export OUTPOST_TEST_PLUGIN_DIR=$B/tests/plugins
. "$root/tests/lib.sh"
PY=/usr/bin/python3
t_srv_init
t_srv_start
. "$root/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create --uses 3 2>/dev/null)
ta_enroll a1 "$tok" "concurrency: 8"
sed -i 's/^  level: debug/  level: warn/' "$T/agents/a1/config.yaml"
ta_start a1

rss_pss() { # RSS and PSS of PIDs, in KiB
  local rss=0 pss=0 p r s
  for p in "$@"; do
    r=$(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    s=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    rss=$((rss + r)); pss=$((pss + s))
  done
  echo "$rss $pss"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

printf 'outpost agent benchmark (%d tasks, idle %ds)\n' "$N" "$IDLE"
read -r p50 p99 < <($PY "$root/bench/agent/driver.py" "$SRV_URL" "$SRV_CA" "$SRV_ADMIN_TOKEN" latency "$N")
floor=$("$B/bench/agent/bench_spawn_rate" "$B/bench/worker/bench_true" 1000)
# The same with two spawners at once, one a core: what spawning costs when both cores do it.
floor2=$({ "$B/bench/agent/bench_spawn_rate" "$B/bench/worker/bench_true" 1000 &
           "$B/bench/agent/bench_spawn_rate" "$B/bench/worker/bench_true" 1000 & wait; } |
         awk '{s += $1} END {printf "%.1f", s}')
printf '(a) submit -> completed, no-op task:  p50 %6.1f ms  p99 %6.1f ms   target p50 <= 10 ms\n' "$p50" "$p99"
tput=$($PY "$root/bench/agent/driver.py" "$SRV_URL" "$SRV_CA" "$SRV_ADMIN_TOKEN" throughput "$N")
printf '(b) throughput, concurrency 8:        %6.1f tasks/s   ceiling (posix_spawn of a libc-only binary) %6.1f/s  = %.2fx   target >= 0.5x\n' \
  "$tput" "$floor" "$($PY -c "print($tput / $floor)")"
printf '    two spawners at once, one a core:  %6.1f/s in all  (the tasks/s are %.2fx that)\n' \
  "$floor2" "$($PY -c "print($tput / $floor2)")"
fork1=$("$B/bench/agent/bench_fork_rate" "$OUTPOST_TEST_PLUGIN_DIR/testkit.so" 1000)
printf '    fork + exit of a process with the plugin loaded (what the fork server pays a task): %6.1f/s\n' "$fork1"

# (c) idle
sed -i 's/^concurrency: 8/concurrency: 1/' "$T/agents/a1/config.yaml"
kill -TERM "$(ta_pid a1)"; ta_wait_exit a1
ta_start a1
task=$(ta_submit testkit.run '{"action": "echo"}')
ta_wait_task "$task" succeeded
apid=$(ta_pid a1)
sleep 2
c0=$(cpu_ticks "$apid"); t0=$(date +%s.%N)
"$B/bench/agent/bench_curl_idle" "$SRV_URL/health" "$SRV_CA" $((IDLE + 5)) >"$T/curl_idle.out" &
cpid=$!
t_track "$cpid"
sleep "$IDLE"
c1=$(cpu_ticks "$apid"); t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
cpu=$($PY -c "print(100 * ($c1 - $c0) / $hz / ($t1 - $t0))")
read -r arss apss < <(rss_pss "$apid")
# Its workers: the spare workers and fork servers it started, and the spares they forked.
descendants() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done; }
workers=$(descendants "$apid")
read -r trss tpss < <(rss_pss "$apid" $workers)
read -r frss fpss < <(rss_pss "$cpid")
printf '(c) idle agent over %ds:  RSS %s MiB (%.2fx the floor, target <= 1.25x)  PSS %s MiB (target <= 8)  CPU %.3f%% (target <= 0.1%%)\n' \
  "$IDLE" "$(mib "$arss")" "$($PY -c "print($arss / $frss)")" "$(mib "$apss")" "$cpu"
printf '    floor: a C program after one HTTPS request with libcurl + OpenSSL: RSS %s MiB  PSS %s MiB\n' "$(mib "$frss")" "$(mib "$fpss")"
printf '    the agent with its %d worker process(es) (spare workers, fork servers): RSS %s MiB  PSS %s MiB\n' "$(echo $workers | wc -w)" "$(mib "$trss")" "$(mib "$tpss")"
for d in collectd prometheus-node-exporter; do
  p=$(pgrep -f "^[^ ]*$d( |$)" | head -1 || true)
  if [ -n "$p" ]; then
    read -r r s < <(rss_pss "$p")
    printf '    %s (running here): RSS %s MiB  PSS %s MiB\n' "$d" "$(mib "$r")" "$(mib "$s")"
  else
    printf '    %s: not running here\n' "$d"
  fi
done
kill -TERM "$(ta_pid a1)"; ta_wait_exit a1
t_srv_stop
