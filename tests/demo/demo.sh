#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/demo.sh end to end, non-interactively, with this build's binaries: every step
# succeeds (the change request once the change plugin is built), the agents table shows the
# agent online, and everything the demo started is stopped and its temp dir removed. As root,
# it runs a second time as an ordinary user (the not-root path: sshd as that user).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
[ -n "${OUTPOST_SERVER:-}" ] && [ -n "${OUTPOST_AGENT:-}" ] || t_fail "needs outpost-server and outpost-agent"

# demo_run NAME [runuser -u USER --]: runs the demo, checks what it printed and what it left.
demo_run() {
  local name=$1 out=$T/$1.out rc=0 d pids p
  shift
  mkdir -p "$T/tmp-$name"
  chmod 1777 "$T/tmp-$name"
  "$@" env TMPDIR="$T/tmp-$name" PATH="$PATH" timeout 300 "$OUTPOST_SOURCE_DIR/scripts/demo.sh" \
    --build-dir "$OUTPOST_BUILD_DIR" --no-build --no-deps --keep </dev/null >"$out" 2>&1 || rc=$?
  [ $rc = 0 ] || { tail -n 60 "$out" >&2; t_fail "$name: scripts/demo.sh exited $rc"; }
  t_expect_contains "$out" "==> Starting outpost-server on 127.0.0.1"
  t_expect_contains "$out" "==> Running the agent"
  t_expect_contains "$out" "Last heartbeat:"
  # every task streamed its log and succeeded
  t_expect_contains "$out" "INFO  GET http://127.0.0.1:"
  t_expect_contains "$out" "HTTP 200 from http://127.0.0.1:"
  t_expect_contains "$out" "query returned 3 rows"
  t_expect_contains "$out" "(3 rows, SQLite"
  t_expect_contains "$out" "exit code 0 on 127.0.0.1"
  t_expect_not_contains "$out" "step(s) failed"
  [ "$(grep -c '    succeeded; result:' "$out")" -ge 3 ] || t_fail "$name: fewer than 3 tasks succeeded"
  if [ -f "$OUTPOST_BUILD_DIR/plugins/change.so" ]; then
    t_expect_contains "$out" "==> A change request"
    t_expect_not_contains "$out" "skipped: change request"
    t_expect_contains "$out" "waiting for approval"
    t_expect_contains "$out" "approved by        alice (1 of 1 needed)"
    t_expect_contains "$out" 'apply "write the new file": ok'
    t_expect_contains "$out" "succeeded; the page is now: hello from a change request, approved by alice"
    [ "$(grep -c '    succeeded; result:' "$out")" -ge 3 ] || t_fail "$name: fewer than 3 tasks succeeded"
  else
    t_expect_contains "$out" "skipped: the change plugin (change.so) is not built"
  fi
  t_expect_not_contains "$out" "skipped: ssh"
  # the agents table
  grep -A3 "==> The agents table" "$out" | grep -qE "agt_[A-Za-z0-9]+ +[^ ]+ +online" ||
    t_fail "$name: the agents table does not show the agent online"
  # everything stopped, by PID, and the temp dir removed
  pids=$(sed -n 's/.*Stopping what the demo started (PIDs \(.*\)).*/\1/p' "$out")
  [ -n "$pids" ] || t_fail "$name: the demo did not say what it stopped"
  for p in $pids; do
    t_proc_gone "$p" || t_fail "$name: PID $p is still running after the demo"
  done
  d=$(sed -n 's/.*(data dir \(.*\)\/server).*/\1/p' "$out" | head -n 1)
  [ -n "$d" ] || t_fail "$name: no data dir in the output"
  [ ! -e "$d" ] || t_fail "$name: the demo left $d behind"
  t_log "$name: ok ($(grep -c '^==>' "$out") steps)"
}

demo_run self

if [ "$(id -u)" = 0 ] && id outpost-demo >/dev/null 2>&1 &&
   runuser -u outpost-demo -- test -r "$OUTPOST_SOURCE_DIR/scripts/demo.sh" -a -x "$OUTPOST_SERVER"; then
  demo_run user runuser -u outpost-demo --
  t_expect_contains "$T/user.out" "login outpost-demo with a key"
  t_expect_contains "$T/user.out" "--user outpost-demo --no-service"
fi
echo PASS
