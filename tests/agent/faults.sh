#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Faults with real agents: kill -9 mid-task (re-leased to another agent after its TTL, one
# completion), a plugin crash (that task fails, the next runs), drain (local and server),
# degraded health, and revocation while a task runs (exit 3, the seed's message).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 1s --lease-ttl 2s --long-poll 2s --release-backoff 1s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create --uses 5 2>/dev/null)
ta_enroll a1 "$tok"
ta_enroll a2 "$tok" "health:
  min_free_disk: 1000TiB"

# --- kill -9 mid-task: the lease expires and a second agent completes the task, once.
ta_start a1
task=$(ta_submit testkit.run '{"action": "sleep", "for": "2s"}')
ta_wait_task "$task" leased
kill -KILL "$(ta_pid a1)"
wait "$(ta_pid a1)" 2>/dev/null || true
ta_start a2
ta_wait_task "$task" succeeded 30
t_srv_cli task show "$task" --json >"$T/t.json" 2>/dev/null
t_expect_eq 2 "$(t_json "$T/t.json" .attempt)" "attempts after kill -9"
t_expect_eq "$(cat "$T/agents/a2/id")" "$(t_json "$T/t.json" .agent_id)" "the agent that completed it"
# The killed agent's worker did not outlive it.
for _ in $(seq 50); do [ -z "$(t_marked_pids "$T/agents/a1")" ] && break; sleep 0.1; done
[ -z "$(t_marked_pids "$T/agents/a1")" ] || t_fail "a worker outlived the killed agent"

# --- degraded health (a2's disk threshold cannot be met) is shown by the server.
t_srv_cli agents show "$(cat "$T/agents/a2/id")" --json >"$T/a2.json" 2>/dev/null
t_expect_eq degraded "$(t_json "$T/a2.json" .health.status)"
t_expect_contains "$(t_json "$T/a2.json" .health.problems)" "below health.min_free_disk (1000.0 TiB)"

# --- a plugin crash mid-task fails that task; the agent stays healthy and runs the next one.
task=$(ta_submit testkit.run '{"action": "abort"}')
ta_wait_task "$task" crashed
t_expect_contains "$(ta_task "$task" error)" "plugin testkit crashed: signal 6 (SIGABRT)"
task=$(ta_submit testkit.run '{"action": "echo"}')
ta_wait_task "$task" succeeded

# --- drain: local (control socket) then the server's flag; a running task finishes.
task=$(ta_submit testkit.run '{"action": "sleep", "for": "1.5s"}')
ta_wait_task "$task" leased
t_run 0 "$T/drain.txt" "$OUTPOST_AGENT" drain --config "$T/agents/a2/config.yaml"
t_expect_contains "$T/drain.txt" "drain: agent $(cat "$T/agents/a2/id") is draining"
queued=$(ta_submit testkit.run '{"action": "echo"}')
ta_wait_task "$task" succeeded
sleep 1.5
t_expect_eq queued "$(ta_task "$queued" state)" "a task submitted while draining"
t_srv_cli agents show "$(cat "$T/agents/a2/id")" --json >"$T/a2.json" 2>/dev/null
t_expect_eq draining "$(t_json "$T/a2.json" .reported_state)"
t_run 0 "$T/o" "$OUTPOST_AGENT" undrain --config "$T/agents/a2/config.yaml"
ta_wait_task "$queued" succeeded
t_srv_cli agents drain "$(cat "$T/agents/a2/id")" >/dev/null 2>&1
sleep 1.5
queued=$(ta_submit testkit.run '{"action": "echo"}')
sleep 1.5
t_expect_eq queued "$(ta_task "$queued" state)" "a task submitted while drained by the server"
ta_status a2 >/dev/null
t_expect_eq true "$(t_json "$T/agents/a2/status.json" .drain.server)"
t_srv_cli agents undrain "$(cat "$T/agents/a2/id")" >/dev/null 2>&1
ta_wait_task "$queued" succeeded

# --- revoked while a task runs: the task is stopped, the agent exits 3 with the seed's line.
task=$(ta_submit testkit.run '{"action": "sleep", "for": "20s"}')
ta_wait_task "$task" leased
t_srv_cli agents revoke "$(cat "$T/agents/a2/id")" >/dev/null 2>&1
ta_wait_exit a2
t_expect_eq 3 "$TA_RC" "exit code after revocation"
t_expect_contains "$T/agents/a2/agent.log" "ERROR: heartbeat rejected: agent not found or revoked"
[ -z "$(t_marked_pids "$T/agents/a2")" ] || t_fail "a worker outlived the revoked agent"
t_srv_stop
echo ok
