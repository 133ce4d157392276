#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Change requests: parameters checked against the target agent's schema; no task before
# approval and none for any agent but the target; approvers are admin token names and the
# requester cannot approve; the lease carries a payload signed with the approval key; step
# records (also after a lost lease); needs_attention and its resolution; reject; expiry.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --lease-ttl 30s --heartbeat-interval 1s
tok=$(t_srv_cli token create --uses 5 2>/dev/null)
alice=$(t_srv_cli admin-token create --name alice 2>/dev/null)
echo "$alice" >"$T/alice.tok"
as_alice() { "$OUTPOST_SERVER" "$@" --data-dir "$SRV_DIR" --token-file "$T/alice.tok"; }
CT='{"name":"restart-service","digest":"sha256:1111","description":"restart a systemd service",
 "steps":[{"name":"stop"},{"name":"start"},{"name":"check","description":"health command"}],
 "params_schema":{"type":"object","additionalProperties":false,"required":["service"],
  "properties":{"service":{"type":"string","pattern":"^[a-z]+$"},"grace":{"type":"integer","default":30}}}}'
AG="{\"plugins\":[{\"name\":\"change\",\"version\":\"1\",\"types\":[\"change.apply\"]}],\"change_types\":[$CT]}"
t_srv_enroll a1 "$tok" "$AG"
t_srv_enroll a2 "$tok" "$AG"
a1=$(cat "$T/agents/a1/id")
CTYPES='{"slots":1,"task_types":["change.apply"]}'

cr_file() { # FILE TARGET SERVICE [extra yaml]
  printf 'title: restart %s\nchange_type: restart-service\ntarget_agent: %s\nparams:\n  service: %s\n%s' \
    "$3" "$2" "$3" "${4:-}" >"$1"
}
# the file and the parameters are checked before anything is created
printf 'change_type: restart-service\ntarget_agent: %s\nparms: {}\n' "$a1" >"$T/typo.yaml"
t_run 2 "$T/o" t_srv_cli cr create --file "$T/typo.yaml"
t_expect_contains "$T/o" 'typo.yaml:3: unknown key "parms"'
cr_file "$T/bad.yaml" "$a1" "Nginx!"
t_run 1 "$T/o" t_srv_cli cr create --file "$T/bad.yaml"
t_expect_contains "$T/o" "invalid_params"
t_expect_contains "$T/o" "params.service: does not match pattern"
cr_file "$T/extra.yaml" "$a1" nginx '  colour: red
'
t_run 1 "$T/o" t_srv_cli cr create --file "$T/extra.yaml"
t_expect_contains "$T/o" "params.colour: unknown field"
printf 'change_type: reboot\ntarget_agent: %s\n' "$a1" >"$T/unk.yaml"
t_run 1 "$T/o" t_srv_cli cr create --file "$T/unk.yaml"
t_expect_contains "$T/o" "unknown_change_type"
t_expect_contains "$T/o" "it reports: restart-service"
cr_file "$T/nowhere.yaml" agt_nosuchagent000 nginx
t_run 5 "$T/o" t_srv_cli cr create --file "$T/nowhere.yaml"

# a good one: pending, hostname beside the target, defaults applied, planned steps shown
cr_file "$T/cr.yaml" "$a1" nginx 'timeout: 5m
'
cr=$(t_srv_cli cr create --file "$T/cr.yaml" 2>"$T/create.err")
t_expect_contains "$T/create.err" "($(basename a1))"
t_srv_cli cr show "$cr" --json >"$T/c"
t_expect_eq pending "$(t_json "$T/c" .state)"
t_expect_eq a1 "$(t_json "$T/c" .target_hostname)"
t_expect_eq 30 "$(t_json "$T/c" .params.grace)" "schema default applied"
t_expect_eq 300 "$(t_json "$T/c" .timeout)"
t_srv_cli cr show "$cr" >"$T/human"
t_expect_contains "$T/human" "$a1 (a1)"
t_expect_contains "$T/human" "3. check: health command"
t_expect_contains "$T/human" "(0 of 1 needed)"

# not leasable before approval
t_expect_eq 204 "$(t_srv_agent a1 "$T/o" POST /agent/leases "$CTYPES")" "before approval"
# the requester (admin) cannot approve it; --by must be the token's own name
t_run 4 "$T/o" t_srv_cli cr approve "$cr"
t_expect_contains "$T/o" "self_approval"
t_run 4 "$T/o" as_alice cr approve "$cr" --by bob
t_expect_contains "$T/o" "belongs to alice"
t_run 0 "$T/o" as_alice cr approve "$cr" --by alice
t_expect_contains "$T/o" approved
t_run 6 "$T/o" as_alice cr approve "$cr"
t_expect_contains "$T/o" cr_not_pending

