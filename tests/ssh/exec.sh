#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ssh.exec against a real sshd: output, exit codes, signals, env, cwd, stdin, pty, lists.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/ssh/fixture.sh"
ssh_fixture_init
sshd_start a
P=$SSHD_PORT
C=$(ssh_conn "$P")

t_log "one command: stdout, stderr, exit code"
ssh_task "$T/t1.json" ssh.exec "$C, \"command\": \"echo hello; echo oops >&2; id -un\""
ssh_run 0 "$T/o1" "$T/t1.json"
t_expect_eq succeeded "$(t_json "$T/o1" .status)"
t_expect_eq "$(printf 'hello\n%s' "$SSH_USER")" "$(t_json "$T/o1" .result.stdout)" stdout
t_expect_eq "oops" "$(t_json "$T/o1" .result.stderr)" stderr
t_expect_eq 0 "$(t_json "$T/o1" .result.exit_code)" exit_code
t_expect_eq 127.0.0.1 "$(t_json "$T/o1" .result.host)" host
t_expect_contains "$T/o1.log" "hello"   # streamed to the task log
t_expect_contains "$T/o1.log" "oops"

t_log "an exit code that is not accepted fails the task with the last stderr line"
ssh_task "$T/t2.json" ssh.exec "$C, \"command\": \"echo first >&2; echo 'no such thing' >&2; exit 3\""
ssh_run 1 "$T/o2" "$T/t2.json"
t_expect_eq failed "$(t_json "$T/o2" .status)"
t_expect_eq "command exited with status 3 (accepted: 0); stderr: no such thing" "$(t_json "$T/o2" .error)"
t_expect_eq 3 "$(t_json "$T/o2" .result.exit_code)" "result kept on failure"

t_log "accept_exit_codes"
ssh_task "$T/t3.json" ssh.exec "$C, \"command\": \"exit 3\", \"accept_exit_codes\": [0, 3]"
ssh_run 0 "$T/o3" "$T/t3.json"
t_expect_eq 3 "$(t_json "$T/o3" .result.exit_code)"

t_log "a command killed by a signal"
ssh_task "$T/t4.json" ssh.exec "$C, \"command\": \"kill -KILL \$\$\""
ssh_run 1 "$T/o4" "$T/t4.json"
t_expect_eq "command was killed by signal KILL" "$(t_json "$T/o4" .error)"
t_expect_eq KILL "$(t_json "$T/o4" .result.signal)"
t_expect_eq "" "$(t_json "$T/o4" .result.exit_code)" "no exit code with a signal"

t_log "env (quoted safely), cwd and stdin"
ssh_task "$T/t5.json" ssh.exec "$C, \"command\": \"printf '%s|%s|' \\\"\$GREETING\\\" \\\"\$(pwd)\\\"; cat\", \"env\": {\"GREETING\": \"it's \$HOME; \`x\`\"}, \"cwd\": \"/tmp\", \"stdin\": \"from stdin\""
ssh_run 0 "$T/o5" "$T/t5.json"
t_expect_eq "it's \$HOME; \`x\`|/tmp|from stdin" "$(t_json "$T/o5" .result.stdout)"

t_log "a cwd that does not exist"
ssh_task "$T/t5b.json" ssh.exec "$C, \"command\": \"true\", \"cwd\": \"/nonexistent-dir\""
ssh_run 1 "$T/o5b" "$T/t5b.json"
t_expect_contains "$(t_json "$T/o5b" .error)" "command exited with status 1 (accepted: 0); stderr: "
t_expect_contains "$(t_json "$T/o5b" .error)" "/nonexistent-dir"

t_log "no stdin: the command sees end of file at once"
ssh_task "$T/t6.json" ssh.exec "$C, \"command\": \"cat; echo done\""
ssh_run 0 "$T/o6" "$T/t6.json"
t_expect_eq done "$(t_json "$T/o6" .result.stdout)"

