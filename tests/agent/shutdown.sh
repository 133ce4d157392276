#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# SIGTERM drains: no new leases, heartbeats say draining, running tasks finish, exit 0. After
# drain_grace, or at a second SIGTERM, what still runs is cancelled and reported.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 1s --lease-ttl 3s --long-poll 2s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create --uses 3 2>/dev/null)
ta_enroll a1 "$tok" "concurrency: 2"
D=$T/agents/a1

# 1. A running task finishes after SIGTERM; a task submitted meanwhile stays queued.
ta_start a1
task=$(ta_submit testkit.run '{"action": "sleep", "for": "2s"}')
ta_wait_task "$task" leased
kill -TERM "$(ta_pid a1)"
sleep 0.5
later=$(ta_submit testkit.run '{"action": "echo"}')
reported() { t_srv_cli agents show "$(cat "$D/id")" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["reported_state"])'; }
for _ in $(seq 50); do [ "$(reported)" = draining ] && break; sleep 0.1; done
t_expect_eq draining "$(reported)" "state reported while stopping"
ta_wait_exit a1 20
t_expect_eq 0 "$TA_RC" "exit code after a drained stop"
t_expect_eq succeeded "$(ta_task "$task" state)" "the task running at SIGTERM"
t_expect_eq queued "$(ta_task "$later" state)" "the task submitted while stopping"
t_expect_contains "$D/agent.log" "stopping: no new leases; 1 running task(s) may finish within 30s (drain_grace)"

# 2. A second SIGTERM cancels at once and reports the task as cancelled.
ta_start a1
ta_wait_task "$later" succeeded
task=$(ta_submit testkit.run '{"action": "sleep", "for": "60s"}')
ta_wait_task "$task" leased
kill -TERM "$(ta_pid a1)"
sleep 0.3
kill -TERM "$(ta_pid a1)"
ta_wait_exit a1 20
t_expect_eq 0 "$TA_RC" "exit code after a second SIGTERM"
ta_wait_task "$task" cancelled 10
t_expect_contains "$(ta_task "$task" error)" "stopped after"

# 3. drain_grace passes: the task is cancelled (a plugin that ignores cancel is killed).
sed -i 's/^drain_grace: 30s/drain_grace: 1s/' "$D/config.yaml"
ta_start a1
task=$(ta_submit testkit.run '{"action": "hang"}')
ta_wait_task "$task" leased
start=$(date +%s)
kill -TERM "$(ta_pid a1)"
ta_wait_exit a1 20
t_expect_eq 0 "$TA_RC" "exit code after drain_grace"
[ $(( $(date +%s) - start )) -le 8 ] || t_fail "stopping took longer than drain_grace + worker grace"
ta_wait_task "$task" cancelled 10
t_expect_contains "$(ta_task "$task" error)" "cancelled: the agent is shutting down (drain_grace passed)"
t_expect_contains "$D/agent.log" "drain_grace passed: cancelling 1 running task(s)"
t_srv_stop
echo ok
