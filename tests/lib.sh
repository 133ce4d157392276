# SPDX-License-Identifier: Apache-2.0
# Helpers for Outpost's bash integration tests. Source it first thing:
#   . "$OUTPOST_SOURCE_DIR/tests/lib.sh"
#
# Variables set by ctest (cmake/OutpostTesting.cmake):
#   OUTPOST_SOURCE_DIR OUTPOST_BUILD_DIR OUTPOST_AGENT OUTPOST_WORKER OUTPOST_SERVER
#   OUTPOST_PLUGIN_DIR (the bundled plugins) OUTPOST_TEST_PLUGIN_DIR (tests/plugins)
#   OUTPOST_SANITIZE (0/1) OUTPOST_TEST_NAME
# After sourcing: T is a fresh temp dir removed at exit; every PID given to t_track is
# killed (TERM, then KILL) at exit, with its process group when it leads one.
set -euo pipefail
# Debian's tools first: a developer's pyenv shim costs ~1 s per python3 call.
export PATH="/usr/bin:/bin:/usr/sbin:/sbin:$PATH"

T=$(mktemp -d "${TMPDIR:-/tmp}/outpost-test.XXXXXX")
chmod 755 "$T"
_t_pids=()
_t_cleanups=()
_t_failed=0

t_track() { _t_pids+=("$@"); }
t_on_exit() { _t_cleanups+=("$1"); }

_t_exit() {
  local rc=$? p
  set +e
  for c in "${_t_cleanups[@]+"${_t_cleanups[@]}"}"; do eval "$c" >/dev/null 2>&1; done
  for p in "${_t_pids[@]+"${_t_pids[@]}"}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${_t_pids[@]+"${_t_pids[@]}"}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; t_proc_gone "$p" && break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  if [ $rc -ne 0 ] || [ $_t_failed -ne 0 ]; then
    echo "--- test failed; temp dir kept: $T" >&2
  else
    rm -rf "$T"
  fi
  exit $rc
}
trap _t_exit EXIT

# A process in state Z counts as gone (PID 1 here reaps late: decisions.md 23).
t_proc_gone() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ -z "$st" ] || [ "$st" = Z ]
}

t_fail() { echo "FAIL: $*" >&2; _t_failed=1; exit 1; }
t_log() { echo "--- $*" >&2; }

# t_expect_eq EXPECTED ACTUAL [WHAT]
t_expect_eq() {
  [ "$1" = "$2" ] || t_fail "${3:-value}: expected [$1], got [$2]"
}
# t_expect_contains FILE_OR_TEXT NEEDLE: fixed-string match in a file (if it exists) or text
t_expect_contains() {
  local hay=$1 needle=$2
  if [ -f "$hay" ]; then
    grep -qF -- "$needle" "$hay" || { echo "--- $hay:" >&2; tail -n 40 "$hay" >&2; t_fail "expected [$needle] in $hay"; }
  else
    case "$hay" in *"$needle"*) ;; *) t_fail "expected [$needle] in [$hay]" ;; esac
  fi
}
t_expect_not_contains() {
  local hay=$1 needle=$2
  if [ -f "$hay" ]; then
    ! grep -qF -- "$needle" "$hay" || t_fail "did not expect [$needle] in $hay"
  else
    case "$hay" in *"$needle"*) t_fail "did not expect [$needle] in [$hay]" ;; esac
  fi
}
# t_run EXPECTED_RC OUTFILE CMD...: runs CMD with stdout+stderr to OUTFILE, checks its exit code
t_run() {
  local want=$1 out=$2 rc=0
  shift 2
  "$@" >"$out" 2>&1 || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "--- command: $*" >&2
    tail -n 60 "$out" >&2
    t_fail "exit code: expected $want, got $rc"
  fi
}

# A TCP port free on 127.0.0.1 right now.
t_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
# t_wait_port PORT [SECONDS]: waits until something listens on 127.0.0.1:PORT
t_wait_port() {
  local port=$1 secs=${2:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  t_fail "nothing listens on 127.0.0.1:$port after ${secs}s"
}
# t_wait_for SECONDS CMD...: retries CMD until it succeeds
t_wait_for() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  t_fail "timed out after ${secs}s waiting for: $*"
}
# JSON field from a file or stdin: t_json FILE '.a.b' (python3 does the parsing)
t_json() {
  python3 - "$1" "$2" <<'PY'
import json, sys
src, path = sys.argv[1], sys.argv[2]
data = json.load(sys.stdin if src == "-" else open(src))
for part in [p for p in path.replace("]", "").replace("[", ".").split(".") if p]:
    data = data[int(part)] if isinstance(data, list) else data[part]
print(json.dumps(data) if isinstance(data, (dict, list)) else ("" if data is None else str(data).lower() if isinstance(data, bool) else data))
PY
}

