#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Lease edge cases: a lease for another host is given back, never run; a lease lost while the
# agent was stopped (SIGSTOP past the TTL) kills the task and drops its result; leases running
# at a kill -9 are given back at the next start; log.file gets the lines.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 1s --lease-ttl 2s --long-poll 1s --release-backoff 1s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create --uses 3 2>/dev/null)
ta_enroll a1 "$tok" "" "  file: $T/agents/a1/agent.file.log"
ta_enroll a2 "$tok"

# --- a lease for another host: the agent believes it runs elsewhere than it enrolled as.
python3 - "$T/agents/a1/state/agent.json" <<'PY'
import json, sys
p = sys.argv[1]; d = json.load(open(p)); d["hostname"] = "elsewhere"; json.dump(d, open(p, "w"))
PY
ta_start a1
task=$(ta_submit testkit.run '{"action": "echo"}' --target-host a1)
t_wait_for 10 grep -q "not running task $task (testkit.run): the task targets host a1 and this agent runs on elsewhere" "$T/agents/a1/agent.log"
t_wait_for 10 grep -q "task $task released: the task targets host a1" "$T/agents/a1/agent.log"
[ "$(ta_task "$task" state)" = queued ] || t_fail "the mistargeted task ran"
t_srv_cli task cancel "$task" >/dev/null 2>&1
t_expect_contains "$T/agents/a1/agent.file.log" "Z INFO agent: outpost-agent"
kill -TERM "$(ta_pid a1)"; ta_wait_exit a1

# --- a lost lease: a1 is frozen past the TTL, a2 takes the task over, a1's result is dropped.
python3 - "$T/agents/a1/state/agent.json" <<'PY'
import json, sys
p = sys.argv[1]; d = json.load(open(p)); d["hostname"] = "a1"; json.dump(d, open(p, "w"))
PY
ta_start a1
task=$(ta_submit testkit.run '{"action": "sleep", "for": "4s"}')
ta_wait_task "$task" leased
kill -STOP "$(ta_pid a1)"
ta_start a2
for _ in $(seq 200); do [ "$(ta_task "$task" attempt)" = 2 ] && break; sleep 0.1; done
t_expect_eq 2 "$(ta_task "$task" attempt)" "attempt after the lease expired"
kill -CONT "$(ta_pid a1)"
ta_wait_task "$task" succeeded 30
t_wait_for 10 grep -q "lease .* of task $task was lost (expired or given to another agent): stopping the task and dropping its result" "$T/agents/a1/agent.log"
t_expect_eq "$(cat "$T/agents/a2/id")" "$(ta_task "$task" agent_id)" "the agent that completed it"
kill -TERM "$(ta_pid a2)"; ta_wait_exit a2

# --- kill -9 mid-task, then start again: the lease is given back at once (no TTL wait).
task=$(ta_submit testkit.run '{"action": "sleep", "for": "30s"}')
ta_wait_task "$task" leased
kill -KILL "$(ta_pid a1)"
wait "$(ta_pid a1)" 2>/dev/null || true
ls "$T/agents/a1/state/leases/"*.json >/dev/null 2>&1 || t_fail "no lease record after kill -9"
ta_start a1
t_wait_for 10 grep -q "task $task (testkit.run) was running when the agent stopped: giving its lease back" "$T/agents/a1/agent.log"
t_wait_for 10 grep -q "task $task released: the agent restarted while the task ran" "$T/agents/a1/agent.log"
t_srv_cli task cancel "$task" >/dev/null 2>&1
kill -TERM "$(ta_pid a1)"; ta_wait_exit a1
t_srv_stop
echo ok
