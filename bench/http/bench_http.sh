#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark of the http plugin: 1,000 GETs of a small file from a local nginx in ONE http.batch
# task against a shell loop of curl and `curl --parallel --parallel-max C` at the same
# concurrency, all measured in this run. The task runs two ways: submitted to a running agent
# through outpost-server (submit -> completed by the server's clock: lease, the spare worker
# with the plugin loaded, transfers, the result stored durably), and cold through
# `outpost-agent plugin run` (agent start, worker and plugin load included). Targets
# (issue 6): <= 1.0x the time of curl --parallel, >= 10x faster than the loop.
#
#   bench_http.sh [--agent PATH] [--server PATH] [--plugins-dir DIR] [-n REQUESTS]
#                 [-c CONCURRENCY] [-r RUNS]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
agent=${OUTPOST_AGENT:-$src/build/core/outpost-agent}
server=${OUTPOST_SERVER:-$src/build/server/outpost-server}
plugins=${OUTPOST_PLUGIN_DIR:-$src/build/plugins}
n=1000 c=8 runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) agent=$2; shift ;;
    --server) server=$2; shift ;;
    --plugins-dir) plugins=$2; shift ;;
    -n) n=$2; shift ;;
    -c) c=$2; shift ;;
    -r) runs=$2; shift ;;
    -h|--help) sed -n '3,13p' "$0"; exit 0 ;;
    *) echo "bench_http: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
py=/usr/bin/python3
[ -x "$py" ] || py=python3
for tool in nginx curl "$agent" "$server"; do
  command -v "$tool" >/dev/null || { echo "bench_http: $tool not found" >&2; exit 2; }
done

T=$(mktemp -d /tmp/outpost-bench-http.XXXXXX)
nginx_pid= server_pid= agent_pid=
cleanup() {
  local p
  for p in $agent_pid $server_pid $nginx_pid; do
    kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT

# nginx, one worker, keep-alive without a request cap, a 612-byte file (its default page's size)
port=$("$py" -I -S -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$T/www"
head -c 612 /dev/zero | tr '\0' 'x' >"$T/www/index.html"
cat >"$T/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $T/nginx.pid;
error_log $T/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path $T/b; proxy_temp_path $T/p; fastcgi_temp_path $T/f;
  uwsgi_temp_path $T/u; scgi_temp_path $T/s;
  server { listen 127.0.0.1:$port; root $T/www; }
}
NGINX
nginx -c "$T/nginx.conf" -e "$T/error.log" &
nginx_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
url="http://127.0.0.1:$port/index.html"

# the inputs: a curl config with N URLs, an http.batch task with N requests
"$py" -I -S - "$url" "$n" "$c" "$T" <<'PY'
import json, sys
url, n, c, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(t + "/curl.cfg", "w") as f:
    for i in range(n):
        f.write('url = "%s?i=%d"\noutput = "/dev/null"\n' % (url, i))
json.dump({"type": "http.batch", "timeout": "5m",
           "params": {"concurrency": c, "requests": [{"url": "%s?i=%d" % (url, i)} for i in range(n)]}},
          open(t + "/task.json", "w"))
PY

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

ours() {
  local t0 t1
  t0=$(now)
  "$agent" plugin run --task "$T/task.json" --plugins-dir "$plugins" --workspace "$T/ws" >"$T/out.json" 2>"$T/err.txt"
  t1=$(now)
  "$py" -I -S -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["status"] == "succeeded" and r["result"]["succeeded"] == int(sys.argv[2]), r["error"]; print("%.4f" % r["result"]["duration"])' "$T/out.json" "$n" >>"$T/engine"
  rm -rf "$T/ws"
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}'
}
parallel() {
  local t0 t1
  t0=$(now)
  curl -s --parallel --parallel-max "$c" --config "$T/curl.cfg" 2>/dev/null
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}'
}
loop() {
  local t0 t1 i
  t0=$(now)
  for ((i = 0; i < n; i++)); do curl -s -o /dev/null "$url?i=$i"; done
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}'
}

