#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The run loop end to end: heartbeat and health on the server, a task through a spare worker
# with its log streamed, status, metrics, the control socket, SIGTERM exits 0; outpost-agent
# hands `run` to outpost-agent-net.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 1s --lease-ttl 3s --long-poll 2s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create 2>/dev/null)
mport=$(t_free_port)
ta_enroll a1 "$tok" "metrics_listen: 127.0.0.1:$mport"
D=$T/agents/a1
ta_start a1
id=$(cat "$D/id")

# outpost-agent handed `run` to outpost-agent-net (same PID, still named outpost-agent); it
# loads no libcurl or libssl itself, outpost-agent-net does.
apid=$(ta_pid a1)
t_expect_eq outpost-agent "$(cat "/proc/$apid/comm")" "the agent's process name"
t_expect_eq outpost-agent-net "$(basename "$(readlink "/proc/$apid/exe")")" "the agent's program"
grep -q libcurl "/proc/$apid/maps" || t_fail "outpost-agent-net has no libcurl mapped"
if ldd "$OUTPOST_AGENT" | grep -E "libcurl|libssl" >&2; then
  t_fail "outpost-agent links libcurl or libssl"
fi

# The server sees it online, with its plugins, versions and health.
t_srv_cli agents show "$id" --json >"$T/agent.json" 2>/dev/null
t_expect_eq online "$(t_json "$T/agent.json" .status)"
t_expect_eq ok "$(t_json "$T/agent.json" .health.status)"
t_expect_eq 1.2.3 "$(t_json "$T/agent.json" .versions.plugins.testkit)"
t_expect_eq idle "$(t_json "$T/agent.json" .reported_state)"

# A task: leased at once (long poll), run in the spare worker, log streamed (its end rides with
# the completion), result kept.
task=$(ta_submit testkit.run '{"action": "echo", "x": 42}')
ta_wait_task "$task" succeeded
t_srv_cli task logs "$task" >"$T/logs.txt" 2>&1
t_expect_contains "$T/logs.txt" 'INFO  echo: {"action":"echo","x":42}'
t_expect_eq 42 "$(ta_task "$task" result | python3 -c 'import json,sys; print(json.load(sys.stdin)["x"])')"
# Numbers keep every digit on the whole way: admin API, store, lease, worker, plugin, outbox,
# completion, and back (cJSON alone prints 15 significant digits).
task=$(ta_submit testkit.run '{"action": "echo", "f": 0.30000000000000004, "big": 9007199254740991}')
ta_wait_task "$task" succeeded
t_expect_eq "0.30000000000000004 9007199254740991" \
  "$(ta_task "$task" result | python3 -c 'import json,sys; d=json.load(sys.stdin); print(repr(d["f"]), d["big"])')"

# Output streamed as it happens, and a failing task.
task=$(ta_submit testkit.run '{"action": "print", "bytes": 20000}')
ta_wait_task "$task" succeeded
t_srv_cli task logs "$task" >"$T/logs2.txt" 2>&1
[ "$(grep -c xxxx "$T/logs2.txt")" -ge 4 ] || t_fail "the task's output did not reach the server"
task=$(ta_submit testkit.run '{"action": "fail", "message": "upstream said no"}')
ta_wait_task "$task" failed
t_expect_eq "upstream said no" "$(ta_task "$task" error)"

# Params refused by the plugin's schema: invalid, with the path.
task=$(ta_submit testkit.strict '{"name": 5}')
ta_wait_task "$task" invalid
t_expect_eq "params.name: expected string, got number" "$(ta_task "$task" error)"

# status (human and JSON) through the control socket, which is 0600.
t_run 0 "$T/status.txt" "$OUTPOST_AGENT" status --config "$D/config.yaml"
t_expect_contains "$T/status.txt" "Agent:           $id (a1)"
t_expect_contains "$T/status.txt" "State:           idle"
t_expect_contains "$T/status.txt" "Plugins:         testkit 1.2.3"
t_expect_eq 600 "$(stat -c %a "$D/state/control.sock")" "control socket mode"
ta_status a1 >/dev/null
t_expect_eq "$id" "$(t_json "$D/status.json" .agent_id)"

# Prometheus metrics on the localhost port.
curl -sf "http://127.0.0.1:$mport/metrics" >"$T/metrics.txt" || t_fail "no metrics"
t_expect_contains "$T/metrics.txt" 'outpost_agent_heartbeat_latency_seconds_count'
t_expect_contains "$T/metrics.txt" 'outpost_agent_task_duration_seconds_count{type="testkit.run",outcome="succeeded"} 3'
t_expect_contains "$T/metrics.txt" 'outpost_agent_leases_total 5'
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/other")" = 404 ] || t_fail "metrics: 404 expected"

# A result goes to the control plane as the plugin wrote it (spacing and all), not reprinted.
task=$(ta_submit testkit.run '{"action": "raw", "text": "\n {\"n\": 1e-7,\n  \"list\": [1, 2.5]}\n"}')
ta_wait_task "$task" succeeded
t_expect_eq '{"n": 1e-07, "list": [1, 2.5]}' "$(ta_task "$task" result)" "a raw result"

# No secret or token in the agent's log.
t_expect_not_contains "$D/agent.log" "oe_"
t_expect_not_contains "$D/agent.log" "BEGIN"

# SIGTERM with nothing running: exit 0, control socket removed.
kill -TERM "$(ta_pid a1)"
ta_wait_exit a1
t_expect_eq 0 "$TA_RC" "exit code after SIGTERM"
[ ! -e "$D/state/control.sock" ] || t_fail "the control socket was left behind"
t_run 1 "$T/o" "$OUTPOST_AGENT" status --config "$D/config.yaml"
t_expect_contains "$T/o" "outpost-agent: the agent is not running (no control socket at $D/state/control.sock)"
t_srv_stop
echo ok
