#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# TLS with a test CA made here: verification on by default, tls.ca_file, the agent's CA,
# host name checks, minimum versions, and a server that requires a client certificate.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/http/fixtures.sh"

http_ca
P=$T/pki
http_server S --cert "$P/server.pem" --key "$P/server.key"
http_server W --cert "$P/wrongname.pem" --key "$P/wrongname.key"
http_server M --cert "$P/server.pem" --key "$P/server.key" --client-ca "$P/ca.pem"
U=https://127.0.0.1:$S

# verification is on: an unknown CA is refused with the fix named
http_run 1 untrusted http.request "{\"url\": \"$U/json\"}"
http_expect_error untrusted "GET $U/json: TLS: the certificate of 127.0.0.1 is not trusted (SSL certificate problem: unable to get local issuer certificate); give the CA that signed it in tls.ca_file"
http_run 0 trusted http.request "{\"url\": \"$U/json\", \"tls\": {\"ca_file\": \"$P/ca.pem\"}}"
http_check "$R" 'r["result"]["status"] == 200' 'r["result"]["timings"]["tls"] > 0' 'r["result"]["timings"]["tls"] >= r["result"]["timings"]["connect"]'
# localhost is in the certificate too; a relative ca_file starts at the workspace
mkdir -p "$T/ws-relative"
cp "$P/ca.pem" "$T/ws-relative/"
http_run 0 relative http.request "{\"url\": \"https://localhost:$S/\", \"tls\": {\"ca_file\": \"ca.pem\"}}"
# a certificate from another CA is refused even with our CA given
http_server G --cert "$P/rogue.pem" --key "$P/rogue.key"
http_run 1 rogue http.request "{\"url\": \"https://127.0.0.1:$G/\", \"tls\": {\"ca_file\": \"$P/ca.pem\"}}"
http_expect_error rogue "GET https://127.0.0.1:$G/: TLS: the certificate of 127.0.0.1 is not trusted (SSL certificate problem: unable to get local issuer certificate); give the CA that signed it in tls.ca_file"
# the host name must be in the certificate
http_run 1 wrong-name http.request "{\"url\": \"https://127.0.0.1:$W/\", \"tls\": {\"ca_file\": \"$P/ca.pem\"}}"
t_expect_contains "$(http_field "$R" .error)" "GET https://127.0.0.1:$W/: TLS: the certificate of 127.0.0.1 does not name that host ("
# verify off (allowed by default) connects anyway and says so nowhere else
http_run 0 insecure http.request "{\"url\": \"https://127.0.0.1:$W/\", \"tls\": {\"verify\": false}}"
# the agent's ca_file (agent config) is trusted beside the system store
cat >"$T/agent-ca.yaml" <<YAML
ca_file: $P/ca.pem
YAML
http_run 0 agent-ca http.request "{\"url\": \"$U/\"}" --config "$T/agent-ca.yaml"
# minimum version: the python server speaks TLS 1.3, so 1.3 works
http_run 0 tls13 http.request "{\"url\": \"$U/\", \"tls\": {\"ca_file\": \"$P/ca.pem\", \"min_version\": \"1.3\"}}"
# a server that stops at TLS 1.2 is refused when 1.3 is the minimum
http_server S12 --cert "$P/server.pem" --key "$P/server.key" --tls-max 1.2
http_run 0 tls12 http.request "{\"url\": \"https://127.0.0.1:$S12/\", \"tls\": {\"ca_file\": \"$P/ca.pem\"}}"
http_run 1 tls12-refused http.request "{\"url\": \"https://127.0.0.1:$S12/\", \"tls\": {\"ca_file\": \"$P/ca.pem\", \"min_version\": \"1.3\"}}"
t_expect_contains "$(http_field "$R" .error)" "GET https://127.0.0.1:$S12/: TLS handshake with 127.0.0.1 port $S12 failed: "
t_expect_contains "$(http_field "$R" .error)" "alert protocol version; the server offers no TLS version at or above tls.min_version"

# a server that requires a client certificate
M_U=https://127.0.0.1:$M
http_run 1 no-client-cert http.request "{\"url\": \"$M_U/\", \"tls\": {\"ca_file\": \"$P/ca.pem\"}}"
# (TLS 1.3 sends the refusal after the handshake; the reset that follows may beat the alert)
err=$(http_field "$R" .error)
case "$err" in
  "GET $M_U/: TLS: 127.0.0.1 refused the connection without a client certificate ("*"); give tls.client_cert and tls.client_key") ;;
  "GET $M_U/: the connection to 127.0.0.1 port $M broke right after the TLS handshake: "*"; if the server requires a client certificate, give tls.client_cert and tls.client_key") ;;
  *) t_fail "no-client-cert: unexpected error [$err]" ;;
esac
http_run 0 client-cert http.request "{\"url\": \"$M_U/json\", \"tls\": {\"ca_file\": \"$P/ca.pem\", \"client_cert\": \"$P/client.pem\", \"client_key\": \"$P/client.key\"},
  \"expect\": {\"json\": {\"\$.ok\": true}}}"
# the key from a secret, and an encrypted key with its password from a secret
cat >"$T/secrets.yaml" <<YAML
secrets:
  client-key: "file:$P/client.key"
  key-pass: "file:$T/key-pass"
  fenced-key:
    from: "file:$P/client.key"
    allow: {types: [http.request], hosts: ["*.example.com"]}
YAML
printf 's3cret\n' >"$T/key-pass"
http_run 0 key-secret http.request "{\"url\": \"$M_U/\", \"tls\": {\"ca_file\": \"$P/ca.pem\", \"client_cert\": \"$P/client.pem\", \"client_key_secret\": \"client-key\"}}" --secrets "$T/secrets.yaml"
http_run 0 key-password http.request "{\"url\": \"$M_U/\", \"tls\": {\"ca_file\": \"$P/ca.pem\", \"client_cert\": \"$P/client.pem\", \"client_key\": \"$P/client-enc.key\", \"key_password_secret\": \"key-pass\"}}" --secrets "$T/secrets.yaml"
http_run 1 key-fenced http.request "{\"url\": \"$M_U/\", \"tls\": {\"ca_file\": \"$P/ca.pem\", \"client_cert\": \"$P/client.pem\", \"client_key_secret\": \"fenced-key\"}}" --secrets "$T/secrets.yaml"
http_expect_error key-fenced 'params.tls.client_key_secret: secret "fenced-key" is not available for 127.0.0.1: it is unknown to this agent, or its allow list (types, hosts) in the agent config refuses it; nothing was sent'
http_run 1 wrong-key http.request "{\"url\": \"$M_U/\", \"tls\": {\"ca_file\": \"$P/ca.pem\", \"client_cert\": \"$P/client.pem\", \"client_key\": \"$P/server.key\"}}"
t_expect_contains "$(http_field "$R" .error)" "GET $M_U/: TLS: cannot use the client certificate or key: "
t_expect_not_contains "$T/key-secret.err" "BEGIN PRIVATE KEY"
t_log ok
