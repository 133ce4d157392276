#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark of the http plugin: 1,000 GETs of a small file from a local nginx in ONE http.batch
# task (through `outpost-agent plugin run`: agent, worker and plugin load included) against a
# shell loop of curl and `curl --parallel --parallel-max C` at the same concurrency, all
# measured in this run. Targets (issue 6): <= 1.0x the time of curl --parallel, >= 10x faster
# than the loop.
#
#   bench_http.sh [--agent PATH] [--plugins-dir DIR] [-n REQUESTS] [-c CONCURRENCY] [-r RUNS]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
agent=${OUTPOST_AGENT:-$src/build/core/outpost-agent}
plugins=${OUTPOST_PLUGIN_DIR:-$src/build/plugins}
n=1000 c=8 runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) agent=$2; shift ;;
    --plugins-dir) plugins=$2; shift ;;
    -n) n=$2; shift ;;
    -c) c=$2; shift ;;
    -r) runs=$2; shift ;;
    -h|--help) sed -n '3,9p' "$0"; exit 0 ;;
    *) echo "bench_http: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
py=/usr/bin/python3
[ -x "$py" ] || py=python3
for tool in nginx curl "$agent"; do
  command -v "$tool" >/dev/null || { echo "bench_http: $tool not found" >&2; exit 2; }
done

T=$(mktemp -d /tmp/outpost-bench-http.XXXXXX)
nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
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

# warm up each once, then alternate the runs so drift hits both alike
ours >/dev/null
parallel >/dev/null
: >"$T/engine"
: >"$T/ours" ; : >"$T/par" ; : >"$T/engine"
for ((r = 0; r < runs; r++)); do
  ours >>"$T/ours"
  parallel >>"$T/par"
done
t_ours=$(median <"$T/ours")
t_par=$(median <"$T/par")
t_engine=$(median <"$T/engine")
t_loop=$(loop)

printf '%d GETs of a 612-byte file from nginx on 127.0.0.1, concurrency %d (median of %d runs)\n' "$n" "$c" "$runs"
printf '  %-52s %8.3f s\n' "outpost: one http.batch task via plugin run" "$t_ours"
printf '  %-52s %8.3f s\n' "  of which the transfers (the plugin's own clock)" "$t_engine"
printf '  %-52s %8.3f s\n' "curl --parallel --parallel-max $c (the ceiling)" "$t_par"
printf '  %-52s %8.3f s   (one run)\n' "shell loop of curl (the peer)" "$t_loop"
calc() { awk "BEGIN {print $1}"; }
ratio_par=$(calc "$t_ours / $t_par")
speedup=$(calc "$t_loop / $t_ours")
ok1=$(calc "($ratio_par <= 1.0) ? 1 : 0")
ok2=$(calc "($speedup >= 10) ? 1 : 0")
printf '  vs curl --parallel: %.2fx the time   (target <= 1.0x: %s)\n' "$ratio_par" "$([ "$ok1" = 1 ] && echo met || echo MISSED)"
printf '  vs the shell loop:  %.1fx faster     (target >= 10x: %s)\n' "$speedup" "$([ "$ok2" = 1 ] && echo met || echo MISSED)"
printf '  all runs, outpost: %s\n' "$(tr '\n' ' ' <"$T/ours")"
printf '  all runs, curl --parallel: %s\n' "$(tr '\n' ' ' <"$T/par")"
