#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Credentials only from named secrets (basic, bearer, a header), fenced by their allow lists
# and never sent to another host on a redirect; proxies: the agent's by default (a real
# CONNECT proxy, tinyproxy), a per-task override, "none", no_proxy, and a refused CONNECT.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/http/fixtures.sh"

http_server S
http_server O
U=http://127.0.0.1:$S
printf 'pa:ss w0rd\n' >"$T/pw"
printf 'tok-123' >"$T/token"
cat >"$T/secrets.yaml" <<YAML
secrets:
  api-password: "file:$T/pw"
  api-token: "file:$T/token"
  api-key:
    from: "file:$T/token"
    allow: {types: [http.request, http.batch], hosts: ["127.0.0.1"]}
  elsewhere:
    from: "file:$T/token"
    allow: {types: [http.request], hosts: ["*.example.com"]}
  not-for-http:
    from: "file:$T/token"
    allow: {types: [ssh.exec]}
YAML
SEC=(--secrets "$T/secrets.yaml")
basic=$(printf 'alice:pa:ss w0rd' | base64)

http_run 0 basic http.request "{\"url\": \"$U/auth?expect=Basic%20$basic\", \"auth\": {\"type\": \"basic\", \"username\": \"alice\", \"secret\": \"api-password\"}}" "${SEC[@]}"
t_expect_contains "$T/basic.err" 'params: sends the credentials of secret "api-password" to 127.0.0.1 over plain http:// (unencrypted)'
http_run 0 bearer http.request "{\"url\": \"$U/auth?expect=Bearer%20tok-123\", \"auth\": {\"type\": \"bearer\", \"secret\": \"api-token\"}}" "${SEC[@]}"
http_run 0 header http.request "{\"url\": \"$U/auth?header=X-API-Key&expect=tok-123\", \"auth\": {\"type\": \"header\", \"header\": \"X-API-Key\", \"secret\": \"api-key\"}}" "${SEC[@]}"
http_run 1 wrong-password http.request "{\"url\": \"$U/auth?expect=nope\", \"auth\": {\"type\": \"basic\", \"username\": \"alice\", \"secret\": \"api-password\"}}" "${SEC[@]}"
http_expect_error wrong-password "GET $U/auth?expect=nope: expected status 2xx or 3xx, got 401 (set expect.status to accept it)"
for f in basic bearer header wrong-password; do
  t_expect_not_contains "$T/$f.err" "tok-123"
  t_expect_not_contains "$T/$f.err" "w0rd"
  t_expect_not_contains "$T/$f.json" "tok-123"
done

# refused secrets: unknown, fenced to other hosts, fenced to other task types
http_run 1 unknown-secret http.request "{\"url\": \"$U/\", \"auth\": {\"type\": \"bearer\", \"secret\": \"nope\"}}" "${SEC[@]}"
http_expect_error unknown-secret 'params.auth.secret: secret "nope" is not available for 127.0.0.1: it is unknown to this agent, or its allow list (types, hosts) in the agent config refuses it; nothing was sent'
http_run 1 fenced-host http.request "{\"url\": \"$U/\", \"auth\": {\"type\": \"bearer\", \"secret\": \"elsewhere\"}}" "${SEC[@]}"
http_expect_error fenced-host 'params.auth.secret: secret "elsewhere" is not available for 127.0.0.1: it is unknown to this agent, or its allow list (types, hosts) in the agent config refuses it; nothing was sent'
http_run 1 fenced-type http.request "{\"url\": \"$U/\", \"auth\": {\"type\": \"bearer\", \"secret\": \"not-for-http\"}}" "${SEC[@]}"
http_check "$R" 'r["status"] == "failed"' 'r["error"].startswith("params.auth.secret: secret \"not-for-http\" is not available for 127.0.0.1")'
http_run 1 batch-fenced http.batch "{\"requests\": [{\"url\": \"$U/a\"}, {\"url\": \"http://localhost:$S/b\"}], \"defaults\": {\"auth\": {\"type\": \"header\", \"header\": \"X-API-Key\", \"secret\": \"api-key\"}}}" "${SEC[@]}"
http_expect_error batch-fenced 'params.requests[1].auth.secret: secret "api-key" is not available for localhost: it is unknown to this agent, or its allow list (types, hosts) in the agent config refuses it; nothing was sent'
if [ -s "$T/S.log" ] && grep -qE " /(a|b)$" "$T/S.log"; then t_fail "a refused batch sent requests"; fi

