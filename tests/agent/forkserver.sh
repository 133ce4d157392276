#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fork server (workers.fork_server, on by default): a process per plugin loads it once and
# forks each task's worker. The worker is the fork server's child, in a process group of its
# own, with a clean environment; a crash is reported with its signal; when the fork server dies
# mid-task, that task fails with the reason, the agent carries on and starts it again; one
# that stops answering is replaced; with workers.fork_server off for a plugin its workers are
# spawned. A spare prepares its task's heap while it waits, as much as the plugin's last task
# used (workers.spare_heap, 8MiB by default, at most); with spare_heap: 0 it does not. The agent gives back the heap a large result
# took once no task came for 10s.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 1s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create --uses 3 2>/dev/null)
ta_enroll a1 "$tok"
ta_enroll a2 "$tok" "  fork_server: {default: true, testkit: false}
  spare_heap: 0"
ta_enroll a3 "$tok" "  start_timeout: 2s" "concurrency: 2"

# fork_server_of AGENT_PID: the agent's child named outpost-forksrv (ps, top).
fork_server_of() { pgrep -P "$1" -x outpost-forksrv || true; }
# wait_fork_server AGENT_PID [spare]: prints its fork server's PID once there is one (and,
# with "spare", once the idle spare is one it forked).
wait_fork_server() {
  local fs="" i
  for ((i = 0; i < 100; i++)); do
    fs=$(fork_server_of "$1")
    if [ -n "$fs" ] && { [ -z "${2:-}" ] || [ -n "$(pgrep -P "$fs" || true)" ]; }; then
      echo "$fs"
      return 0
    fi
    sleep 0.1
  done
  t_fail "no fork server${2:+ with a spare} under agent $1"
}
# forked_spare AGENT_PID: runs echo tasks until the idle spare is one the fork server forked
# (the first spare is spawned while the fork server starts); prints the fork server's PID.
forked_spare() {
  local fs="" task
  for _ in 1 2 3 4 5; do
    task=$(ta_submit testkit.run '{"action": "echo"}')
    ta_wait_task "$task" succeeded
    sleep 0.3
    fs=$(fork_server_of "$1")
    [ -n "$fs" ] && [ -n "$(pgrep -P "$fs" || true)" ] && break
  done
  wait_fork_server "$1" spare
}

ta_start a1
apid=$(ta_pid a1)
fs=$(forked_spare "$apid")
t_expect_contains "$(tr '\0' ' ' <"/proc/$fs/cmdline")" "outpost-worker --fd 3 testkit"
t_expect_eq outpost-worker "$(ps -o comm= -p "$(pgrep -P "$fs")")" "the forked spare's name"
# rss_anon PID: its private memory in KiB, once it stops growing (a spare prepares its heap).
rss_anon() {
  local prev=-1 now
  for _ in $(seq 20); do
    now=$(awk '/^RssAnon:/ {print $2}' "/proc/$1/status")
    [ "$now" = "$prev" ] && break
    prev=$now
    sleep 0.1
  done
  echo "$now"
}
# new_spare FORK_SERVER OLD_PID: the spare it forked after OLD_PID took a task and ended.
new_spare() {
  local c
  for _ in $(seq 100); do
    c=$(pgrep -P "$1" || true)
    if [ -n "$c" ] && [ "$c" != "$2" ] && ! grep -qw "$2" <<<"$c"; then
      echo "$c"
      return 0
    fi
    sleep 0.1
  done
  t_fail "no new spare under fork server $1 (children: $c)"
}
# --- a spare prepares the heap the plugin's last task used (workers.spare_heap at most): none
#     after small tasks; after one that built a 600 KB result, megabytes; then none again.
#     (ASan's allocator is not glibc's: mallopt does nothing there, and the worker skips this.)
if [ "$OUTPOST_SANITIZE" != 1 ]; then
  spare=$(pgrep -P "$fs")
  kb=$(rss_anon "$spare")
  [ "$kb" -lt 4096 ] || t_fail "after small tasks the spare's private memory is ${kb} KiB"
  task=$(ta_submit testkit.run "$(python3 -c 'import json; print(json.dumps({"action": "echo", "pad": list(range(100000))}))')")
  ta_wait_task "$task" succeeded
  spare=$(new_spare "$fs" "$spare")
  kb=$(rss_anon "$spare")
  [ "$kb" -ge 6144 ] || t_fail "after a task that built megabytes the spare's private memory is ${kb} KiB: its heap is not prepared"
  task=$(ta_submit testkit.run '{"action": "echo"}')
  ta_wait_task "$task" succeeded
  spare=$(new_spare "$fs" "$spare")
  kb=$(rss_anon "$spare")
  [ "$kb" -lt 4096 ] || t_fail "after a small task again the spare's private memory is ${kb} KiB"
