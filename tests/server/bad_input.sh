#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad input gets a 4xx with a reason, never a crash: malformed JSON, oversized bodies, wrong
# content types, unknown and mistyped fields, missing or wrong admin auth.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --max-body 8KiB
tok=$(t_srv_cli token create --uses 5 2>/dev/null)
t_srv_enroll a1 "$tok"
AUTH=(-H "Authorization: Bearer $SRV_ADMIN_TOKEN")

# malformed JSON, trailing garbage, not an object
t_srv_expect 400 bad_json "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/heartbeat '{"state":')"
t_srv_expect 400 bad_json "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/heartbeat '{} {}')"
t_expect_contains "$T/o" "after the JSON value"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/heartbeat '[1,2]')"
t_srv_expect 400 bad_json "$T/o" "$(t_srv_admin "$T/o" POST /admin/tasks '{"type":"x",}')"
t_srv_expect 400 bad_json "$T/o" "$(t_srv_req "$T/o" POST /agent/enroll 'nope')"
# unknown and mistyped fields
t_srv_expect 400 unknown_field "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/heartbeat '{"stat":"idle"}')"
t_expect_contains "$T/o" "body.stat: unknown field"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/heartbeat '{"slots":"two"}')"
t_expect_contains "$T/o" "body.slots"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/heartbeat '{"state":"sleeping"}')"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/leases '{"slots":-1}')"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/leases/lse_x/logs '{"offset":0}')"
t_expect_contains "$T/o" "body.data: required"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/leases/lse_x/complete '{"status":"great"}')"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/leases/lse_x/complete '{"status":"failed","log":{"offset":0}}')"
t_expect_contains "$T/o" "body.log.data: required"
t_srv_expect 400 unknown_field "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/leases/lse_x/complete '{"status":"failed","log":{"offset":0,"data":"x","more":1}}')"
t_srv_expect 400 unknown_field "$T/o" "$(t_srv_admin "$T/o" POST /admin/tasks '{"type":"x","priority":9}')"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_admin "$T/o" POST /admin/tasks '{"type":"x","max_attempts":0}')"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_admin "$T/o" POST /admin/tasks '{"params":{}}')"
t_expect_contains "$T/o" "body.type: required"
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_admin "$T/o" POST /admin/admin-tokens '{"name":"bad name!"}')"
t_srv_expect 400 unknown_field "$T/o" "$(t_srv_req "$T/o" POST /agent/enroll '{"token":"oe_x","csr":"x","hostname":"h","colour":"red"}')"
t_srv_expect 400 reserved_type "$T/o" "$(t_srv_admin "$T/o" POST /admin/tasks '{"type":"change.apply"}')"

# bodies over the limit (8 KiB here): 413 with a reason
python3 -c 'import json;print(json.dumps({"state":"idle","running":["x"*9000]}))' >"$T/big.json"
t_srv_expect 413 body_too_large "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/heartbeat "@$T/big.json")"
t_srv_expect 413 body_too_large "$T/o" "$(t_srv_admin "$T/o" POST /admin/tasks "@$T/big.json")"
# far over: refused by the HTTP layer, still a 4xx and the server lives on
head -c 200000 /dev/zero | tr '\0' 'a' >"$T/huge"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$SRV_CA" -H 'Content-Type: application/json' \
  --data-binary "@$T/huge" "$SRV_URL/agent/enroll" || true)
case "$code" in 4*|000) ;; *) t_fail "huge body: HTTP $code" ;; esac

# content type
code=$(curl -s -o "$T/o" -w '%{http_code}' --cacert "$SRV_CA" --cert "$T/agents/a1/cert.pem" \
  --key "$T/agents/a1/key.pem" -H 'Content-Type: text/plain' --data '{}' "$SRV_URL/agent/heartbeat")
t_srv_expect 415 unsupported_media_type "$T/o" "$code"
code=$(curl -s -o "$T/o" -w '%{http_code}' --cacert "$SRV_CA" "${AUTH[@]}" --data 'type=x' "$SRV_URL/admin/tasks")
t_srv_expect 415 unsupported_media_type "$T/o" "$code"
code=$(curl -s -o "$T/o" -w '%{http_code}' --cacert "$SRV_CA" "${AUTH[@]}" \
  -H 'Content-Type: application/json; charset=utf-8' --data '{"type":"x"}' "$SRV_URL/admin/tasks")
t_expect_eq 201 "$code" "JSON with a charset parameter"

# admin auth: none, not bearer, not an admin token, unknown, revoked
t_srv_expect 401 auth_required "$T/o" "$(t_srv_req "$T/o" GET /admin/agents)"
t_srv_expect 401 auth_invalid "$T/o" "$(t_srv_req "$T/o" GET /admin/agents - -H 'Authorization: Basic YTpi')"
t_srv_expect 401 auth_invalid "$T/o" "$(t_srv_req "$T/o" GET /admin/agents - -H "Authorization: Bearer $tok")"
t_srv_expect 401 auth_invalid "$T/o" "$(t_srv_req "$T/o" GET /admin/agents - -H 'Authorization: Bearer oa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')"
bob=$(t_srv_cli admin-token create --name bob 2>/dev/null)
t_expect_eq 200 "$(t_srv_req "$T/o" GET /admin/whoami - -H "Authorization: Bearer $bob")" "bob's token"
t_expect_eq bob "$(t_json "$T/o" .name)"
t_srv_cli admin-token revoke bob >/dev/null
t_srv_expect 401 auth_invalid "$T/o" "$(t_srv_req "$T/o" GET /admin/whoami - -H "Authorization: Bearer $bob")"
# an agent certificate is not an admin credential, an admin token is not an agent credential
t_srv_expect 401 auth_required "$T/o" "$(t_srv_agent a1 "$T/o" GET /admin/agents)"
t_srv_expect 401 cert_required "$T/o" "$(t_srv_admin "$T/o" POST /agent/heartbeat '{}')"
# the audit log records the refused token, with where it came from
t_srv_cli audit list --json >"$T/audit"
t_expect_contains "$T/audit" '"action": "auth.failed"'
t_expect_contains "$T/audit" '"remote": "127.0.0.1"'

# errors always carry reason, message and server_time
t_srv_req "$T/o" GET /admin/agents >/dev/null
for k in reason message server_time; do t_expect_contains "$T/o" "\"$k\""; done
# and the server is still fine
t_expect_eq 200 "$(t_srv_req "$T/o" GET /health)" "health after bad input"
t_srv_stop
echo PASS