# only the target agent gets it; the lease carries the signed payload
t_expect_eq 204 "$(t_srv_agent a2 "$T/o" POST /agent/leases "$CTYPES")" "another agent"
t_expect_eq 200 "$(t_srv_agent a1 "$T/l" POST /agent/leases "$CTYPES")" "the target"
t_expect_eq change.apply "$(t_json "$T/l" .leases[0].type)"
t_expect_eq apply "$(t_json "$T/l" .leases[0].change_request.action)"
t_expect_eq "$cr" "$(t_json "$T/l" .leases[0].params.cr_id)"
python3 - "$T/l" "$T" <<'PY'
import base64, json, sys
lease = json.load(open(sys.argv[1]))["leases"][0]
p = lease["change_request"]["payload"]
assert sorted(p) == ["approvers", "change_type", "cr_id", "definition_digest", "not_after", "params",
                     "target_agent_id"], sorted(p)
assert p["approvers"] == ["alice"] and p["change_type"] == "restart-service"
assert p["definition_digest"] == "sha256:1111"
assert p["params"] == {"service": "nginx", "grace": 30} == lease["params"]["params"]
canon = json.dumps(p, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
open(sys.argv[2] + "/payload.bin", "wb").write(canon)
open(sys.argv[2] + "/sig.der", "wb").write(base64.b64decode(lease["change_request"]["signature"]))
PY
t_expect_eq "$a1" "$(t_json "$T/l" .leases[0].change_request.payload.target_agent_id)"
openssl dgst -sha256 -verify "$SRV_DIR/approval.pub" -signature "$T/sig.der" "$T/payload.bin" >/dev/null ||
  t_fail "the approval signature does not verify with approval.pub"
# a tampered payload does not verify
sed 's/nginx/apache/' "$T/payload.bin" >"$T/tampered.bin"
if openssl dgst -sha256 -verify "$SRV_DIR/approval.pub" -signature "$T/sig.der" "$T/tampered.bin" >/dev/null 2>&1; then
  t_fail "a tampered payload verified"
fi
L=$(t_json "$T/l" .leases[0].lease_id)
tid=$(t_json "$T/l" .leases[0].task_id)
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/renew" '{}')" renew

# step records; the same step twice is recorded once
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/steps" '{"step":{"index":1,"name":"stop","phase":"start"}}')" step
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/steps" '{"step":{"index":1,"name":"stop","phase":"start"}}')" "step again"
t_expect_eq true "$(t_json "$T/o" .duplicate)"
t_srv_agent a1 "$T/o" POST "/agent/leases/$L/steps" '{"step":{"index":1,"name":"stop","phase":"end","status":"ok"}}' >/dev/null
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a2 "$T/o" POST "/agent/leases/$L/steps" '{"step":{"index":9}}')"
t_srv_agent a1 "$T/o" POST "/agent/leases/$L/renew" '{}' >/dev/null
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/complete" '{"status":"succeeded"}')" complete
t_srv_cli cr show "$cr" --json >"$T/c"
t_expect_eq succeeded "$(t_json "$T/c" .state)"
t_expect_eq 2 "$(python3 -c 'import json,sys;print(len(json.load(open(sys.argv[1]))["steps"]))' "$T/c")" "two step records"
t_srv_cli cr show "$cr" >"$T/human"
t_expect_contains "$T/human" '"phase":"end"'
# a step for an ordinary task is refused
t_srv_enroll e1 "$tok" '{"plugins":[{"name":"echo","types":["echo"]}]}'
t_srv_cli task submit --type echo >/dev/null 2>&1
t_srv_agent e1 "$T/el" POST /agent/leases '{"slots":1}' >/dev/null
t_srv_expect 400 not_a_change_request "$T/o" "$(t_srv_agent e1 "$T/o" POST "/agent/leases/$(t_json "$T/el" .leases[0].lease_id)/steps" '{"step":{}}')"

