#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# change.apply through `plugin run` with signed approvals: argv and shell steps, what a
# command sees (argv, env, stdin), records and the result, precheck/apply/verify failures and
# rollback, the resume and rollback actions, attempts, expect, when, exit codes, dry runs,
# rendering errors, and params that try to become shell code.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/change/lib.sh"

ch_type ops <<'EOF'
name: ops
description: exercises every kind of step
params:
  who: {type: string, required: true}
  list: {type: array, items: {type: string}, default: [a, "b c"]}
  n: {type: integer, default: 3}
  fail_at: {type: string, default: none, enum: [none, precheck, apply, verify, rollback]}
  optional: {type: string}
precheck:
  - name: precheck
    shell: true
    exec: test "$PARAM_FAIL_AT" != precheck
apply:
  - name: argv
    exec: [printf, "%s|", "hello {{ params.who }}", "{{ params.list }}", "{{ params.n }}", "{{ cr.id }}", "{{ agent.id }}", "{{ agent.hostname }}"]
  - name: env and stdin
    shell: true
    stdin: "in: {{ params.who }}"
    env: {GREETING: "hi {{ params.who }}"}
    exec: |
      { cat; echo
        echo "$GREETING|$PARAM_WHO|$PARAM_LIST|$PARAM_N|$OUTPOST_CR_ID|$OUTPOST_CHANGE_TYPE|$OUTPOST_ACTION|$OUTPOST_PHASE|$OUTPOST_STEP"
      } > "$OUTPOST_CR_DIR/seen"
      env | sort > "$OUTPOST_CR_DIR/env"
  - name: write marker
    exec: [touch, "{{ cr.dir }}/applied"]
  - name: apply fails
    shell: true
    exec: test "$PARAM_FAIL_AT" != apply
  - name: optional only
    when: params.optional
    exec: [echo, "{{ params.optional }}"]
verify:
  - name: expect stdout
    exec: [echo, "version=42"]
    expect:
      - {result: stdout, matches: "^version=42"}
      - {result: exit_code, equals: 0}
  - name: verify fails
    shell: true
    exec: test "$PARAM_FAIL_AT" != verify
rollback:
  - name: undo
    exec: [rm, -f, "{{ cr.dir }}/applied"]
  - name: rollback fails
    shell: true
    exec: test "$PARAM_FAIL_AT" != rollback
EOF
CRDIR=$T/agent/state/changes/cr_test1
OK='{"who": "Ada"}'

# --- the happy path: every step in order, each recorded at its start and end.
ch_apply 0 ok ops "$OK"
t_expect_eq succeeded "$(t_json "$R" .result.outcome)"
t_expect_eq "1 precheck precheck ok
2 apply argv ok
3 apply env and stdin ok
4 apply write marker ok
5 apply apply fails ok
6 apply optional only skipped
7 verify expect stdout ok
8 verify verify fails ok" "$(ch_steps "$R")"
t_expect_eq 'in: Ada
hi Ada|Ada|["a","b c"]|3|cr_test1|ops|apply|apply|env and stdin' "$(cat "$CRDIR/seen")" "what the shell step saw"
t_expect_contains "$T/ok.err" "INFO task: apply step 2 (argv): printf '%s|' 'hello Ada' a 'b c' 3 cr_test1 $CH_AGENT_ID $CH_HOST"
t_expect_contains "$T/ok.err" "INFO task: apply step 6 (optional only): skipped: when: params.optional (it is not set)"
# cr.dir: the per change request directory beside the agent's state, 0700
[ -f "$CRDIR/applied" ] || t_fail "the marker was not written in $CRDIR"
t_expect_eq 700 "$(stat -c %a "$CRDIR")" "mode of the change request directory"
# the command's environment: PATH, OUTPOST_*, PARAM_*, the step's env; nothing of the agent's
t_expect_eq "GREETING OUTPOST_ACTION OUTPOST_CHANGE_TYPE OUTPOST_CR_DIR OUTPOST_CR_ID OUTPOST_PHASE OUTPOST_STEP OUTPOST_WORKSPACE PARAM_DRY_RUN PARAM_FAIL_AT PARAM_LIST PARAM_N PARAM_WHO PATH PWD" \
  "$(cut -d= -f1 "$CRDIR/env" | tr '\n' ' ' | sed 's/ $//')"