# a redirect to another host gets no credentials; one to the same host keeps a header key
http_run 1 redirect-away http.request "{\"url\": \"$U/redirect-to?url=http://localhost:$O/auth%3Fheader%3DX-API-Key%26expect%3Dtok-123\", \"auth\": {\"type\": \"header\", \"header\": \"X-API-Key\", \"secret\": \"api-key\"}}" "${SEC[@]}"
http_check "$R" 'r["result"]["status"] == 401' 'r["result"]["redirects"] == 1' "r['result']['final_url'].startswith('http://localhost:$O/auth')"
http_run 0 redirect-same http.request "{\"url\": \"$U/redirect-to?url=/auth%3Fheader%3DX-API-Key%26expect%3Dtok-123\", \"auth\": {\"type\": \"header\", \"header\": \"X-API-Key\", \"secret\": \"api-key\"}}" "${SEC[@]}"
http_run 1 redirect-bearer http.request "{\"url\": \"$U/redirect-to?url=http://localhost:$O/auth%3Fexpect%3DBearer%2520tok-123\", \"auth\": {\"type\": \"bearer\", \"secret\": \"api-token\"}}" "${SEC[@]}"
http_check "$R" 'r["result"]["status"] == 401'

# proxies: a real CONNECT proxy that only tunnels to the TLS server's port
http_ca
P=$T/pki
http_server TS --cert "$P/server.pem" --key "$P/server.key"
http_tinyproxy PX "$TS"
cat >"$T/agent.yaml" <<YAML
https_proxy: http://127.0.0.1:$PX
no_proxy: example.internal
YAML
http_run 0 via-agent-proxy http.request "{\"url\": \"https://127.0.0.1:$TS/json\", \"tls\": {\"ca_file\": \"$P/ca.pem\"}}" --config "$T/agent.yaml"
t_expect_contains "$T/PX.log" "CONNECT 127.0.0.1:$TS"
http_run 0 plain-via-proxy http.request "{\"url\": \"$U/via-proxy\"}" --config "$T/agent.yaml"
t_expect_contains "$T/PX.log" "GET http://127.0.0.1:$S/via-proxy"
http_run 0 proxy-none http.request "{\"url\": \"$U/direct\", \"proxy\": \"none\"}" --config "$T/agent.yaml"
http_run 0 no-proxy http.request "{\"url\": \"$U/no-proxy\", \"no_proxy\": \"127.0.0.1\"}" --config "$T/agent.yaml"
t_expect_not_contains "$T/PX.log" "/direct"
t_expect_not_contains "$T/PX.log" "/no-proxy"
# the proxy refuses CONNECT to another port
http_server TS2 --cert "$P/server.pem" --key "$P/server.key"
http_run 1 connect-refused http.request "{\"url\": \"https://127.0.0.1:$TS2/\", \"tls\": {\"ca_file\": \"$P/ca.pem\"}}" --config "$T/agent.yaml"
http_expect_error connect-refused "GET https://127.0.0.1:$TS2/: the proxy http://127.0.0.1:$PX refused to open a tunnel (CONNECT) to 127.0.0.1 port $TS2: HTTP 403; check the proxy's rules for this destination, or set params.proxy (\"none\" for a direct connection)"
# a per-task proxy overrides the agent's; a dead proxy says so
http_tinyproxy PX2
http_run 0 task-proxy http.request "{\"url\": \"https://127.0.0.1:$TS2/\", \"tls\": {\"ca_file\": \"$P/ca.pem\"}, \"proxy\": \"http://127.0.0.1:$PX2\"}" --config "$T/agent.yaml"
t_expect_contains "$T/PX2.log" "CONNECT 127.0.0.1:$TS2"
DEAD=$(http_free_port)
http_run 1 dead-proxy http.request "{\"url\": \"$U/\", \"proxy\": \"http://127.0.0.1:$DEAD\"}"
t_expect_contains "$(http_field "$R" .error)" "GET $U/: cannot connect to the proxy http://127.0.0.1:$DEAD: "
# the plugin's own proxy setting overrides the agent's: "none", or another proxy
cat >"$T/plugin-none.yaml" <<YAML
https_proxy: http://127.0.0.1:$DEAD
plugins:
  config:
    http: {proxy: none}
YAML
http_run 0 plugin-proxy-none http.request "{\"url\": \"$U/plugin-none\"}" --config "$T/plugin-none.yaml"
cat >"$T/plugin-proxy.yaml" <<YAML
https_proxy: http://127.0.0.1:$DEAD
plugins:
  config:
    http: {proxy: "http://127.0.0.1:$PX2", user_agent: "probe/1.0"}
YAML
http_run 0 plugin-proxy http.request "{\"url\": \"$U/echo?plugin-proxy\"}" --config "$T/plugin-proxy.yaml"
t_expect_contains "$T/PX2.log" "GET http://127.0.0.1:$S/echo?plugin-proxy"
http_check "$R" "__import__('json').loads(r['result']['body'])['headers']['user-agent'] == 'probe/1.0'"
# no proxy from the environment: the worker gets none, and an empty agent config means direct
https_proxy=http://127.0.0.1:$DEAD http_proxy=http://127.0.0.1:$DEAD http_run 0 env-ignored http.request "{\"url\": \"$U/env\"}"
t_log ok
