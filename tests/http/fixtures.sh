# SPDX-License-Identifier: Apache-2.0
# Fixtures for the http plugin's tests: real servers on 127.0.0.1 (the python test server,
# nginx, tinyproxy), a test CA made with openssl, and a helper that runs one task through
# `outpost-agent plugin run`. Source after tests/lib.sh.

HTTP_DIR="$OUTPOST_SOURCE_DIR/tests/http"
# Until the tree builds outpost-agent (plugin run), skip (ctest: SKIP_RETURN_CODE 77).
if [ -z "${OUTPOST_AGENT:-}" ] || [ ! -x "$OUTPOST_AGENT" ]; then
  echo "SKIP: outpost-agent is not built in this tree" >&2
  exit 77
fi
# The system python, started lean: a pyenv shim on PATH costs ~0.3 s per call.
HTTP_PY=/usr/bin/python3
[ -x "$HTTP_PY" ] || HTTP_PY=python3

# http_server VAR [server.py args...]: starts the test server on a free port; VAR=port.
# Its request log is $T/VAR.log ("METHOD PATH" per request, plus "CONN port" per connection).
http_server() {
  local var=$1 port pid
  shift
  port=$(http_free_port)
  "$HTTP_PY" "$HTTP_DIR/server.py" --port "$port" --log "$T/$var.log" "$@" >"$T/$var.out" 2>&1 &
  pid=$!
  t_track "$pid"
  t_wait_port "$port"
  printf -v "$var" '%s' "$port"
}

# http_ca: makes a test CA in $T/pki (ca.pem), a server certificate for 127.0.0.1 and
# localhost (server.pem/server.key), one for "other.test" only (wrongname.pem/.key), a client
# certificate (client.pem/client.key, and client-enc.key encrypted with "s3cret"), and a
# second CA nobody trusts (rogue-ca.pem) with a server certificate from it (rogue.pem/.key).
http_ca() {
  local d=$T/pki
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=Outpost Test CA" -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=Rogue CA" -keyout rogue-ca.key -out rogue-ca.pem 2>/dev/null
    _http_leaf ca server "subjectAltName=IP:127.0.0.1,DNS:localhost" serverAuth
    _http_leaf ca wrongname "subjectAltName=DNS:other.test" serverAuth
    _http_leaf rogue-ca rogue "subjectAltName=IP:127.0.0.1,DNS:localhost" serverAuth
    _http_leaf ca client "subjectAltName=DNS:outpost-agent" clientAuth
    openssl pkey -in client.key -aes256 -passout pass:s3cret -out client-enc.key 2>/dev/null
  )
}
_http_leaf() {
  local ca=$1 name=$2 san=$3 eku=$4
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf '%s\nextendedKeyUsage=%s\n' "$san" "$eku" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial -days 2 \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
}

# http_tinyproxy VAR [CONNECT_PORT...]: a real CONNECT proxy on a free port; VAR=port. With
# ports given, CONNECT is allowed to those only. Its log is $T/VAR.log.
http_tinyproxy() {
  local var=$1 port pid p
  shift
  port=$(http_free_port)
  {
    echo "Port $port"
    echo "Listen 127.0.0.1"
    echo "Timeout 30"
    echo "LogFile \"$T/$var.log\""
    echo "LogLevel Connect"
    echo "MaxClients 50"
    echo "Allow 127.0.0.1"
    echo "DisableViaHeader Yes"
    for p in "$@"; do echo "ConnectPort $p"; done
  } >"$T/$var.conf"
  tinyproxy -d -c "$T/$var.conf" >"$T/$var.out" 2>&1 &
  pid=$!
  t_track "$pid"
  t_wait_port "$port"
  printf -v "$var" '%s' "$port"
}