t_expect_contains "$CRDIR/env" "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# records: start and end of each step that ran, one end for the skipped one, in order
ch_records "$R" >"$T/ok.records"
t_expect_eq 15 "$(wc -l <"$T/ok.records")" "records"
python3 - "$R" <<'PY'
import hashlib, json, sys
out = json.load(open(sys.argv[1]))
recs = out["records"]
assert [(r["index"], r["event"]) for r in recs[:4]] == [(1, "start"), (1, "end"), (2, "start"), (2, "end")], recs[:4]
start, end = recs[2], recs[3]
assert start == {"index": 2, "phase": "apply", "name": "argv", "event": "start", "action": "apply",
                 "kind": "exec", "at": start["at"]}, start
want = hashlib.sha256(b"hello Ada|a|b c|3|cr_test1|agt_ChangeTest000001|change-host|").hexdigest()
assert end["output"] == {"sha256": "sha256:" + want, "bytes": 60}, end
assert end["exit_code"] == 0 and end["status"] == "ok" and end["attempts"] == 1, end
assert end["started_at"] == start["at"] and end["duration"] >= 0, end
skipped = [r for r in recs if r["index"] == 6]
assert skipped == [{"index": 6, "phase": "apply", "name": "optional only", "event": "end", "action": "apply",
                    "status": "skipped", "reason": "when: params.optional (it is not set)", "at": skipped[0]["at"]}], skipped
steps = out["result"]["steps"]
assert "event" not in steps[1] and steps[1]["output"] == end["output"], steps[1]
assert out["result"]["digest"].startswith("sha256:") and out["result"]["dry_run"] is False
PY

# --- verify fails: rollback runs, the task fails with both in its message.
ch_apply 1 verify ops '{"who": "Ada", "fail_at": "verify"}'
t_expect_eq rolled_back "$(t_json "$R" .result.outcome)"
t_expect_eq "verify step 8 (verify fails) failed: exit status 1; rolled back (2 rollback steps ran)" "$(t_json "$R" .error)"
t_expect_eq "9 rollback undo ok" "$(ch_steps "$R" | grep '^9 ')"
[ ! -e "$CRDIR/applied" ] || t_fail "rollback did not remove the marker"
t_expect_contains "$T/verify.err" "WARN task: verify step 8 (verify fails) failed: exit status 1: rolling back"

# --- apply fails: the rest of apply and verify do not run; rollback does.
ch_apply 1 apply ops '{"who": "Ada", "fail_at": "apply"}'
t_expect_eq "apply step 5 (apply fails) failed: exit status 1; rolled back (2 rollback steps ran)" "$(t_json "$R" .error)"
t_expect_eq "1 2 3 4 5 9 10" "$(ch_steps "$R" | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $//')"

# --- precheck fails: nothing else runs, nothing is rolled back.
rm -rf "$CRDIR"
ch_apply 1 precheck ops '{"who": "Ada", "fail_at": "precheck"}'
t_expect_eq precheck_failed "$(t_json "$R" .result.outcome)"
t_expect_eq "precheck step 1 (precheck) failed: exit status 1: nothing was changed" "$(t_json "$R" .error)"
t_expect_eq "1 precheck precheck failed" "$(ch_steps "$R")"

# --- the rollback action (after a lost lease, an operator chose it): rollback steps only.
ch_apply 0 rb ops "$OK" --action rollback
t_expect_eq rolled_back "$(t_json "$R" .result.outcome)"
t_expect_eq "9 rollback undo ok
10 rollback rollback fails ok" "$(ch_steps "$R")"
t_expect_eq rollback "$(t_json "$R" .records[0].action)"
ch_apply 1 rbfail ops '{"who": "Ada", "fail_at": "rollback"}' --action rollback
t_expect_eq rollback_failed "$(t_json "$R" .result.outcome)"
t_expect_eq "rollback: rollback step 10 (rollback fails) failed: exit status 1: the host needs attention" "$(t_json "$R" .error)"
# a rollback skips the rollback steps an earlier rollback finished
ch_apply 0 rb2 ops "$OK" --action rollback --steps '[{"index": 9, "phase": "rollback", "name": "undo", "event": "end", "action": "rollback", "status": "ok"}]'
t_expect_eq "9 rollback undo skipped
10 rollback rollback fails ok" "$(ch_steps "$R")"