t_log "pty merges stderr into stdout and gives a terminal"
ssh_task "$T/t7.json" ssh.exec "$C, \"command\": \"test -t 1 && echo tty; echo e >&2\", \"pty\": true"
ssh_run 0 "$T/o7" "$T/t7.json"
t_expect_contains "$(t_json "$T/o7" .result.stdout)" "tty"
t_expect_contains "$(t_json "$T/o7" .result.stdout)" "e"

t_log "commands: one session, a channel each, stop at the first failure"
ssh_task "$T/t8.json" ssh.exec "$C, \"commands\": [\"echo one\", \"exit 4\", \"echo three\"]"
ssh_run 1 "$T/o8" "$T/t8.json"
t_expect_eq "command 2 of 3 exited with status 4 (accepted: 0)" "$(t_json "$T/o8" .error)"
t_expect_eq 2 "$(t_json "$T/o8" .result.ran)"
t_expect_eq 1 "$(t_json "$T/o8" .result.failed)"
t_expect_eq "echo one" "$(t_json "$T/o8" .result.commands[0].command)"
t_expect_eq one "$(t_json "$T/o8" .result.commands[0].stdout)"
t_expect_contains "$T/o8.log" '[1/3] $ echo one'

t_log "commands with stop_on_error false run them all"
ssh_task "$T/t9.json" ssh.exec "$C, \"commands\": [\"echo one\", \"exit 4\", \"echo three\"], \"stop_on_error\": false"
ssh_run 1 "$T/o9" "$T/t9.json"
t_expect_eq 3 "$(t_json "$T/o9" .result.ran)"
t_expect_eq three "$(t_json "$T/o9" .result.commands[2].stdout)"

t_log "large output: streamed in full, captured up to capture_limit"
ssh_task "$T/t10.json" ssh.exec "$C, \"command\": \"head -c 3000000 /dev/zero | tr '\\\\0' x; echo; echo tail\", \"capture_limit\": \"1KiB\""
ssh_run 0 "$T/o10" "$T/t10.json"
t_expect_eq 3000006 "$(t_json "$T/o10" .result.stdout_bytes)"
t_expect_eq true "$(t_json "$T/o10" .result.stdout_truncated)"
out=$(t_json "$T/o10" .result.stdout)
t_expect_eq 1024 "${#out}" "captured length"
t_expect_contains "$T/o10.log" "tail"
[ "$(stat -c %s "$T/o10.log")" -gt 3000000 ] || t_fail "the whole output should reach the task log"

t_log "output that is not UTF-8 stays valid JSON"
ssh_task "$T/t11.json" ssh.exec "$C, \"command\": \"printf 'a\\\\377b'\""
ssh_run 0 "$T/o11" "$T/t11.json"
t_expect_eq "a�b" "$(t_json "$T/o11" .result.stdout)"

t_log "the connection drops while a command runs"
ssh_task "$T/t12.json" ssh.exec "$C, \"command\": \"echo \$\$ > $T/remote/pid12; exec sleep 120\""
"$OUTPOST_AGENT" plugin run --task "$T/t12.json" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
  --secrets "$T/secrets.yaml" --config "$T/agent.yaml" --workspace "$T/ws" >"$T/o12" 2>"$T/o12.log" &
runner=$!
t_track "$runner"
t_wait_for 10 test -s "$T/remote/pid12"
# Kill the sshd processes serving this connection (the listener's children and theirs), by PID.
for p in $(pgrep -P "$SSHD_PID_a"); do
  kill -KILL "$p" $(pgrep -P "$p") 2>/dev/null || true
done
rc=0; wait "$runner" || rc=$?
kill -KILL "$(cat "$T/remote/pid12")" 2>/dev/null || true
t_expect_eq 1 "$rc"
t_expect_contains "$(t_json "$T/o12" .error)" "the connection to $SSH_USER@127.0.0.1:$P was lost while the command ran"