# t_plugin_dir DIR NAME...: a safe plugins directory (0755, files 0644) holding the named
# test plugins (from tests/plugins) or bundled ones (NAME found in OUTPOST_PLUGIN_DIR).
t_plugin_dir() {
  local dir=$1 name
  shift
  mkdir -p "$dir"
  chmod 755 "$dir"
  for name in "$@"; do
    if [ -f "$OUTPOST_TEST_PLUGIN_DIR/$name.so" ]; then
      cp "$OUTPOST_TEST_PLUGIN_DIR/$name.so" "$dir/"
    elif [ -f "$OUTPOST_PLUGIN_DIR/$name.so" ]; then
      cp "$OUTPOST_PLUGIN_DIR/$name.so" "$dir/"
    else
      t_fail "no plugin $name.so in $OUTPOST_TEST_PLUGIN_DIR or $OUTPOST_PLUGIN_DIR"
    fi
    chmod 644 "$dir/$name.so"
  done
}

# t_task FILE TYPE PARAMS_JSON [TIMEOUT]: writes a task file for `plugin run`
t_task() {
  if [ -n "${4:-}" ]; then
    printf '{"type": "%s", "params": %s, "timeout": "%s"}\n' "$2" "$3" "$4" >"$1"
  else
    printf '{"type": "%s", "params": %s}\n' "$2" "$3" >"$1"
  fi
}