# --- resume: steps an earlier attempt recorded as done are skipped; one that started but has
# no end runs again.
ch_apply 0 resume ops "$OK" --action resume --steps '[
 {"index": 1, "phase": "precheck", "name": "precheck", "event": "end", "action": "apply", "status": "ok"},
 {"index": 2, "phase": "apply", "name": "argv", "event": "start", "action": "apply"},
 {"index": 2, "phase": "apply", "name": "argv", "event": "end", "action": "apply", "status": "ok"},
 {"index": 3, "phase": "apply", "name": "env and stdin", "event": "start", "action": "apply"}]'
t_expect_eq "1 precheck precheck skipped
2 apply argv skipped
3 apply env and stdin ok" "$(ch_steps "$R" | head -n 3)"
t_expect_contains "$T/resume.err" "INFO task: apply step 2 (argv): done in an earlier attempt, skipped"
t_expect_eq "recorded as done by an earlier attempt" "$(t_json "$R" .result.steps[0].reason)"
t_expect_eq resume "$(t_json "$R" .records[0].action)"

# --- dry run: every step of every phase rendered and checked; nothing runs, no directory.
rm -rf "$CRDIR"
ch_apply 0 dry ops '{"who": "Ada", "dry_run": true}'
t_expect_eq dry_run "$(t_json "$R" .result.outcome)"
t_expect_eq true "$(t_json "$R" .result.dry_run)"
[ ! -e "$CRDIR" ] || t_fail "a dry run created $CRDIR"
t_expect_eq 10 "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["records"]))' "$R")"
t_expect_eq '["printf", "%s|", "hello Ada", "a", "b c", "3", "cr_test1", "agt_ChangeTest000001", "change-host"]' "$(t_json "$R" .result.steps[1].would_run.argv)"
t_expect_eq '{"GREETING": "hi Ada"}' "$(t_json "$R" .result.steps[2].would_run.env)"
t_expect_eq dry_run "$(t_json "$R" .records[9].event)"
t_expect_eq "rm" "$(t_json "$R" .records[8].would_run.argv[0])"
t_expect_not_contains "$T/dry.err" "hello Ada|"
t_expect_contains "$T/dry.err" "INFO task: apply step 2 (argv): would run printf"
# a dry run finds a command that is not there
ch_type missing <<'EOF'
name: missing
description: calls a command that is not installed
params:
  cmd: {type: string, default: no-such-command-xyz}
apply:
  - {name: first, exec: [true]}
  - {name: x, exec: ["{{ params.cmd }}", --version]}
  - {name: y, exec: [/no/such/file]}
EOF
ch_apply 1 drybad missing '{"dry_run": true}'
t_expect_eq invalid "$(t_json "$R" .result.outcome)"
t_expect_eq "dry run: apply step 2 (x): exec: no-such-command-xyz: command not found in PATH" "$(t_json "$R" .error)"
t_expect_eq "exec: /no/such/file: no such executable file" "$(t_json "$R" .result.steps[2].error)"
ch_apply 1 runbad missing '{}'
t_expect_eq "apply step 2 (x) failed: no-such-command-xyz: command not found (PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin); change type missing has no rollback steps" "$(t_json "$R" .error)"

# --- rendering: an optional param that is not given, a list inside text.
ch_type render <<'EOF'
name: render
description: rendering errors
params:
  optional: {type: string}
  list: {type: array, default: [a, b]}
  where: {type: string, default: text}
apply:
  - name: list whole
    exec: [echo, "{{ params.list }}"]
  - name: optional
    when: not params.list
    exec: [echo, "{{ params.optional }}"]
  - name: text
    exec: [echo, "x{{ params.list }}"]
    when: params.where
EOF
ch_apply 1 render render '{}'
t_expect_eq "apply step 3 (text) failed: {{ params.list }} is a list: it can only stand alone as a whole value, not inside text; change type render has no rollback steps" "$(t_json "$R" .error)"
t_expect_contains "$T/render.err" "apply step 1 (list whole): echo a b"
ch_apply 1 render2 render '{"list": [], "where": ""}'
t_expect_eq "apply step 2 (optional) failed: {{ params.optional }} has no value (the parameter is optional and was not given): guard the step with \`when: params.optional\`; change type render has no rollback steps" "$(t_json "$R" .error)"
t_expect_eq failed "$(t_json "$R" .records[2].status)" "a step that cannot render is recorded as failed"

