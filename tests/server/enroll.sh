#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Enrollment tokens and POST /agent/enroll: the certificate, the token's pool/environment/tags,
# replay of a lost answer, and every refusal with its exact reason.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --cert-validity 2h --heartbeat-interval 2s

tok=$(t_srv_cli token create --pool p1 --environment prod --tags a,b 2>"$T/tok.err")
[[ "$tok" =~ ^oe_[0-9A-Za-z]{32}$ ]] || t_fail "token shape: $tok"
t_expect_contains "$T/tok.err" "uses 1, expires never"
if grep -qa "$tok" "$SRV_DIR/outpost.db"* ; then t_fail "enrollment token stored in clear"; fi
t_srv_cli token list --json >"$T/tl"
tok_id=$(t_json "$T/tl" .tokens[0].id)
t_expect_eq p1 "$(t_json "$T/tl" .tokens[0].pool)"

t_srv_enroll a1 "$tok" '{"pool":"p2","environment":"dev","tags":["c","a"],"plugins":[{"name":"echo","version":"1.0","types":["echo","echo.slow"]}]}'
D=$T/agents/a1
id=$(cat "$D/id")
[[ "$id" =~ ^agt_[0-9A-Za-z]{16}$ ]] || t_fail "agent id shape: $id"
openssl verify -CAfile "$SRV_CA" "$D/cert.pem" >/dev/null || t_fail "client cert does not verify"
openssl x509 -in "$D/cert.pem" -noout -subject | grep -q "CN *= *$id" || t_fail "cert CN is not the agent id"
openssl x509 -in "$D/cert.pem" -noout -ext extendedKeyUsage | grep -q "Client Authentication" || t_fail "no clientAuth"
t_expect_eq "$(cat "$SRV_CA")" "$(t_json "$D/enroll.json" .ca_certificate | sed '/^$/d')" "ca_certificate"
t_expect_eq "$(cat "$SRV_DIR/approval.pub")" "$(t_json "$D/enroll.json" .approval_public_key | sed '/^$/d')" "approval_public_key"
t_expect_eq 2 "$(t_json "$D/enroll.json" .heartbeat_interval)" "heartbeat_interval"
t_expect_eq 60 "$(t_json "$D/enroll.json" .lease_ttl)" "lease_ttl"
t_expect_eq 25 "$(t_json "$D/enroll.json" .long_poll)" "long_poll"
# --cert-validity 2h: the certificate ends within 2h, and the answer says when
na=$(date -d "$(t_json "$D/enroll.json" .cert_not_after)" +%s)
now=$(date +%s)
[ $((na - now)) -le 7200 ] && [ $((na - now)) -ge 7100 ] || t_fail "cert_not_after $na not ~2h after $now"
# the token's pool and environment win; tags are the union; task types from the plugins
t_srv_cli agents show "$id" --json >"$T/a"
t_expect_eq p1 "$(t_json "$T/a" .pool)" "pool"
t_expect_eq prod "$(t_json "$T/a" .environment)" "environment"
t_expect_eq '["a", "b", "c"]' "$(t_json "$T/a" .tags)" "tags"
t_expect_eq '["echo", "echo.slow"]' "$(t_json "$T/a" .task_types)" "task types"
t_expect_eq online "$(t_json "$T/a" .status)"
t_expect_eq "$tok_id" "$(t_json "$T/a" .token_id)"

# the same CSR with the same token shortly after: the same answer (a lost response is safe)
code=$(t_srv_req "$T/replay" POST /agent/enroll "@$D/enroll-body.json")
t_expect_eq 201 "$code" "replayed enrollment"
t_expect_eq "$id" "$(t_json "$T/replay" .agent_id)" "replay: same agent"
t_expect_eq "$(t_json "$D/enroll.json" .certificate)" "$(t_json "$T/replay" .certificate)" "replay: same certificate"
t_srv_cli agents list --json >"$T/al"
t_expect_eq 1 "$(python3 -c 'import json,sys;print(len(json.load(open(sys.argv[1]))["agents"]))' "$T/al")" "one agent"

# another key with the used token: 409 token_used, with the seed's words
t_srv_csr "$T/k2"
body=$(python3 -c 'import json,sys;print(json.dumps({"token":sys.argv[1],"csr":open(sys.argv[2]).read(),"hostname":"h2"}))' "$tok" "$T/k2/csr.pem")
t_srv_expect 409 token_used "$T/o" "$(t_srv_req "$T/o" POST /agent/enroll "$body")"
t_expect_eq "token has already been used" "$(t_json "$T/o" .message)"
t_srv_cli token list --all --json >"$T/tl"
t_expect_eq used "$(t_json "$T/tl" .tokens[0].status)"