# ---- outpost-server helpers (tests/server and anyone who needs a real control plane) ----------
# t_srv_init [init args...]: a fresh data dir; sets SRV_DIR SRV_PORT SRV_URL SRV_CA
# SRV_ADMIN_TOKEN (the token named admin). The server is not started.
t_srv_init() {
  SRV_DIR=$T/server
  SRV_PORT=$(t_free_port)
  SRV_URL=https://127.0.0.1:$SRV_PORT
  SRV_CA=$SRV_DIR/ca.crt
  SRV_ADMIN_TOKEN=$("$OUTPOST_SERVER" init --data-dir "$SRV_DIR" --listen "127.0.0.1:$SRV_PORT" "$@" 2>"$T/init.err") ||
    { cat "$T/init.err" >&2; t_fail "outpost-server init failed"; }
}
# t_srv_start [serve flags...]: starts `serve` on SRV_DIR (log: $T/server.log, appended), waits
# until /health answers; sets SRV_PID.
t_srv_start() {
  "$OUTPOST_SERVER" serve --data-dir "$SRV_DIR" "$@" >>"$T/server.log" 2>&1 &
  SRV_PID=$!
  t_track "$SRV_PID"
  local i
  for ((i = 0; i < 200; i++)); do
    curl -sf --cacert "$SRV_CA" "$SRV_URL/health" >/dev/null 2>&1 && return 0
    t_proc_gone "$SRV_PID" && { tail -n 20 "$T/server.log" >&2; t_fail "outpost-server serve exited"; }
    sleep 0.05
  done
  tail -n 20 "$T/server.log" >&2
  t_fail "outpost-server did not answer /health on $SRV_URL"
}
# t_srv_stop: SIGTERM, waits; fails the test unless it exits 0 with no sanitizer report.
t_srv_stop() {
  SRV_RC=0
  kill -TERM "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" || SRV_RC=$?
  if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$T/server.log"; then
    grep -A 30 -E "AddressSanitizer|LeakSanitizer|runtime error:" "$T/server.log" | head -n 60 >&2
    t_fail "outpost-server: sanitizer report"
  fi
  [ "$SRV_RC" = 0 ] || { tail -n 20 "$T/server.log" >&2; t_fail "outpost-server exited $SRV_RC after SIGTERM"; }
}
# t_srv_kill: SIGKILL (a crash), waits.
t_srv_kill() {
  kill -KILL "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" 2>/dev/null || true
}
# t_srv_cli ARGS...: the admin CLI against SRV_DIR's admin.yaml.
t_srv_cli() { "$OUTPOST_SERVER" "$@" --data-dir "$SRV_DIR"; }
# t_srv_req OUT METHOD PATH [BODY] [curl args...]: an HTTPS request; the body goes to OUT and
# the HTTP status to stdout. BODY "-" means none.
t_srv_req() {
  local out=$1 method=$2 path=$3 body=${4:--}
  shift 3
  [ $# -gt 0 ] && shift
  local args=(-s -o "$out" -w '%{http_code}' --cacert "$SRV_CA" -X "$method" "$@")
  [ "$body" != "-" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  curl "${args[@]}" "$SRV_URL$path" || true
}
# t_srv_admin OUT METHOD PATH [BODY]: t_srv_req with the admin token.
t_srv_admin() { t_srv_req "$1" "$2" "$3" "${4:--}" -H "Authorization: Bearer $SRV_ADMIN_TOKEN"; }
# t_srv_agent NAME OUT METHOD PATH [BODY]: t_srv_req with agent NAME's client certificate.
t_srv_agent() {
  local d=$T/agents/$1
  shift
  t_srv_req "$1" "$2" "$3" "${4:--}" --cert "$d/cert.pem" --key "$d/key.pem"
}
# t_srv_csr DIR [openssl genpkey args]: a key (default EC P-256) and CSR in DIR/key.pem, DIR/csr.pem.
t_srv_csr() {
  local d=$1
  shift
  mkdir -p "$d"
  if [ $# -eq 0 ]; then set -- -algorithm EC -pkeyopt ec_paramgen_curve:P-256; fi
  openssl genpkey "$@" -out "$d/key.pem" 2>/dev/null
  openssl req -new -key "$d/key.pem" -subj "/CN=outpost-test" -out "$d/csr.pem" 2>/dev/null
}
# t_srv_enroll NAME TOKEN [EXTRA_JSON]: enrolls agent NAME (hostname NAME unless EXTRA_JSON
# sets it) with a fresh key; keeps cert.pem, key.pem, id and enroll.json in $T/agents/NAME.
# EXTRA_JSON is merged into the body, e.g. '{"plugins":[{"name":"echo","types":["echo"]}]}'.
t_srv_enroll() {
  local d=$T/agents/$1 code extra=${3:-}
  [ -n "$extra" ] || extra='{}'
  t_srv_csr "$d"
  python3 - "$d" "$1" "$2" "$extra" >"$d/enroll-body.json" <<'PY'
import json, sys
d, name, token, extra = sys.argv[1:5]
body = {"token": token, "csr": open(d + "/csr.pem").read(), "hostname": name, "os": "linux",
        "arch": "amd64", "version": "0.1.0"}
body.update(json.loads(extra))
print(json.dumps(body))
PY
  code=$(t_srv_req "$d/enroll.json" POST /agent/enroll "@$d/enroll-body.json")
  [ "$code" = 201 ] || { cat "$d/enroll.json" >&2; t_fail "enrolling $1: HTTP $code"; }
  t_json "$d/enroll.json" .certificate >"$d/cert.pem"
  t_json "$d/enroll.json" .agent_id >"$d/id"
}
# t_srv_expect CODE REASON OUT ACTUAL_CODE: the status and the body's reason.
t_srv_expect() {
  [ "$1" = "$4" ] || { cat "$3" >&2 2>/dev/null; t_fail "expected HTTP $1 ($2), got $4"; }
  if [ -n "$2" ]; then
    local r
    r=$(t_json "$3" .reason 2>/dev/null || echo "?")
    [ "$r" = "$2" ] || { cat "$3" >&2; t_fail "expected reason $2, got $r"; }
  fi
}

# ---- outpost-agent enrollment helpers (tests/enroll and anyone who needs an enrolled agent) ----
# t_ag_token [token create args...]: a fresh enrollment token from the running server, in a new
# file (mode 0600) whose path it prints.
t_ag_token() {
  local f
  f=$(mktemp "$T/token.XXXXXX")
  t_srv_cli token create "$@" >"$f" 2>/dev/null || t_fail "outpost-server token create failed"
  chmod 600 "$f"
  echo "$f"
}
# t_ag_install NAME [install args...]: installs agent NAME against SRV_URL with a fresh token, or
# the one in the file AG_TOKEN_FILE names (config in $T/NAME/etc, state in $T/NAME/state,
# --ca-cert SRV_CA, --no-service, the test's own user). Sets AG_CFG, AG_STATE and AG_ID; the
# output is in $T/NAME/install.out.
t_ag_install() {
  local name=$1 tok=${AG_TOKEN_FILE:-}
  shift
  [ -n "$tok" ] || tok=$(t_ag_token)
  mkdir -p "$T/$name"
  t_run 0 "$T/$name/install.out" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" \
    --token-file "$tok" --ca-cert "$SRV_CA" --config-dir "$T/$name/etc" \
    --state-dir "$T/$name/state" --user "$(id -un)" --no-service "$@"
  AG_CFG=$T/$name/etc/config.yaml
  AG_STATE=$T/$name/state
  AG_ID=$(t_json "$AG_STATE/agent.json" .agent_id)
}

# Workers a test started, told apart from other tests' by an environment marker: run the agent
# with OUTPOST_TEST_MARK=$T and `env_allow: [OUTPOST_TEST_MARK]` in the plugin's settings.
# t_marked_pids [MARK] prints the live processes that carry OUTPOST_TEST_MARK=MARK (default $T;
# zombies count as gone).
t_marked_pids() {
  local f p mark=${1:-$T}
  for f in /proc/[0-9]*/environ; do
    p=${f#/proc/}; p=${p%/environ}
    grep -qsaz "^OUTPOST_TEST_MARK=$mark\$" "$f" 2>/dev/null && ! t_proc_gone "$p" && echo "$p"
  done
  return 0
}
