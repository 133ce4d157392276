#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Local commands end with their whole process group: a step's own timeout (then rollback
# runs), a cancelled task (no rollback: the change stops where it is), and a command that
# leaves a daemon holding its output (the step still ends).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/change/lib.sh"

ch_type slow <<'EOF'
name: slow
description: a step that takes too long
params:
  secs: {type: integer, default: 4242}
apply:
  - name: sleepy
    shell: true
    exec: 'sleep "$PARAM_SECS" & sleep "$PARAM_SECS"; echo never'
    timeout: 1s
  - name: after
    exec: [echo, after]
rollback:
  - name: undo
    exec: [echo, undone]
EOF
gone() { ! pgrep -f "sleep $1" >/dev/null; }

# --- a step's timeout stops its process group (the background sleep too) and fails the step.
start=$(date +%s)
ch_apply 1 timeout slow '{"secs": 4242}'
[ $(( $(date +%s) - start )) -le 8 ] || t_fail "the timed-out step was not stopped promptly"
t_expect_eq "apply step 1 (sleepy) failed: timed out after 1s: its process group was stopped; rolled back (1 rollback step ran)" "$(t_json "$R" .error)"
t_expect_contains "$T/timeout.err" "WARN task: apply step 1 (sleepy): timed out after 1s: stopping its process group"
t_wait_for 5 gone 4242

# --- cancel (SIGINT to plugin run, as the agent's SIGTERM to the worker): the command's group
# is stopped, the change stops where it is and is not rolled back.
sed -i 's/    timeout: 1s//' "$CH_TYPES/slow.yaml"
digest=$(ch_digest slow)
python3 "$CH_SRC/sign.py" --key "$T/keys/approval.key" --type slow --digest "$digest" \
  --params '{"secs": 4343}' --target "$CH_AGENT_ID" --out "$T/cancel.task.json" --timeout 60s
"$OUTPOST_AGENT" plugin run --task "$T/cancel.task.json" --plugins-dir "$CH_P" --config "$CH_CFG" \
  >"$T/cancel.json" 2>"$T/cancel.err" &
pid=$!
t_track $pid
t_wait_for 10 pgrep -f "sleep 4343"
kill -INT $pid
start=$(date +%s)
wait $pid || true
[ $(( $(date +%s) - start )) -le 5 ] || t_fail "the cancelled change did not stop promptly"
t_expect_eq cancelled "$(t_json "$T/cancel.json" .status)"
t_expect_eq cancelled "$(t_json "$T/cancel.json" .result.outcome)"
t_expect_eq "apply step 1 (sleepy): cancelled: its process group was stopped: the change is incomplete and was not rolled back" "$(t_json "$T/cancel.json" .error)"
t_expect_not_contains "$T/cancel.err" "rollback step"
t_wait_for 5 gone 4343

# --- a command that starts a daemon holding its output open still ends its step.
ch_type daemon <<'EOF'
name: daemon
description: leaves a process behind
apply:
  - name: start it
    shell: true
    exec: 'setsid sleep 4444 & echo started'
  - name: next
    exec: [echo, next]
EOF
start=$(date +%s)
ch_apply 0 daemon daemon '{}'
[ $(( $(date +%s) - start )) -le 8 ] || t_fail "the step waited for the daemon"
t_expect_contains "$T/daemon.err" "WARN task: apply step 1 (start it): the command exited but something it started still holds its output open: no longer reading it"
pkill -f "sleep 4444" || true
echo ok