enroll_with() { # TOKEN CSRFILE -> status, body in $T/o
  local b
  b=$(python3 -c 'import json,sys;print(json.dumps({"token":sys.argv[1],"csr":open(sys.argv[2]).read(),"hostname":"hx"}))' "$1" "$2")
  t_srv_req "$T/o" POST /agent/enroll "$b"
}
# unknown, malformed, revoked and expired tokens
t_srv_expect 401 token_invalid "$T/o" "$(enroll_with oe_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA "$T/k2/csr.pem")"
t_expect_contains "$T/o" "not known to this server"
t_srv_expect 401 token_invalid "$T/o" "$(enroll_with hunter2 "$T/k2/csr.pem")"
t_expect_contains "$T/o" "start with oe_"
tok2=$(t_srv_cli token create 2>/dev/null)
t_srv_cli token list --json >"$T/tl"
tok2_id=$(t_json "$T/tl" .tokens[0].id)
t_run 0 "$T/rv" t_srv_cli token revoke "$tok2_id"
t_srv_expect 401 token_invalid "$T/o" "$(enroll_with "$tok2" "$T/k2/csr.pem")"
t_expect_contains "$T/o" "was revoked"
t_run 5 "$T/rv" t_srv_cli token revoke tok_nosuchtoken
tok3=$(t_srv_cli token create --ttl 1s 2>/dev/null)
sleep 1.3
t_srv_expect 401 token_expired "$T/o" "$(enroll_with "$tok3" "$T/k2/csr.pem")"
t_expect_contains "$T/o" "expired at"

# a token good for two uses
tok4=$(t_srv_cli token create --uses 2 2>/dev/null)
t_srv_enroll m1 "$tok4"
t_srv_enroll m2 "$tok4"
t_srv_csr "$T/k3"
t_srv_expect 409 token_used "$T/o" "$(enroll_with "$tok4" "$T/k3/csr.pem")"

# bad CSRs: 400 bad_csr saying what is wrong
tok5=$(t_srv_cli token create 2>/dev/null)
printf 'hello' >"$T/notpem"
t_srv_expect 400 bad_csr "$T/o" "$(enroll_with "$tok5" "$T/notpem")"
t_expect_contains "$T/o" "not PEM"
printf -- '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' >"$T/badpem"
t_srv_expect 400 bad_csr "$T/o" "$(enroll_with "$tok5" "$T/badpem")"
t_srv_csr "$T/rsa1024" -algorithm RSA -pkeyopt rsa_keygen_bits:1024
t_srv_expect 400 bad_csr "$T/o" "$(enroll_with "$tok5" "$T/rsa1024/csr.pem")"
t_expect_contains "$T/o" "RSA with 1024 bits"
t_srv_csr "$T/k256" -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1
t_srv_expect 400 bad_csr "$T/o" "$(enroll_with "$tok5" "$T/k256/csr.pem")"
t_expect_contains "$T/o" "curve secp256k1"
python3 - "$T/k3/csr.pem" "$T/tampered.pem" <<'PY'
import base64, sys
lines = open(sys.argv[1]).read().strip().splitlines()
der = bytearray(base64.b64decode("".join(lines[1:-1])))
der[-5] ^= 0x01  # inside the signature
b64 = base64.b64encode(bytes(der)).decode()
open(sys.argv[2], "w").write(lines[0] + "\n" + "\n".join(b64[i:i+64] for i in range(0, len(b64), 64)) + "\n" + lines[-1] + "\n")
PY
t_srv_expect 400 bad_csr "$T/o" "$(enroll_with "$tok5" "$T/tampered.pem")"
t_expect_contains "$T/o" "signature does not verify"
# none of those spent the token
t_srv_csr "$T/rsa2048" -algorithm RSA -pkeyopt rsa_keygen_bits:2048
t_expect_eq 201 "$(enroll_with "$tok5" "$T/rsa2048/csr.pem")" "RSA 2048 is accepted"

# a bad params_schema in a reported change type
tok6=$(t_srv_cli token create 2>/dev/null)
b=$(python3 -c 'import json,sys;print(json.dumps({"token":sys.argv[1],"csr":open(sys.argv[2]).read(),"hostname":"h","change_types":[{"name":"x","digest":"d","params_schema":{"type":"object","propertys":{}}}]}))' "$tok6" "$T/k3/csr.pem")
t_srv_expect 400 invalid_field "$T/o" "$(t_srv_req "$T/o" POST /agent/enroll "$b")"
t_expect_contains "$T/o" "change_types[0].params_schema"
t_srv_stop
echo PASS
