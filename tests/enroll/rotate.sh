#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# outpost-agent rotate-cert against the real server: a fresh key, the old certificate superseded
# once the new one is confirmed, owners kept; interrupted rotations recovered; an expired
# certificate rotated within the grace; beyond it, and for a revoked agent, the clear errors
# and exit codes 4 and 3.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --cert-validity 1h
t_plugin_dir "$T/plugins" testkit
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
pub_of() { openssl pkey -in "$1" -pubout 2>/dev/null; }
hb() { # CERT KEY -> HTTP status of a heartbeat, body in $T/hb
  curl -s -o "$T/hb" -w '%{http_code}' --cacert "$SRV_CA" --cert "$1" --key "$2" \
    -H 'Content-Type: application/json' --data '{}' "$SRV_URL/agent/heartbeat"
}
rotate_via_api() { # DIR: a new key and certificate for the agent in DIR/key.pem, DIR/cert.pem
  t_srv_csr "$1"
  python3 -c 'import json,sys;print(json.dumps({"csr":open(sys.argv[1]).read()}))' "$1/csr.pem" >"$1/body"
  code=$(curl -s -o "$1/rot.json" -w '%{http_code}' --cacert "$SRV_CA" --cert "$AG_STATE/agent.crt" \
    --key "$AG_STATE/agent.key" -H 'Content-Type: application/json' --data-binary "@$1/body" "$SRV_URL/agent/rotate-cert")
  t_expect_eq 200 "$code" "rotate-cert through the API"
  t_json "$1/rot.json" .certificate >"$1/cert.pem"
}

t_ag_install a1 --plugins-dir "$T/plugins"
S=$AG_STATE
cp "$S/agent.crt" "$T/old.crt"
cp "$S/agent.key" "$T/old.key"
old_serial=$(serial_of "$S/agent.crt")

# a rotation: new key, new serial, confirmed, the old one superseded
t_run 0 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
new_serial=$(serial_of "$S/agent.crt")
t_expect_contains "$T/o" "certificate rotated for $AG_ID: serial $new_serial replaces $old_serial"
[ "$new_serial" != "$old_serial" ] || t_fail "the serial did not change"
[ "$(pub_of "$S/agent.key")" != "$(pub_of "$T/old.key")" ] || t_fail "rotation kept the old key"
t_expect_eq 600 "$(stat -c %a "$S/agent.key")" "agent.key mode after rotation"
[ ! -e "$S/agent.key.new" ] && [ ! -e "$S/agent.crt.new" ] || t_fail ".new files left"
t_expect_eq 403 "$(hb "$T/old.crt" "$T/old.key")" "the old certificate after the rotation"
t_expect_eq cert_superseded "$(t_json "$T/hb" .reason)"
t_expect_eq 200 "$(hb "$S/agent.crt" "$S/agent.key")" "the new certificate"
t_srv_cli agents show "$AG_ID" --json >"$T/a"
t_expect_eq "$new_serial" "$(t_json "$T/a" .certificate.serial)" "serial the server records"
t_expect_eq "$(date -u -d "$(openssl x509 -in "$S/agent.crt" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%S)" \
  "$(t_json "$S/agent.json" .cert_not_after | cut -c1-19)" "agent.json cert_not_after"
t_run 0 "$T/c" "$OUTPOST_AGENT" check --config "$AG_CFG"

# as root, the files keep the agent's owner
if [ "$(id -u)" = 0 ]; then
  chown -R nobody: "$S"
  t_run 0 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
  t_expect_eq nobody "$(stat -c %U "$S/agent.key")" "agent.key owner after rotation"
  t_expect_eq nobody "$(stat -c %U "$S/agent.crt")" "agent.crt owner after rotation"
  chown -R root: "$S"
fi

# an interrupted rotation: a whole new pair left as .new (its answer arrived, the rename did not)
rotate_via_api "$T/r1"
cp "$T/r1/key.pem" "$S/agent.key.new"
cp "$T/r1/cert.pem" "$S/agent.crt.new"
t_run 0 "$T/c" "$OUTPOST_AGENT" check --config "$AG_CFG"
t_expect_contains "$T/c" "an interrupted rotation left"
t_run 0 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
t_expect_contains "$T/o" "completed an interrupted rotation first"
t_expect_contains "$T/o" "replaces $(serial_of "$T/r1/cert.pem")"
t_expect_eq 403 "$(hb "$T/r1/cert.pem" "$T/r1/key.pem")" "the recovered pair after the next rotation"