# http_nginx VAR ROOT: nginx serving ROOT on a free port (keep-alive on); VAR=port.
http_nginx() {
  local var=$1 root=$2 port pid
  port=$(http_free_port)
  mkdir -p "$T/$var"
  cat >"$T/$var/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $T/$var/nginx.pid;
error_log $T/$var/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path $T/$var/body;
  proxy_temp_path $T/$var/proxy;
  fastcgi_temp_path $T/$var/fastcgi;
  uwsgi_temp_path $T/$var/uwsgi;
  scgi_temp_path $T/$var/scgi;
  server {
    listen 127.0.0.1:$port;
    root $root;
  }
}
EOF
  nginx -c "$T/$var/nginx.conf" -e "$T/$var/error.log" &
  pid=$!
  t_track "$pid"
  t_wait_port "$port"
  printf -v "$var" '%s' "$port"
}

# http_task FILE TYPE PARAMS_JSON [TIMEOUT]: writes a task file.
http_task() {
  printf '{"type": "%s", "params": %s, "timeout": "%s"}\n' "$2" "$3" "${4:-30s}" >"$1"
}

# http_run RC NAME TYPE PARAMS_JSON [plugin run args...]: runs one task through
# `outpost-agent plugin run`; stdout in $T/NAME.json, stderr in $T/NAME.err; checks the exit
# code. Sets R=$T/NAME.json.
http_run() {
  local want=$1 name=$2 type=$3 params=$4 rc=0
  shift 4
  http_task "$T/$name.task" "$type" "$params" "${HTTP_TASK_TIMEOUT:-30s}"
  mkdir -p "$T/ws-$name"
  "$OUTPOST_AGENT" plugin run --task "$T/$name.task" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
    --workspace "$T/ws-$name" "$@" >"$T/$name.json" 2>"$T/$name.err" || rc=$?
  R=$T/$name.json
  if [ "$rc" != "$want" ]; then
    echo "--- task $name: ${params:0:2000}" >&2
    head -c 6000 "$T/$name.json" >&2
    tail -n 40 "$T/$name.err" >&2
    t_fail "$name: exit code: expected $want, got $rc"
  fi
}

# http_free_port: like t_free_port, without the pyenv shim's start-up.
http_free_port() {
  "$HTTP_PY" -I -S -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# http_check FILE EXPR...: each EXPR is a python expression over r (FILE's JSON) that must
# be true, e.g. 'r["status"] == "failed"'. One python start for all of them.
http_check() {
  "$HTTP_PY" -I -S - "$@" <<'PY' || t_fail "http_check $1"
import json, sys
r = json.load(open(sys.argv[1]))
bad = 0
for e in sys.argv[2:]:
    try:
        ok = eval(e, {"r": r, "len": len, "all": all, "any": any, "set": set, "sorted": sorted, "sum": sum})
    except Exception as x:
        ok, e = False, "%s (%s: %s)" % (e, type(x).__name__, x)
    if not ok:
        print("FAIL: %s: not true: %s" % (sys.argv[1], e), file=sys.stderr)
        bad = 1
if bad:
    print(json.dumps(r, indent=1)[:6000], file=sys.stderr)
sys.exit(bad)
PY
}

# http_field FILE PATH: one field as text (t_json's syntax).
http_field() {
  "$HTTP_PY" -I -S - "$1" "$2" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
for part in [p for p in sys.argv[2].replace("]", "").replace("[", ".").split(".") if p]:
    data = data[int(part)] if isinstance(data, list) else data[part]
print(json.dumps(data) if isinstance(data, (dict, list)) else ("" if data is None else str(data).lower() if isinstance(data, bool) else data))
PY
}

# http_expect_error NAME 'message': the task's error is exactly this.
http_expect_error() {
  local got
  got=$(http_field "$T/$1.json" .error)
  t_expect_eq "$2" "$got" "$1: error"
}

# http_invalid NAME PARAMS 'message' [TYPE]: the params are refused (exit 2, "invalid") with
# exactly this message.
http_invalid() {
  http_run 2 "$1" "${4:-http.request}" "$2"
  local st err
  { read -r st; IFS= read -r err; } < <("$HTTP_PY" -I -S -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["status"]); print(r["error"])' "$T/$1.json")
  t_expect_eq invalid "$st" "$1: status"
  t_expect_eq "$3" "$err" "$1: error"
}
