#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ssh plugin timeouts and cancel: the remote command is signalled (TERM, then KILL) and gone
# afterwards; a cancel during the handshake returns at once.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/ssh/fixture.sh"
ssh_fixture_init
sshd_start a
P=$SSHD_PORT
C=$(ssh_conn "$P")
R=$T/remote
mark=$$$RANDOM  # a sleep length no other test uses, to find our remote processes

remote_gone() { ! pgrep -u "$SSH_USER" -f "sleep $1" >/dev/null; }

t_log "per-command timeout: SIGTERM, and the remote command is gone"
ssh_task "$T/t1.json" ssh.exec "$C, \"command\": \"echo started; exec sleep ${mark}1\", \"timeout\": \"1s\""
ssh_run 4 "$T/o1" "$T/t1.json"
t_expect_eq timed_out "$(t_json "$T/o1" .status)"
t_expect_eq "command timed out after 1s (params.timeout): the remote command was stopped with SIGTERM" "$(t_json "$T/o1" .error)"
t_expect_eq started "$(t_json "$T/o1" .result.stdout)" "output before the timeout is kept"
t_expect_eq TERM "$(t_json "$T/o1" .result.signal)"
t_wait_for 5 remote_gone "${mark}1"

t_log "a command that ignores SIGTERM gets SIGKILL"
ssh_task "$T/t2.json" ssh.exec "$C, \"command\": \"trap '' TERM; sleep ${mark}2\", \"timeout\": \"1s\""
ssh_run 4 "$T/o2" "$T/t2.json"
t_expect_eq "command timed out after 1s (params.timeout): the remote command was stopped with SIGKILL" "$(t_json "$T/o2" .error)"
t_wait_for 5 remote_gone "${mark}2"

t_log "timeout of the second command of a list"
ssh_task "$T/t3.json" ssh.exec "$C, \"commands\": [\"true\", \"sleep ${mark}3\"], \"timeout\": \"1s\""
ssh_run 4 "$T/o3" "$T/t3.json"
t_expect_eq "command 2 of 2 timed out after 1s (params.timeout): the remote command was stopped with SIGTERM" "$(t_json "$T/o3" .error)"
t_wait_for 5 remote_gone "${mark}3"

t_log "cancel (SIGINT to plugin run) while the command runs"
ssh_task "$T/t4.json" ssh.exec "$C, \"command\": \"echo \$\$ > $R/pid4; exec sleep ${mark}4\""
"$OUTPOST_AGENT" plugin run --task "$T/t4.json" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
  --secrets "$T/secrets.yaml" --config "$T/agent.yaml" --workspace "$T/ws" >"$T/o4" 2>"$T/o4.log" &
runner=$!
t_track "$runner"
t_wait_for 10 test -s "$R/pid4"
t0=$(date +%s%N)
kill -INT "$runner"
rc=0; wait "$runner" || rc=$?
t1=$(date +%s%N)
t_expect_eq 1 "$rc" "exit code of a cancelled run"
t_expect_eq cancelled "$(t_json "$T/o4" .status)"
t_expect_eq "cancelled: the remote command was stopped with SIGTERM" "$(t_json "$T/o4" .error)"
[ $(( (t1 - t0) / 1000000 )) -lt 3000 ] || t_fail "cancel took $(( (t1 - t0) / 1000000 )) ms"
t_wait_for 5 remote_gone "${mark}4"

t_log "the task's own deadline stops the remote command too"
ssh_task "$T/t5.json" ssh.exec "$C, \"command\": \"sleep ${mark}5\"" 2s
ssh_run 4 "$T/o5" "$T/t5.json"
t_expect_eq timed_out "$(t_json "$T/o5" .status)"
t_wait_for 5 remote_gone "${mark}5"

t_log "cancel during a handshake that hangs returns at once"
kill -STOP "$SSHD_PID_a"
ssh_task "$T/t6.json" ssh.exec "$C, \"command\": \"true\""
"$OUTPOST_AGENT" plugin run --task "$T/t6.json" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
  --secrets "$T/secrets.yaml" --config "$T/agent.yaml" --workspace "$T/ws" >"$T/o6" 2>"$T/o6.log" &
runner=$!
t_track "$runner"
# Wait until the plugin is connected (the kernel accepts for the stopped sshd) and waits for
# the server's banner.
established() { ss -Htn state established "( dport = :$P )" | grep -q .; }
t_wait_for 20 established
sleep 0.3
t0=$(date +%s%N)
kill -INT "$runner"
rc=0; wait "$runner" || rc=$?
t1=$(date +%s%N)
kill -CONT "$SSHD_PID_a"
t_expect_eq 1 "$rc"
t_expect_eq cancelled "$(t_json "$T/o6" .status)"
t_expect_eq "cancelled during the SSH handshake with 127.0.0.1:$P" "$(t_json "$T/o6" .error)"
[ $(( (t1 - t0) / 1000000 )) -lt 2000 ] || t_fail "cancel took $(( (t1 - t0) / 1000000 )) ms"

t_log "connect_timeout bounds a handshake that hangs"
kill -STOP "$SSHD_PID_a"
ssh_task "$T/t7.json" ssh.exec "$C, \"command\": \"true\", \"connect_timeout\": \"1s\""
ssh_run 1 "$T/o7" "$T/t7.json"
kill -CONT "$SSHD_PID_a"
t_expect_eq "SSH handshake with 127.0.0.1:$P timed out after 1s: the port accepted the connection but no SSH server answered in time (params.connect_timeout)" "$(t_json "$T/o7" .error)"
