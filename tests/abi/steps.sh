#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ABI 1.1 steps: a plugin runs another plugin's task through the host (its own worker, its
# log in the caller's log, its outcome back); a step cannot run steps; cancel reaches it.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
P=$T/plugins
t_plugin_dir "$P" testkit template old_minor
A=$OUTPOST_AGENT
cat >"$T/mark.yaml" <<YAML
plugins:
  config:
    testkit: {env_allow: [OUTPOST_TEST_MARK]}
    template: {env_allow: [OUTPOST_TEST_MARK]}
YAML
export OUTPOST_TEST_MARK=$T

t_task "$T/t.json" testkit.run '{"action": "call", "type": "template.echo", "params": {"name": "Ada", "times": 2}}'
"$A" plugin run --task "$T/t.json" --plugins-dir "$P" >"$T/o.json" 2>"$T/o.err" || { cat "$T/o.err" >&2; t_fail "the step task failed"; }
t_expect_eq true "$(t_json "$T/o.json" .result.step.started)"
t_expect_eq succeeded "$(t_json "$T/o.json" .result.step.status)"
t_expect_eq Ada "$(t_json "$T/o.json" .result.step.result.greeting)"
t_expect_contains "$T/o.err" "INFO task: [template.echo] hello, Ada"

# The step's own params are checked by its plugin's schema.
t_task "$T/t.json" testkit.run '{"action": "call", "type": "template.echo", "params": {"nmae": "x"}}'
"$A" plugin run --task "$T/t.json" --plugins-dir "$P" >"$T/o.json" 2>/dev/null || t_fail "a failed step fails the caller only if it says so"
t_expect_eq invalid "$(t_json "$T/o.json" .result.step.status)"
t_expect_eq "params.name: required" "$(t_json "$T/o.json" .result.step.error)"

# Unknown type, and a step that tries to run a step.
t_task "$T/t.json" testkit.run '{"action": "call", "type": "nosuch.run", "params": {}}'
t_run 1 "$T/o" "$A" plugin run --task "$T/t.json" --plugins-dir "$P"
t_expect_contains "$T/o" "step nosuch.run could not start: no enabled plugin on this agent serves task type nosuch.run"
t_task "$T/t.json" testkit.run '{"action": "call", "type": "testkit.run", "params": {"action": "call", "type": "template.echo", "params": {"name": "x"}}}'
"$A" plugin run --task "$T/t.json" --plugins-dir "$P" >"$T/o.json" 2>/dev/null || t_fail "nested call"
t_expect_eq failed "$(t_json "$T/o.json" .result.step.status)"
t_expect_eq "step template.echo could not start: a step cannot run steps of its own" "$(t_json "$T/o.json" .result.step.error)"

# Records (ABI 1.1): in order, on stderr and in the outcome.
t_task "$T/t.json" testkit.run '{"action": "record", "count": 3}'
"$A" plugin run --task "$T/t.json" --plugins-dir "$P" >"$T/r.json" 2>"$T/r.err" || t_fail "records"
t_expect_eq 2 "$(t_json "$T/r.json" .records[2].index)"
t_expect_contains "$T/r.err" 'RECORD {"index":0,"phase":"end"}'

# A plugin built for ABI 1.0 (no call in its host table) still loads and runs.
t_task "$T/t.json" old_minor.run '{}'
t_run 0 "$T/o" "$A" plugin run --task "$T/t.json" --plugins-dir "$P"

# Cancel (SIGINT) reaches a running step.
t_task "$T/t.json" testkit.run '{"action": "call", "type": "testkit.run", "params": {"action": "sleep", "for": "30s"}}' 60s
"$A" plugin run --task "$T/t.json" --plugins-dir "$P" --config "$T/mark.yaml" >"$T/c.json" 2>"$T/c.err" &
pid=$!
sleep 1
kill -INT $pid
start=$(date +%s)
wait $pid || true
[ $(( $(date +%s) - start )) -le 5 ] || t_fail "the cancelled step did not stop promptly"
t_expect_eq cancelled "$(t_json "$T/c.json" .result.step.status)"
[ -z "$(t_marked_pids)" ] || t_fail "a worker survived the cancel: $(t_marked_pids)"
echo ok
