#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The control plane goes away for 30 s while a task runs: the task finishes, its result waits
# in the outbox, heartbeats back off without the agent exiting, and when the server is back the
# result arrives, recorded once. Then: an outcome stored before a restart is delivered after it.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 1s --lease-ttl 3s --long-poll 2s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create 2>/dev/null)
ta_enroll a1 "$tok"
D=$T/agents/a1
ta_start a1
task=$(ta_submit testkit.run '{"action": "sleep", "for": "3s"}')
ta_wait_task "$task" leased
t_srv_stop
sleep 5
# The task finished while the server was away: its outcome is in the outbox.
ls "$D/state/outbox/"*.json >/dev/null 2>&1 || t_fail "no outbox entry while the control plane is down"
t_expect_contains "$D/agent.log" "heartbeat failed: Post \"$SRV_URL/agent/heartbeat\": dial tcp 127.0.0.1:$SRV_PORT: connect: connection refused"
sleep 25
t_proc_gone "$(ta_pid a1)" && t_fail "the agent exited during the outage"
t_srv_start --heartbeat-interval 1s --lease-ttl 3s --long-poll 2s
ta_wait_task "$task" succeeded 40
t_expect_eq 1 "$(ta_task "$task" attempt)" "attempts"
t_expect_eq 1 "$(grep -c "POST /agent/leases/.*/complete 200" "$T/server.log")" "completions recorded"
t_wait_for 10 bash -c "! ls $D/state/outbox/*.json >/dev/null 2>&1"

# An outcome stored when the agent stops is delivered by the next start.
task=$(ta_submit testkit.run '{"action": "sleep", "for": "2s"}')
ta_wait_task "$task" leased
t_srv_stop
sleep 3
kill -TERM "$(ta_pid a1)"
ta_wait_exit a1 60
t_expect_eq 0 "$TA_RC" "exit code with an undelivered result"
ls "$D/state/outbox/"*.json >/dev/null 2>&1 || t_fail "the undelivered result is not in the outbox"
t_srv_start --heartbeat-interval 1s --lease-ttl 3s --long-poll 2s
ta_start a1
ta_wait_task "$task" succeeded 20
t_expect_contains "$D/agent.log" "delivering the stored outcome of task $task"
kill -TERM "$(ta_pid a1)"
ta_wait_exit a1
t_srv_stop
echo ok
