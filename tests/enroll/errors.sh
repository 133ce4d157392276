#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Enrollment errors as users search for them, against the real server (and openssl s_server
# with a foreign CA): reused token, unknown CA, DNS failure, connection refused, not a control
# plane; --insecure-skip-verify works and warns at every start. Timeouts: timeout.sh; clocks:
# clock.sh.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start
HOSTPORT=127.0.0.1:$SRV_PORT
install() { # EXPECTED_RC OUT NAME [args...]
  local want=$1 out=$2 name=$3
  shift 3
  t_run "$want" "$out" "$OUTPOST_AGENT" install --config-dir "$T/$name/etc" --state-dir "$T/$name/state" \
    --user "$(id -un)" --no-service "$@"
  if [ "$want" != 0 ] && [ -e "$T/$name" ]; then ls -laR "$T/$name" >&2; t_fail "a failed install left $T/$name"; fi
}

# a reused token: the seed's words, and how to make a new one
tok=$(t_ag_token)
install 0 "$T/o" ok1 --control-plane "$SRV_URL" --token-file "$tok" --ca-cert "$SRV_CA"
install 1 "$T/o" used --control-plane "$SRV_URL" --token-file "$tok" --ca-cert "$SRV_CA"
head -n 1 "$T/o" | grep -q WARN && sed -i 1d "$T/o" # the missing default plugins dir
t_expect_eq "FATAL: enrollment failed: token has already been used" "$(grep FATAL "$T/o")"
t_expect_contains "$T/o" "make a new one on the control plane (outpost-server token create)"
# unknown, revoked and expired tokens: the server's words
echo oe_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA >"$T/bad.tok"
install 1 "$T/o" bad --control-plane "$SRV_URL" --token-file "$T/bad.tok" --ca-cert "$SRV_CA"
t_expect_contains "$T/o" "FATAL: enrollment failed: "
t_expect_contains "$T/o" "token_invalid"
tok=$(t_ag_token --ttl 1s)
sleep 1.2
install 1 "$T/o" expired --control-plane "$SRV_URL" --token-file "$tok" --ca-cert "$SRV_CA"
t_expect_contains "$T/o" "token_expired"
t_expect_contains "$T/o" "make a new token"

# the real server's certificate without its CA: the seed's line, then the --ca-cert hint
tok=$(t_ag_token)
install 5 "$T/o" noca --control-plane "$SRV_URL" --token-file "$tok"
t_expect_contains "$T/o" "FATAL: enrollment failed: Post \"https://$HOSTPORT/agent/enroll\": x509: certificate signed by unknown authority"
t_expect_contains "$T/o" "--ca-cert /path/to/ca.crt"
t_expect_contains "$T/o" "--insecure-skip-verify"
# the token was not spent: it works with the CA
install 0 "$T/o" noca2 --control-plane "$SRV_URL" --token-file "$tok" --ca-cert "$SRV_CA"

# openssl s_server with a certificate from a foreign CA
F=$T/foreign
mkdir -p "$F"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$F/ca.key" -out "$F/ca.crt" \
  -subj /CN=foreign-ca -days 2 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$F/srv.key" -out "$F/srv.csr" \
  -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$F/ext"
openssl x509 -req -in "$F/srv.csr" -CA "$F/ca.crt" -CAkey "$F/ca.key" -CAcreateserial -days 2 \
  -extfile "$F/ext" -out "$F/srv.crt" 2>/dev/null
FPORT=$(t_free_port)
openssl s_server -accept "127.0.0.1:$FPORT" -cert "$F/srv.crt" -key "$F/srv.key" -www -quiet >"$T/s_server.log" 2>&1 &
t_track $!
t_wait_port "$FPORT"
tok=$(t_ag_token)
install 5 "$T/o" fx --control-plane "https://127.0.0.1:$FPORT" --token-file "$tok" --ca-cert "$SRV_CA"
t_expect_contains "$T/o" "FATAL: enrollment failed: Post \"https://127.0.0.1:$FPORT/agent/enroll\": x509: certificate signed by unknown authority"
t_expect_contains "$T/o" "--ca-cert"
install 5 "$T/o" fx --control-plane "https://127.0.0.1:$FPORT" --token-file "$tok"
t_expect_contains "$T/o" "x509: certificate signed by unknown authority"
# trusting it: TLS works, but it is not a control plane
install 1 "$T/o" fx --control-plane "https://127.0.0.1:$FPORT" --token-file "$tok" --ca-cert "$F/ca.crt"
t_expect_contains "$T/o" "is not a control plane's"
t_expect_contains "$T/o" "check the URL"
# another name than the certificate's
install 5 "$T/o" fx --control-plane "https://localhost:$FPORT" --token-file "$tok" --ca-cert "$F/ca.crt"
t_expect_contains "$T/o" "FATAL: enrollment failed: Post \"https://localhost:$FPORT/agent/enroll\": x509: certificate is not valid for localhost"
t_expect_contains "$T/o" "use the name the certificate was made for"

# DNS failure, connection refused: named, with the URL and what to check
install 5 "$T/o" dns --control-plane "https://outpost-no-such-host.invalid:8443" --token-file "$tok" --ca-cert "$SRV_CA"
t_expect_contains "$T/o" "FATAL: enrollment failed: Post \"https://outpost-no-such-host.invalid:8443/agent/enroll\": dial tcp: lookup outpost-no-such-host.invalid: no such host"
t_expect_contains "$T/o" "nslookup"
DEAD=$(t_free_port)
install 5 "$T/o" refused --control-plane "https://127.0.0.1:$DEAD" --token-file "$tok" --ca-cert "$SRV_CA"
t_expect_contains "$T/o" "FATAL: enrollment failed: Post \"https://127.0.0.1:$DEAD/agent/enroll\": dial tcp 127.0.0.1:$DEAD: connect: connection refused"
t_expect_contains "$T/o" "that the control plane runs"
# a proxy without a scheme is a usage error
install 2 "$T/o" proxy --control-plane "$SRV_URL" --token-file "$tok" --https-proxy proxy.corp:3128
t_expect_contains "$T/o" "\"proxy.corp:3128\" has no scheme: write it as http://proxy.corp:3128"
# a bad --ca-cert is a usage error before anything is written
echo "not a certificate" >"$T/junk.pem"
install 2 "$T/o" junk --control-plane "$SRV_URL" --token-file "$tok" --ca-cert "$T/junk.pem"
t_expect_contains "$T/o" "--ca-cert"

# --insecure-skip-verify: works, and warns loudly at every start that talks to the control plane
t_plugin_dir "$T/plugins" testkit
install 0 "$T/o" insecure --control-plane "$SRV_URL" --token-file "$tok" --insecure-skip-verify \
  --plugins-dir "$T/plugins"
t_expect_contains "$T/o" "WARN: INSECURE: TLS verification of the control plane is OFF"
t_expect_contains "$T/o" "enrolled as agt_"
CFG=$T/insecure/etc/config.yaml
t_expect_contains "$CFG" "insecure_skip_verify: true"
t_run 0 "$T/o" "$OUTPOST_AGENT" check --config "$CFG"
t_expect_contains "$T/o" "WARN: INSECURE"
t_expect_contains "$T/o" "WARN  tls            INSECURE"
t_run 0 "$T/o" "$OUTPOST_AGENT" rotate-cert --config "$CFG"
t_expect_contains "$T/o" "WARN: INSECURE"
t_run 0 "$T/o" "$OUTPOST_AGENT" uninstall --config "$CFG"
t_expect_contains "$T/o" "WARN: INSECURE"
t_expect_contains "$T/o" "deregistered agt_"
t_srv_stop
echo PASS