# interrupted between the two renames: agent.key is new, agent.crt old, agent.crt.new new
rotate_via_api "$T/r2"
cp "$T/r2/key.pem" "$S/agent.key"
cp "$T/r2/cert.pem" "$S/agent.crt.new"
t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$AG_CFG"
t_expect_contains "$T/c" "FAIL  key"
t_run 0 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
t_expect_contains "$T/o" "completed an interrupted rotation first"
t_expect_contains "$T/o" "replaces $(serial_of "$T/r2/cert.pem")"
# half a pair: a key without its certificate is dropped
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$S/agent.key.new" 2>/dev/null
t_run 0 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
t_expect_not_contains "$T/o" "interrupted"
[ ! -e "$S/agent.key.new" ] || t_fail "agent.key.new left"

# a pending pair while the control plane is down: kept, and the old pair stays in use
rotate_via_api "$T/r3"
cp "$T/r3/key.pem" "$S/agent.key.new"
cp "$T/r3/cert.pem" "$S/agent.crt.new"
cp "$S/agent.crt" "$T/cur.crt"
t_srv_stop
t_run 5 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
t_expect_contains "$T/o" "FATAL: certificate rotation failed: an interrupted certificate rotation could not be confirmed"
t_expect_contains "$T/o" "connection refused"
cmp -s "$S/agent.crt" "$T/cur.crt" || t_fail "agent.crt changed while the control plane was down"
[ -e "$S/agent.key.new" ] && [ -e "$S/agent.crt.new" ] || t_fail "the pending pair was dropped"
t_srv_start --cert-validity 1h
t_run 0 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
t_expect_contains "$T/o" "completed an interrupted rotation first"

# revoked: exit 3, the seed's words, and how to re-enroll
t_ag_install a2
t_run 0 "$T/o" t_srv_cli agents revoke "$AG_ID"
t_run 3 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
t_expect_contains "$T/o" "FATAL: certificate rotation failed: agent not found or revoked"
t_expect_contains "$T/o" "outpost-agent uninstall --config $AG_CFG"
t_expect_contains "$T/o" "outpost-agent install --control-plane URL --token-file FILE"
[ ! -e "$AG_STATE/agent.key.new" ] || t_fail "agent.key.new left after a refusal"
t_srv_stop

# expired within the grace: check says so, rotate-cert renews it
t_srv_start --cert-validity 3s --cert-rotation-grace 1h
t_ag_install a3
sleep 3.5
t_run 1 "$T/c" "$OUTPOST_AGENT" check --config "$AG_CFG"
t_expect_contains "$T/c" "FAIL  certificate    $AG_STATE/agent.crt expired at"
t_expect_contains "$T/c" "fix: outpost-agent rotate-cert --config $AG_CFG"
grep -q "FAIL  registration.*cert_expired" "$T/c" || { cat "$T/c" >&2; t_fail "check: registration not cert_expired"; }
t_run 0 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
t_expect_eq 200 "$(hb "$AG_STATE/agent.crt" "$AG_STATE/agent.key")" "heartbeat after rotating an expired certificate"
t_srv_stop

# expired beyond the grace: exit 4, the seed's procedure (new token, reinstall), nothing changed
t_srv_start --cert-validity 2s --cert-rotation-grace 1s
t_ag_install a4
cp "$AG_STATE/agent.crt" "$T/a4.crt"
sleep 3.5
t_run 4 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$AG_CFG"
grep -q "^FATAL: certificate rotation failed: the certificate expired at 20.*, longer ago than the control plane accepts for a rotation$" "$T/o" ||
  { cat "$T/o" >&2; t_fail "no beyond-grace message"; }
t_expect_contains "$T/o" "make a new enrollment token on the control plane (outpost-server token create) and enroll this host again"
t_expect_contains "$T/o" "outpost-agent uninstall --config $AG_CFG"
cmp -s "$AG_STATE/agent.crt" "$T/a4.crt" || t_fail "agent.crt changed"
[ ! -e "$AG_STATE/agent.key.new" ] || t_fail "agent.key.new left"
# the procedure works
t_run 0 "$T/o" "$OUTPOST_AGENT" uninstall --config "$AG_CFG"
t_ag_install a4
t_srv_stop
echo PASS
