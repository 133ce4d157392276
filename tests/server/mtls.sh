#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The mTLS routes: no certificate, another CA's (valid or expired), an expired one of ours,
# rotation (old and new serial until the new one is used), revoked and deleted agents,
# drain, self, deregister, and what heartbeats record.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 1s --cert-rotation-grace 1h
tok=$(t_srv_cli token create --uses 10 2>/dev/null)
t_srv_enroll a1 "$tok" '{"plugins":[{"name":"echo","version":"1.0","types":["echo"]}]}'
A=$T/agents/a1
id=$(cat "$A/id")
HB='{"state":"idle","slots":2,"running":[],"versions":{"agent":"0.1.1","plugins":{"echo":"1.0"}},"health":{"status":"degraded","problems":["disk low"],"disk_free_bytes":12345,"inodes_free":99,"workspace_writable":true,"last_error":null}}'

# no client certificate: 401 cert_required on every mTLS route
for r in /agent/heartbeat /agent/leases /agent/deregister /agent/rotate-cert /agent/leases/lse_x/renew; do
  t_srv_expect 401 cert_required "$T/o" "$(t_srv_req "$T/o" POST "$r" '{}')"
done
t_srv_expect 401 cert_required "$T/o" "$(t_srv_req "$T/o" GET /agent/self)"

# a certificate from another CA naming our agent: 403 cert_untrusted; expired too: still untrusted
mkdir -p "$T/evil"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/evil/ca.key" \
  -out "$T/evil/ca.crt" -subj /CN=evil-ca -days 30 2>/dev/null
openssl req -new -key "$A/key.pem" -subj "/CN=$id" -out "$T/evil/csr.pem" 2>/dev/null
openssl x509 -req -in "$T/evil/csr.pem" -CA "$T/evil/ca.crt" -CAkey "$T/evil/ca.key" -CAcreateserial \
  -days 5 -out "$T/evil/cert.pem" 2>/dev/null
code=$(t_srv_req "$T/o" POST /agent/heartbeat "$HB" --cert "$T/evil/cert.pem" --key "$A/key.pem")
t_srv_expect 403 cert_untrusted "$T/o" "$code"
t_expect_contains "$T/o" "not from this server's CA"

# issue certificates with chosen dates and serial (openssl ca)
mk_ca_conf() { # DIR CACERT CAKEY
  mkdir -p "$1"
  : >"$1/index.txt"
  cat >"$1/ca.cnf" <<CNF
[ ca ]
default_ca = d
[ d ]
database = $1/index.txt
new_certs_dir = $1
serial = $1/serial
default_md = sha256
policy = p
unique_subject = no
[ p ]
commonName = supplied
CNF
}
issue() { # DIR CACERT CAKEY CSR CN SERIALHEX START END OUT
  echo "$6" >"$1/serial"
  : >"$1/index.txt" # the same serial may be issued again
  openssl ca -batch -config "$1/ca.cnf" -cert "$2" -keyfile "$3" -in "$4" -subj "/CN=$5" \
    -startdate "$7" -enddate "$8" -notext -out "$9" >/dev/null 2>&1 || t_fail "openssl ca failed"
}
ago() { date -u -d "$1" +%Y%m%d%H%M%SZ; }
serial=$(openssl x509 -in "$A/cert.pem" -noout -serial | cut -d= -f2)
mk_ca_conf "$T/evilca" 
issue "$T/evilca" "$T/evil/ca.crt" "$T/evil/ca.key" "$T/evil/csr.pem" "$id" 01 "$(ago '-3 hours')" "$(ago '-2 hours')" "$T/evil/expired.pem"
code=$(t_srv_req "$T/o" POST /agent/heartbeat "$HB" --cert "$T/evil/expired.pem" --key "$A/key.pem")
t_srv_expect 403 cert_untrusted "$T/o" "$code"

