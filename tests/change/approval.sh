#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The change plugin checks the approval itself (defense in depth, decisions.md 14), whatever
# the agent core already checked: every refusal through `plugin run`, with its exact reason,
# nothing run, and a "refused" record.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/change/lib.sh"

ch_type touch <<'EOF'
name: touch
description: touches a file
params:
  path: {type: string, required: true, pattern: "^/"}
apply:
  - name: touch
    exec: [touch, "{{ params.path }}"]
EOF
P1="{\"path\": \"$T/touched\"}"
REF="change request cr_test1 refused:"

# refused RC NAME MESSAGE [sign.py args...]: the task fails with MESSAGE, runs nothing, records
# why.
refused() {
  local name=$1 msg=$2
  shift 2
  rm -f "$T/touched"
  ch_apply 1 "$name" touch "$P1" "$@"
  t_expect_eq "$REF $msg" "$(t_json "$R" .error)" "$name"
  t_expect_eq refused "$(t_json "$R" .result.outcome)" "$name: outcome"
  t_expect_eq refused "$(t_json "$R" .records[0].event)" "$name: record"
  t_expect_eq "$msg" "$(t_json "$R" .records[0].reason)" "$name: recorded reason"
  [ ! -e "$T/touched" ] || t_fail "$name: a refused change ran"
}

# the signed approval, as the agent passes it, runs
ch_apply 0 good touch "$P1"
[ -e "$T/touched" ] || t_fail "the approved change did not run"

refused target "change request cr_test1 targets agent agt_SomeoneElse00001, but this is agent $CH_AGENT_ID ($CH_HOST): it runs only on its target" \
  --target agt_SomeoneElse00001
refused tampered "the approval signature does not verify with $T/agent/state/approval.pem: the change request was altered after approval, or approved by another control plane" \
  --tamper
refused otherkey "the approval signature does not verify with $T/agent/state/approval.pem: the change request was altered after approval, or approved by another control plane" \
  --key "$T/keys/rogue.key"
# an approval past its not_after (the time is read back from the task written)
ch_apply 1 expired touch "$P1" --valid -60
na=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["params"]["change_request"]["payload"]["not_after"])' "$T/expired.task.json")
t_expect_eq "$REF the approval expired at $na: approve the change again" "$(t_json "$R" .error)"
refused params "the task's parameters differ from the approved ones" \
  --task-params "{\"path\": \"$T/other\"}"
refused digest "the definition of change type touch on this agent ($CH_TYPES/touch.yaml, $(ch_digest touch)) is not the one that was approved (sha256:0000): it changed since; create a new change request" \
  --digest sha256:0000
refused noapprovers "the approval names no approvers" --approvers '[]'
refused noapproval "the task carries no signed approval (change_request.payload and .signature): change.apply runs only change requests approved on the control plane" \
  --no-approval
refused action 'unknown action "redo" (apply, resume or rollback)' --action redo
# parameters that do not satisfy this agent's schema for the type (the server checked them
# against the schema the agent reported; the plugin checks them against its own)
refused badparams "params.path: required" --params '{}' --task-params '{}'
refused badtype "params.path: expected string, got number" --params '{"path": 5}'
refused unknownparam "params.colour: unknown field" --params '{"path": "/x", "colour": "red"}'
refused pattern 'params.path: does not match pattern ^/' --params '{"path": "relative"}'
refused dryrun "params.dry_run: expected boolean, got string" --params '{"path": "/x", "dry_run": "yes"}'
refused crid "the approval is for change request cr_other, the task is for cr_test1" --cr cr_other --task-cr cr_test1

# the definition changed after approval: refused with both digests
old=$(ch_digest touch)
python3 "$CH_SRC/sign.py" --key "$T/keys/approval.key" --type touch --digest "$old" --params "$P1" \
  --target "$CH_AGENT_ID" --out "$T/changed.task.json"
sed -i 's/description: touches a file/description: touches a file, now differently/' "$CH_TYPES/touch.yaml"
ch_run 1 changed "$T/changed.task.json"
t_expect_contains "$(t_json "$R" .error)" "is not the one that was approved ($old): it changed since"

# a change type this agent does not have
python3 "$CH_SRC/sign.py" --key "$T/keys/approval.key" --type nope --digest sha256:1 --params '{}' \
  --target "$CH_AGENT_ID" --out "$T/nope.task.json"
ch_run 1 nope "$T/nope.task.json"
t_expect_eq "change request cr_test1 refused: this agent has no change type \"nope\"" "$(t_json "$R" .error)"

# no agent id (plugin run without an enrolled agent's state): the target cannot be checked
ch_config "$T/noid.yaml" "      approval_key: $T/keys/approval.pem"
sed -i "s#state_dir: .*#state_dir: $T/empty-state#" "$T/noid.yaml"
mkdir -p "$T/empty-state"
t_run 1 "$T/noid.out" "$OUTPOST_AGENT" plugin run --task "$T/good.task.json" --plugins-dir "$CH_P" --config "$T/noid.yaml"
t_expect_contains "$T/noid.out" "refused: this agent's id is unknown (not enrolled, or plugin run without --config), so the change request's target ($CH_AGENT_ID) cannot be checked"
# no approval key at all
ch_config "$T/nokey.yaml" ""
sed -i "s#state_dir: .*#state_dir: $T/empty-state#" "$T/nokey.yaml"
t_run 1 "$T/nokey.out" "$OUTPOST_AGENT" plugin run --task "$T/good.task.json" --plugins-dir "$CH_P" --config "$T/nokey.yaml"
t_expect_contains "$T/nokey.out" "refused: there is no approval key to check the signature with: this agent is not enrolled (its approval.pem is missing) and plugins.config.change.approval_key is not set"
echo ok
