#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The core under valgrind: no definite leak and no memory error in the unit tests, in
# `plugins list`, `plugin run` (a step and records included), and in `outpost-agent run` serving
# tasks against the real server until SIGTERM. (plain-only: not with ASan.)
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
VG=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite
    --error-exitcode=99 --track-fds=no)
vg() { # vg NAME CMD...: runs CMD under valgrind, its log in $T/vg.NAME
  local name=$1 rc=0
  shift
  "${VG[@]}" --log-file="$T/vg.$name" "$@" >"$T/out.$name" 2>&1 || rc=$?
  # ==PID== lines are errors and leaks; --PID-- lines are valgrind's own notes (it does not
  # know pidfd_open: the agent then polls for worker exits, which is fine).
  if [ "$rc" = 99 ] || grep -q '^==' "$T/vg.$name"; then
    cat "$T/vg.$name" >&2
    t_fail "valgrind found errors or leaks in $name"
  fi
  return "$rc"
}

vg unit_common "$OUTPOST_BUILD_DIR/tests/unit/test_common"
vg unit_config "$OUTPOST_BUILD_DIR/tests/unit/test_config"

P=$T/plugins
t_plugin_dir "$P" testkit template
vg plugins_list "$OUTPOST_AGENT" plugins list --plugins-dir "$P"
t_task "$T/t.json" testkit.run '{"action": "call", "type": "template.echo", "params": {"name": "vg"}}'
vg plugin_run "$OUTPOST_AGENT" plugin run --task "$T/t.json" --plugins-dir "$P"
t_task "$T/r.json" testkit.run '{"action": "record", "count": 2}'
vg plugin_run_records "$OUTPOST_AGENT" plugin run --task "$T/r.json" --plugins-dir "$P"
t_task "$T/bad.json" testkit.strict '{"name": 1}'
vg plugin_run_invalid "$OUTPOST_AGENT" plugin run --task "$T/bad.json" --plugins-dir "$P" || true

# The daemon: heartbeats, a few tasks (one crashes), drain, SIGTERM.
t_srv_init
t_srv_start --heartbeat-interval 0.5s --lease-ttl 3s --long-poll 1s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create 2>/dev/null)
ta_enroll a1 "$tok"
D=$T/agents/a1
# outpost-agent execs outpost-agent-net for `run`: valgrind follows it, not the workers.
"${VG[@]}" --trace-children=yes --trace-children-skip='*/outpost-worker' --log-file="$T/vg.run" \
  "$OUTPOST_AGENT" run --config "$D/config.yaml" >"$D/agent.log" 2>&1 &
pid=$!
t_track "$pid"
t_wait_for 30 grep -q "running as" "$D/agent.log"
for p in '{"action": "echo"}' '{"action": "segv"}' '{"action": "print", "bytes": 100000}'; do
  task=$(ta_submit testkit.run "$p")
  ta_wait_task "$task" "$( [ "$p" = '{"action": "segv"}' ] && echo crashed || echo succeeded)" 60
done
"$OUTPOST_AGENT" drain --config "$D/config.yaml" >/dev/null
"$OUTPOST_AGENT" status --config "$D/config.yaml" >/dev/null
kill -HUP "$pid"
sleep 1
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
if [ "$rc" != 0 ] || grep -q '^==' "$T/vg.run"; then
  cat "$T/vg.run" >&2
  tail -n 20 "$D/agent.log" >&2
  t_fail "outpost-agent run under valgrind: exit $rc"
fi
t_srv_stop
echo ok