# our CA, the agent's own serial, expired 30 minutes ago (within the 1h rotation grace)
mk_ca_conf "$T/ours"
issue "$T/ours" "$SRV_CA" "$SRV_DIR/ca.key" "$T/evil/csr.pem" "$id" "$serial" "$(ago '-2 hours')" "$(ago '-30 minutes')" "$T/ours/expired.pem"
code=$(t_srv_req "$T/o" POST /agent/heartbeat "$HB" --cert "$T/ours/expired.pem" --key "$A/key.pem")
t_srv_expect 403 cert_expired "$T/o" "$code"
t_expect_contains "$T/o" "rotate it"
# ... rotate-cert accepts it within the grace
t_srv_csr "$T/rot1"
body=$(python3 -c 'import json,sys;print(json.dumps({"csr":open(sys.argv[1]).read()}))' "$T/rot1/csr.pem")
code=$(t_srv_req "$T/rot" POST /agent/rotate-cert "$body" --cert "$T/ours/expired.pem" --key "$A/key.pem")
t_expect_eq 200 "$code" "rotate-cert with a cert expired within the grace"
t_json "$T/rot" .certificate >"$T/rot1/cert.pem"
openssl x509 -in "$T/rot1/cert.pem" -noout -subject | grep -q "CN *= *$id" || t_fail "rotated cert names another agent"
# expired two hours ago: beyond the grace, rotate-cert refuses too
issue "$T/ours" "$SRV_CA" "$SRV_DIR/ca.key" "$T/evil/csr.pem" "$id" "$serial" "$(ago '-4 hours')" "$(ago '-2 hours')" "$T/ours/old.pem"
code=$(t_srv_req "$T/o" POST /agent/rotate-cert "$body" --cert "$T/ours/old.pem" --key "$A/key.pem")
t_srv_expect 403 cert_expired "$T/o" "$code"
t_expect_contains "$T/o" "re-enroll"
# a certificate of our CA that names no agent
issue "$T/ours" "$SRV_CA" "$SRV_DIR/ca.key" "$T/evil/csr.pem" "not-an-agent" 0A "$(ago '-1 hour')" "$(ago '+1 hour')" "$T/ours/noagent.pem"
code=$(t_srv_req "$T/o" POST /agent/heartbeat "$HB" --cert "$T/ours/noagent.pem" --key "$A/key.pem")
t_srv_expect 403 cert_untrusted "$T/o" "$code"
t_expect_contains "$T/o" "does not name an agent"
# a valid certificate of ours for the agent with a serial the server never issued
issue "$T/ours" "$SRV_CA" "$SRV_DIR/ca.key" "$T/evil/csr.pem" "$id" 0B "$(ago '-1 hour')" "$(ago '+1 hour')" "$T/ours/forged.pem"
code=$(t_srv_req "$T/o" POST /agent/heartbeat "$HB" --cert "$T/ours/forged.pem" --key "$A/key.pem")
t_srv_expect 403 cert_superseded "$T/o" "$code"

# the heartbeat: 200 with the server's intervals and wishes; what it reports is recorded
t_srv_cli settings set --recommended-version 0.2.0 >/dev/null
code=$(t_srv_agent a1 "$T/hb" POST /agent/heartbeat "$HB")
t_expect_eq 200 "$code" "heartbeat"
t_expect_eq 1 "$(t_json "$T/hb" .heartbeat_interval)"
t_expect_eq run "$(t_json "$T/hb" .desired_state)"
t_expect_eq '[]' "$(t_json "$T/hb" .cancel)"
t_expect_eq false "$(t_json "$T/hb" .renew_cert)"
t_expect_eq 0.2.0 "$(t_json "$T/hb" .recommended_version)"
t_srv_cli agents show "$id" --json >"$T/a"
t_expect_eq 0.1.1 "$(t_json "$T/a" .version)"
t_expect_eq degraded "$(t_json "$T/a" .health.status)"
t_expect_eq 12345 "$(t_json "$T/a" .health.disk_free_bytes)"
t_expect_eq idle "$(t_json "$T/a" .reported_state)"
t_expect_eq 2 "$(t_json "$T/a" .slots)"
t_srv_cli agents show "$id" >"$T/human"
t_expect_contains "$T/human" "disk low"
# a lease id the agent says it runs but does not hold: cancel it
code=$(t_srv_agent a1 "$T/hb" POST /agent/heartbeat '{"state":"busy","running":["lse_gone"]}')
t_expect_eq '["lse_gone"]' "$(t_json "$T/hb" .cancel)"

# GET /agent/self does not touch last_seen
t_srv_cli agents show "$id" --json >"$T/a1"
sleep 0.3
t_expect_eq 200 "$(t_srv_agent a1 "$T/self" GET /agent/self)" "self"
t_expect_eq "$id" "$(t_json "$T/self" .id)"
t_srv_cli agents show "$id" --json >"$T/a2"
t_expect_eq "$(t_json "$T/a1" .last_seen)" "$(t_json "$T/a2" .last_seen)" "last_seen after /agent/self"

# drain: desired_state drain, no leases; undrain
t_run 0 "$T/o" t_srv_cli agents drain "$id"
t_expect_contains "$T/o" "draining"
t_srv_agent a1 "$T/hb" POST /agent/heartbeat '{}' >/dev/null
t_expect_eq drain "$(t_json "$T/hb" .desired_state)"
t_srv_expect 409 agent_draining "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/leases '{"slots":1}')"
t_run 0 "$T/o" t_srv_cli agents undrain "$id"
t_srv_agent a1 "$T/hb" POST /agent/heartbeat '{}' >/dev/null
t_expect_eq run "$(t_json "$T/hb" .desired_state)"