fi

# --- a task runs in a worker the fork server forked: its child, leading its own group. With
#     one slot (concurrency 1) its spare is not replaced while it runs, as no task could use
#     the new one; it is once the task is done.
task=$(ta_submit testkit.run '{"action": "sleep", "for": "2s"}')
ta_wait_task "$task" leased
sleep 0.5
w=$(pgrep -P "$fs")
t_expect_eq "$w" "$(ps -o pgid= -p "$w" | tr -d ' ')" "process group of forked worker $w"
t_expect_eq 1 "$(pgrep -P "$fs" | wc -l | tr -d ' ')" "the fork server's children with the only slot busy (the task's)"
ta_wait_task "$task" succeeded
wait_fork_server "$apid" spare >/dev/null

# --- the plugin's environment is what env_allow passes: the LD_BIND_NOW the fork server was
#     started with (so that its children need not bind symbols) is not in it.
task=$(ta_submit testkit.run '{"action": "env", "name": "LD_BIND_NOW"}')
ta_wait_task "$task" succeeded
t_expect_eq '{"value": null}' "$(ta_task "$task" result)" "LD_BIND_NOW in a forked worker"
task=$(ta_submit testkit.run '{"action": "env", "name": "OUTPOST_TEST_MARK"}')
ta_wait_task "$task" succeeded
t_expect_eq "{\"value\": \"$T/agents/a1\"}" "$(ta_task "$task" result)" "an env_allow variable"

# --- a crash in a forked worker: its signal, relayed by the fork server.
# (abort, not segv: ASan turns a SIGSEGV into exit status 1.)
task=$(ta_submit testkit.run '{"action": "abort"}')
ta_wait_task "$task" crashed
t_expect_contains "$(ta_task "$task" error)" "plugin testkit crashed: signal 6 (SIGABRT)"

# --- the fork server dies mid-task: that task fails with the reason; the next one runs, and a
#     fork server is back.
task=$(ta_submit testkit.run '{"action": "sleep", "for": "20s"}')
ta_wait_task "$task" leased
sleep 0.5
kill -KILL "$fs"
ta_wait_task "$task" crashed
t_expect_contains "$(ta_task "$task" error)" \
  "the fork server for plugin testkit ended (signal 9 (SIGKILL)) and took the task's worker with it"
t_expect_contains "$T/agents/a1/agent.log" "the fork server for testkit ended (signal 9 (SIGKILL)); workers are spawned until it is back"
task=$(ta_submit testkit.run '{"action": "echo"}')
ta_wait_task "$task" succeeded
sleep 1.5
task=$(ta_submit testkit.run '{"action": "echo"}')
ta_wait_task "$task" succeeded
fs2=$(wait_fork_server "$apid")
[ "$fs2" != "$fs" ] || t_fail "the fork server was not started again"
# Nothing of the first fork server is left.
for _ in $(seq 50); do t_proc_gone "$fs" && break; sleep 0.1; done
t_proc_gone "$fs" || t_fail "the killed fork server is still there"
kill -TERM "$apid"; ta_wait_exit a1
t_expect_eq 0 "$TA_RC" "exit code"
[ -z "$(t_marked_pids "$T/agents/a1")" ] || t_fail "a worker outlived the agent"

