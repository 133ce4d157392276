#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A full disk under the agent's state dir (a 2 MiB tmpfs; needs root to mount, skipped
# otherwise): a result that cannot be stored durably is logged loudly and delivered from
# memory, health says why, a new lease is given back instead of run blind, nothing already
# acknowledged is touched, and once there is room again the given-back task runs.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
S=$T/agents/a1/state
mkdir -p "$S"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=2m,mode=700 tmpfs "$S" 2>/dev/null; then
  t_log "tmpfs mount not permitted here: full-disk test skipped"
  echo ok
  exit 0
fi
t_on_exit "umount -l '$S'"
t_srv_init
t_srv_start --heartbeat-interval 1s --lease-ttl 3s --long-poll 2s --release-backoff 1s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create 2>/dev/null)
ta_enroll a1 "$tok" "workspace_dir: $S/work
health:
  min_free_disk: 1MiB"
ta_start a1
id=$(cat "$T/agents/a1/id")

# A task acknowledged while there is room: its record is gone from the outbox.
done1=$(ta_submit testkit.run '{"action": "echo", "n": 1}')
ta_wait_task "$done1" succeeded

# The disk fills while a task runs: its result cannot be stored, and is sent anyway.
task=$(ta_submit testkit.run '{"action": "sleep", "for": "2s"}')
ta_wait_task "$task" leased
dd if=/dev/zero of="$S/filler" bs=64k 2>/dev/null || true
ta_wait_task "$task" succeeded
t_expect_contains "$T/agents/a1/agent.log" "ERROR outbox: cannot store the result of task $task durably: "
t_expect_contains "$T/agents/a1/agent.log" "No space left on device: sending it from memory (it is lost if the agent stops before the control plane has it)"

# Health says so, on the server.
degraded() {
  t_srv_cli agents show "$id" --json >"$T/a1.json" 2>/dev/null &&
    [ "$(t_json "$T/a1.json" .health.status)" = degraded ]
}
t_wait_for 10 degraded
t_expect_contains "$(t_json "$T/a1.json" .health.problems)" "low disk space in $S: "
t_expect_contains "$(t_json "$T/a1.json" .health.problems)" "below health.min_free_disk (1 MiB)"

# A task leased while the disk is full is given back, not run without its record. (The
# finished task's workspace was removed since: fill what that freed too.)
dd if=/dev/zero of="$S/filler2" bs=4k 2>/dev/null || true
task2=$(ta_submit testkit.run '{"action": "echo", "n": 2}')
t_wait_for 10 grep -q "not running task $task2 (testkit.run): cannot record the lease in the state dir: " "$T/agents/a1/agent.log"
t_expect_contains "$T/agents/a1/agent.log" "ERROR outbox: cannot store the release of task $task2 durably: "
st=$(ta_task "$task2" state)
[ "$st" != succeeded ] || t_fail "a task ran while its lease could not be recorded"

# Room again: the given-back task runs; the agent never stopped.
rm -f "$S/filler" "$S/filler2"
ta_wait_task "$task2" succeeded 30
t_proc_gone "$(ta_pid a1)" && t_fail "the agent exited on a full disk"
t_expect_eq succeeded "$(ta_task "$done1" state)" "the task acknowledged before the disk filled"
[ -z "$(ls -A "$S/outbox")" ] || t_fail "the outbox kept acknowledged results: $(ls "$S/outbox")"

kill -TERM "$(ta_pid a1)"
ta_wait_exit a1
t_expect_eq 0 "$TA_RC" "exit code after SIGTERM"
t_srv_stop
echo ok