# rotation: the old and the new certificate both work until the new one is first used
t_srv_csr "$T/rot2"
body=$(python3 -c 'import json,sys;print(json.dumps({"csr":open(sys.argv[1]).read()}))' "$T/rot2/csr.pem")
t_expect_eq 200 "$(t_srv_agent a1 "$T/rot" POST /agent/rotate-cert "$body")" "rotate-cert"
t_json "$T/rot" .certificate >"$T/rot2/cert.pem"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST /agent/heartbeat '{}')" "old cert before the new one is used"
code=$(t_srv_req "$T/o" POST /agent/heartbeat '{}' --cert "$T/rot2/cert.pem" --key "$T/rot2/key.pem")
t_expect_eq 200 "$code" "new cert"
t_srv_expect 403 cert_superseded "$T/o" "$(t_srv_agent a1 "$T/o" POST /agent/heartbeat '{}')"
# the earlier rotation's certificate was never used: it is gone too
code=$(t_srv_req "$T/o" POST /agent/heartbeat '{}' --cert "$T/rot1/cert.pem" --key "$T/rot1/key.pem")
t_srv_expect 403 cert_superseded "$T/o" "$code"
cp "$T/rot2/cert.pem" "$A/cert.pem"
cp "$T/rot2/key.pem" "$A/key.pem"
t_srv_cli agents show "$id" --json >"$T/a"
t_expect_eq "$(openssl x509 -in "$A/cert.pem" -noout -serial | cut -d= -f2)" "$(t_json "$T/a" .certificate.serial)" "recorded serial"

# revoked: 403 agent_revoked everywhere; deleted: 403 agent_not_found
t_srv_enroll a2 "$tok"
t_srv_enroll a3 "$tok"
t_run 0 "$T/o" t_srv_cli agents revoke "$(cat "$T/agents/a2/id")"
t_expect_contains "$T/o" "revoked"
for r in /agent/heartbeat /agent/leases /agent/rotate-cert; do
  t_srv_expect 403 agent_revoked "$T/o" "$(t_srv_agent a2 "$T/o" POST "$r" '{}')"
done
t_srv_expect 403 agent_revoked "$T/o" "$(t_srv_agent a2 "$T/o" GET /agent/self)"
t_run 0 "$T/o" t_srv_cli agents delete "$(cat "$T/agents/a3/id")"
t_srv_expect 403 agent_not_found "$T/o" "$(t_srv_agent a3 "$T/o" POST /agent/heartbeat '{}')"
t_run 5 "$T/o" t_srv_cli agents show "$(cat "$T/agents/a3/id")"
t_srv_cli agents list --json >"$T/al"
t_expect_not_contains "$T/al" "$(cat "$T/agents/a2/id")"
t_srv_cli agents list --all --json >"$T/al"
t_expect_contains "$T/al" "$(cat "$T/agents/a2/id")"

# deregister: the agent revokes itself
t_srv_enroll a4 "$tok"
t_expect_eq 200 "$(t_srv_agent a4 "$T/o" POST /agent/deregister '{"reason":"uninstall"}')" "deregister"
t_srv_expect 403 agent_revoked "$T/o" "$(t_srv_agent a4 "$T/o" POST /agent/heartbeat '{}')"

# offline after 3 missed heartbeats (1s interval)
t_srv_enroll a5 "$tok"
t_srv_cli agents show "$(cat "$T/agents/a5/id")" --json >"$T/a"
t_expect_eq online "$(t_json "$T/a" .status)"
sleep 3.3
t_srv_cli agents show "$(cat "$T/agents/a5/id")" --json >"$T/a"
t_expect_eq offline "$(t_json "$T/a" .status)"
t_srv_stop

# renew_cert at half the lifetime; an expired certificate is rotated within the grace
t_srv_start --heartbeat-interval 1s --cert-validity 8s
t_srv_enroll s1 "$tok"
t_srv_agent s1 "$T/hb" POST /agent/heartbeat '{}' >/dev/null
issued=$(date -d "$(t_json "$T/agents/s1/enroll.json" .cert_not_after)" +%s.%N)
issued=$(python3 -c "print(float('$issued') - 8)")
python3 -c "import time; assert time.time() < $issued + 4, 'too slow to check the fresh certificate'" &&
  t_expect_eq false "$(t_json "$T/hb" .renew_cert)" "renew_cert when fresh"
python3 -c "import time; time.sleep(max(0, $issued + 4.5 - time.time()))"
t_srv_agent s1 "$T/hb" POST /agent/heartbeat '{}' >/dev/null
t_expect_eq true "$(t_json "$T/hb" .renew_cert)" "renew_cert after half the lifetime"
python3 -c "import time; time.sleep(max(0, $issued + 9.2 - time.time()))"
t_srv_expect 403 cert_expired "$T/o" "$(t_srv_agent s1 "$T/o" POST /agent/heartbeat '{}')"
t_srv_csr "$T/rot3"
body=$(python3 -c 'import json,sys;print(json.dumps({"csr":open(sys.argv[1]).read()}))' "$T/rot3/csr.pem")
t_expect_eq 200 "$(t_srv_agent s1 "$T/rot" POST /agent/rotate-cert "$body")" "rotate an expired cert"
t_json "$T/rot" .certificate >"$T/rot3/cert.pem"
code=$(t_srv_req "$T/o" POST /agent/heartbeat '{}' --cert "$T/rot3/cert.pem" --key "$T/rot3/key.pem")
t_expect_eq 200 "$code" "heartbeat with the rotated cert"
t_srv_stop
echo PASS