# --- a fork server that stops answering (SIGSTOP) is replaced after workers.start_timeout; the
#     request it did not answer is spawned instead.
ta_start a3
apid=$(ta_pid a3)
fs=$(forked_spare "$apid")
# with a slot free (concurrency 2), the spare a long task took is replaced while it runs
task=$(ta_submit testkit.run '{"action": "sleep", "for": "2s"}')
ta_wait_task "$task" leased
sleep 0.5
t_expect_eq 2 "$(pgrep -P "$fs" | wc -l | tr -d ' ')" "the fork server's children with a slot free (the task's, a spare)"
ta_wait_task "$task" succeeded
kill -STOP "$fs"
task=$(ta_submit testkit.run '{"action": "echo"}') # takes the spare; its successor is asked for
ta_wait_task "$task" succeeded
t_wait_for 10 grep -q "the fork server for testkit did not answer a fork request within 2s (workers.start_timeout)" "$T/agents/a3/agent.log"
task=$(ta_submit testkit.run '{"action": "echo"}')
ta_wait_task "$task" succeeded
for _ in $(seq 50); do t_proc_gone "$fs" && break; sleep 0.1; done
t_proc_gone "$fs" || t_fail "the stopped fork server is still there"
kill -TERM "$apid"; ta_wait_exit a3

# --- workers.fork_server off for the plugin: no fork server; tasks run in spawned workers.
ta_start a2
apid=$(ta_pid a2)
task=$(ta_submit testkit.run '{"action": "echo"}')
ta_wait_task "$task" succeeded
sleep 0.5
[ -z "$(fork_server_of "$apid")" ] || t_fail "a fork server runs with workers.fork_server.testkit: false"
if [ "$OUTPOST_SANITIZE" != 1 ]; then
  kb=$(rss_anon "$(pgrep -P "$apid" -x outpost-worker)")
  [ "$kb" -lt 4096 ] || t_fail "with workers.spare_heap: 0 the spare's private memory is ${kb} KiB"
fi
task=$(ta_submit testkit.run '{"action": "exit"}')
ta_wait_task "$task" crashed
t_expect_contains "$(ta_task "$task" error)" "plugin testkit ended the worker with exit status 3 before finishing the task (it called exit())"

# --- the agent keeps the heap a large result was parsed into while tasks come (no page faults
#     for the next one), and gives it back after 10s without a task.
released="no task for 10s: the heap kept for results goes back to the system"
released_more() { [ "$(grep -c "$released" "$T/agents/a2/agent.log")" -gt "$n0" ]; }
n0=$(grep -c "$released" "$T/agents/a2/agent.log" || true)
task=$(ta_submit testkit.run "$(python3 -c 'import json; print(json.dumps({"action": "echo", "pad": list(range(100000))}))')")
ta_wait_task "$task" succeeded
# (not with a sanitizer's allocator, which keeps its own heap)
if [ "$OUTPOST_SANITIZE" != 1 ]; then
  kept=$(rss_anon "$apid")
  t_wait_for 20 released_more
  kb=$(rss_anon "$apid")
  echo "the agent's private memory: ${kept} KiB with the heap kept, ${kb} KiB after" >&2
  [ $((kept - kb)) -ge 2048 ] || t_fail "the agent's private memory went from ${kept} to ${kb} KiB when it gave its heap back"
  # and with spare_heap: 0 the spare after that large task prepared nothing
  kb=$(rss_anon "$(pgrep -P "$apid" -x outpost-worker)")
  [ "$kb" -lt 4096 ] || t_fail "with workers.spare_heap: 0 the spare after a large task has ${kb} KiB"
fi
kill -TERM "$apid"; ta_wait_exit a2
t_srv_stop
echo ok