# a lost lease: needs_attention, not re-leased; late steps still recorded; resume
t_srv_stop
t_srv_start --lease-ttl 2s --heartbeat-interval 1s
cr2=$(t_srv_cli cr create --file "$T/cr.yaml" 2>/dev/null)
as_alice cr approve "$cr2" >/dev/null
t_srv_agent a1 "$T/l" POST /agent/leases "$CTYPES" >/dev/null
L=$(t_json "$T/l" .leases[0].lease_id)
tid=$(t_json "$T/l" .leases[0].task_id)
t_srv_agent a1 "$T/o" POST "/agent/leases/$L/steps" '{"step":{"index":1,"name":"stop","phase":"start"}}' >/dev/null
sleep 2.6
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_eq needs_attention "$(t_json "$T/t" .state)" "change.apply after a lost lease"
t_expect_contains "$(t_json "$T/t" .reason)" "choose resume, rollback or abandon"
t_srv_cli cr show "$cr2" --json >"$T/c"
t_expect_eq needs_attention "$(t_json "$T/c" .state)"
t_expect_eq 204 "$(t_srv_agent a1 "$T/o" POST /agent/leases "$CTYPES")" "not re-leased"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/steps" '{"step":{"index":1,"name":"stop","phase":"end","status":"ok"}}')" "late step"
t_expect_eq false "$(t_json "$T/o" .lease_active)"
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/complete" '{"status":"succeeded"}')"
t_srv_stop
t_srv_start --lease-ttl 30s --heartbeat-interval 1s
t_run 0 "$T/o" as_alice task resolve "$tid" --action resume
t_expect_eq 200 "$(t_srv_agent a1 "$T/l" POST /agent/leases "$CTYPES")" "leased again after resume"
t_expect_eq resume "$(t_json "$T/l" .leases[0].change_request.action)"
t_expect_eq 2 "$(t_json "$T/l" .leases[0].attempt)"
t_expect_eq 2 "$(python3 -c 'import json,sys;print(len(json.load(open(sys.argv[1]))["leases"][0]["change_request"]["steps"]))' "$T/l")" "recorded steps in the lease"
t_srv_agent a1 "$T/o" POST "/agent/leases/$(t_json "$T/l" .leases[0].lease_id)/complete" '{"status":"succeeded"}' >/dev/null
t_srv_cli cr show "$cr2" --json >"$T/c"
t_expect_eq succeeded "$(t_json "$T/c" .state)"
t_expect_eq resume "$(t_json "$T/c" .resolution)"
t_run 6 "$T/o" as_alice task resolve "$tid" --action abandon

# reject, then approving is refused
cr3=$(t_srv_cli cr create --file "$T/cr.yaml" 2>/dev/null)
t_run 0 "$T/o" as_alice cr reject "$cr3" --reason "not during business hours"
t_expect_contains "$T/o" rejected
t_run 6 "$T/o" as_alice cr approve "$cr3"
t_srv_cli cr show "$cr3" --json >"$T/c"
t_expect_eq "not during business hours" "$(t_json "$T/c" .reject_reason)"
t_expect_eq alice "$(t_json "$T/c" .rejected_by)"

# the agent's definition changed since the request was made: approval refused
cr4=$(t_srv_cli cr create --file "$T/cr.yaml" 2>/dev/null)
CT2=${CT//sha256:1111/sha256:2222}
t_srv_agent a1 "$T/o" POST /agent/heartbeat "{\"change_types\":[$CT2]}" >/dev/null
t_run 6 "$T/o" as_alice cr approve "$cr4"
t_expect_contains "$T/o" definition_changed
t_srv_stop

# two approvals required; an approval that runs out before the agent takes the task expires
t_srv_start --lease-ttl 1.5s --cr-required-approvals 2 --approval-validity 3s
bob=$(t_srv_cli admin-token create --name bob 2>/dev/null)
echo "$bob" >"$T/bob.tok"
cr_file "$T/cr2.yaml" "$(cat "$T/agents/a2/id")" nginx
cr5=$(t_srv_cli cr create --file "$T/cr2.yaml" 2>/dev/null)
as_alice cr approve "$cr5" >/dev/null
t_srv_cli cr show "$cr5" --json >"$T/c"
t_expect_eq pending "$(t_json "$T/c" .state)" "one approval of two"
"$OUTPOST_SERVER" cr approve "$cr5" --data-dir "$SRV_DIR" --token-file "$T/bob.tok" >/dev/null
t_srv_cli cr show "$cr5" --json >"$T/c"
t_expect_eq approved "$(t_json "$T/c" .state)"
t_expect_eq '["alice", "bob"]' "$(t_json "$T/c" .approvers)"
sleep 3.6
t_srv_cli cr show "$cr5" --json >"$T/c"
t_expect_eq expired "$(t_json "$T/c" .state)" "approval ran out"
t_expect_eq 204 "$(t_srv_agent a2 "$T/o" POST /agent/leases "$CTYPES")" "expired approval"

# the audit log names who approved, from where
t_srv_cli audit list --action cr.approve --json >"$T/audit"
t_expect_contains "$T/audit" '"actor": "alice"'
t_expect_contains "$T/audit" '"actor": "bob"'
t_expect_contains "$T/audit" '"result": "self_approval"'
t_srv_cli cr list >"$T/list"
for c in "$cr" "$cr2" "$cr3" "$cr4" "$cr5"; do t_expect_contains "$T/list" "$c"; done
t_srv_stop
echo PASS
