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