# --- attempts and interval, expect, exit codes, continue_on_error.
ch_type retry <<'EOF'
name: retry
description: retries, checks, codes
params:
  succeed_on: {type: integer, default: 3}
  version: {type: string, default: "42"}
apply:
  - name: third time
    shell: true
    exec: |
      n=$(cat "$OUTPOST_CR_DIR/count" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$OUTPOST_CR_DIR/count"
      echo "attempt $n"; [ "$n" -ge "$PARAM_SUCCEED_ON" ]
    attempts: 5
    interval: 100ms
  - name: exit three is fine
    exec: [sh, -c, "exit 3"]
    exit_codes: [0, 3]
  - name: may fail
    exec: ["false"]
    continue_on_error: true
verify:
  - name: version
    exec: [echo, "version={{ params.version }}"]
    expect:
      - result: stdout
        matches: "^version=42$"
EOF
rm -rf "$CRDIR"
ch_apply 0 retry retry '{}'
t_expect_eq 3 "$(t_json "$R" .result.steps[0].attempts)"
t_expect_contains "$T/retry.err" "INFO task: apply step 1 (third time): attempt 1 of 5 failed: exit status 1: attempt 1; again in 0.1s"
t_expect_eq 3 "$(t_json "$R" .result.steps[1].exit_code)"
t_expect_eq failed "$(t_json "$R" .result.steps[2].status)"
t_expect_contains "$T/retry.err" "WARN task: apply step 3 (may fail) failed; continuing (continue_on_error)"
rm -rf "$CRDIR"
ch_apply 1 expect retry '{"succeed_on": 1, "version": "41"}'
t_expect_eq 'verify step 4 (version) failed: expect: result.stdout is "version=41\n", expected a match for "^version=42$"; change type retry has no rollback steps' "$(t_json "$R" .error)"
rm -rf "$CRDIR"
ch_apply 1 attempts retry '{"succeed_on": 9}'
t_expect_eq "apply step 1 (third time) failed: exit status 1: attempt 5; change type retry has no rollback steps" "$(t_json "$R" .error)"
t_expect_eq 5 "$(t_json "$R" .result.steps[0].attempts)"

# --- params never become shell code: not through argv, not through the environment.
EVIL='$(touch '"$T"'/pwned1); `touch '"$T"'/pwned2`; touch '"$T"'/pwned3'
ch_apply 0 evil ops "$(python3 -c 'import json,sys; print(json.dumps({"who": sys.argv[1]}))' "$EVIL")"
for f in pwned1 pwned2 pwned3; do [ ! -e "$T/$f" ] || t_fail "a parameter ran as shell code ($f)"; done
t_expect_eq "hi $EVIL|$EVIL|" "$(sed -n 2p "$CRDIR/seen" | cut -d'|' -f1,2)|" "the parameter as the shell saw it"
t_expect_eq "sha256:$(printf '%s' "hello $EVIL|a|b c|3|cr_test1|$CH_AGENT_ID|$CH_HOST|" | sha256sum | cut -d' ' -f1)" \
  "$(t_json "$R" .result.steps[1].output.sha256)" "the parameter as argv carried it"

# --- change.apply's own params are checked by its schema first (exit 2, nothing runs).
printf '{"type": "change.apply", "params": {"cr_id": "x y", "change_type": "ops", "params": {}}}\n' >"$T/badp.json"
t_run 2 "$T/badp.out" "$OUTPOST_AGENT" plugin run --task "$T/badp.json" --plugins-dir "$CH_P" --config "$CH_CFG"
t_expect_contains "$T/badp.out" 'params.cr_id: does not match pattern'
printf '{"type": "change.apply", "params": {"cr_id": "cr_1", "change_type": "ops"}}\n' >"$T/badp.json"
t_run 2 "$T/badp.out" "$OUTPOST_AGENT" plugin run --task "$T/badp.json" --plugins-dir "$CH_P" --config "$CH_CFG"
t_expect_contains "$T/badp.out" 'params.params: required'
echo ok