# The same task submitted to a running agent: outpost-server and an agent installed the way a
# user does it (install --no-service into this temp dir), the http plugin alone enabled.
wait_port() { # PORT PID: until something listens on 127.0.0.1:PORT
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
D=$T/running
mkdir -p "$D/plugins"
chmod 755 "$D/plugins"
install -m 644 "$plugins/http.so" "$D/plugins/"
sport=$("$py" -I -S -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
"$server" init --data-dir "$D/server" --listen "127.0.0.1:$sport" >"$D/admin.token" 2>"$D/init.log" ||
  { cat "$D/init.log" >&2; exit 1; }
"$server" serve --data-dir "$D/server" --access-log off >"$D/server.log" 2>&1 &
server_pid=$!
wait_port "$sport" "$server_pid" || { cat "$D/server.log" >&2; exit 1; }
"$server" token create --data-dir "$D/server" >"$D/token" 2>/dev/null
"$agent" install --control-plane "https://127.0.0.1:$sport" --token-file "$D/token" \
  --ca-cert "$D/server/ca.crt" --config-dir "$D/etc" --state-dir "$D/state" \
  --plugins-dir "$D/plugins" --user "$(id -un)" --no-service >"$D/install.log" 2>&1 ||
  { cat "$D/install.log" >&2; exit 1; }
"$agent" run --config "$D/etc/config.yaml" --log-level warn >"$D/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 200); do
  "$agent" status --config "$D/etc/config.yaml" --json 2>/dev/null | grep -q '"last_ok"' && break
  sleep 0.05
done
sleep 1 # the spare worker loads http.so
running() { # one task, submit -> completed by the server's clock
  "$py" -I -S "$src/bench/agent/driver.py" "https://127.0.0.1:$sport" "$D/server/ca.crt" \
    "$(tail -n 1 "$D/admin.token")" task 1 "$T/task.json"
}

# Warm up each once, then alternate the runs so drift (and the machine's moods) hits all
# alike. Each running-agent task is followed by the two others, time enough for its spare
# worker to be back.
running >/dev/null
ours >/dev/null
parallel >/dev/null
: >"$T/t_running" ; : >"$T/ours" ; : >"$T/par" ; : >"$T/engine"
for ((r = 0; r < runs; r++)); do
  running >>"$T/t_running"
  ours >>"$T/ours"
  parallel >>"$T/par"
done
t_running=$(median <"$T/t_running")
t_ours=$(median <"$T/ours")
t_par=$(median <"$T/par")
t_engine=$(median <"$T/engine")
t_loop=$(loop)

printf '%d GETs of a 612-byte file from nginx on 127.0.0.1, concurrency %d (median of %d runs)\n' "$n" "$c" "$runs"
printf '  %-52s %8.3f s\n' "outpost: one http.batch task, running agent" "$t_running"
printf '  %-52s %8.3f s\n' "outpost: the same task cold, via plugin run" "$t_ours"
printf '  %-52s %8.3f s\n' "  of which the transfers (the plugin's own clock)" "$t_engine"
printf '  %-52s %8.3f s\n' "curl --parallel --parallel-max $c (the ceiling)" "$t_par"
printf '  %-52s %8.3f s   (one run)\n' "shell loop of curl (the peer)" "$t_loop"
calc() { awk "BEGIN {print $1}"; }
verdict() { [ "$(calc "$1")" = 1 ] && echo met || echo MISSED; }
for way in running cold; do
  t=$t_running
  [ $way = cold ] && t=$t_ours
  ratio_par=$(calc "$t / $t_par")
  speedup=$(calc "$t_loop / $t")
  printf '  %-8s vs curl --parallel: %.2fx the time (target <= 1.0x: %s); vs the shell loop: %.1fx faster (target >= 10x: %s)\n' \
    "$way" "$ratio_par" "$(verdict "($ratio_par <= 1.0) ? 1 : 0")" "$speedup" "$(verdict "($speedup >= 10) ? 1 : 0")"
done
printf '  all runs, running agent: %s\n' "$(tr '\n' ' ' <"$T/t_running")"
printf '  all runs, plugin run: %s\n' "$(tr '\n' ' ' <"$T/ours")"
printf '  all runs, curl --parallel: %s\n' "$(tr '\n' ' ' <"$T/par")"
