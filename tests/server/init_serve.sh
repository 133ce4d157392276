#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# init makes a complete data dir (and refuses a used one); serve answers /health, refuses a
# second server on the same dir and bad settings, gives back the heap a large body took once
# requests stop, and stops cleanly on SIGTERM.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
S=$OUTPOST_SERVER

t_run 0 "$T/help" "$S" --help
t_expect_contains "$T/help" "init --data-dir D"
t_run 0 "$T/v" "$S" --version
t_expect_contains "$T/v" "outpost-server 0.1.0"
t_run 2 "$T/o" "$S" frobnicate
t_expect_contains "$T/o" "unknown command frobnicate"
t_run 2 "$T/o" "$S" init
t_expect_contains "$T/o" "--data-dir D is required"

t_srv_init --hostname cp.example.com --hostname 10.1.2.3
t_expect_eq 1 "$(grep -c '^oa_' <<<"$SRV_ADMIN_TOKEN")" "init prints one admin token"
for f in ca.crt ca.key server.crt server.key approval.key approval.pub server.yaml admin.yaml outpost.db; do
  [ -f "$SRV_DIR/$f" ] || t_fail "init did not create $f"
done
t_expect_eq 700 "$(stat -c %a "$SRV_DIR")" "data dir mode"
for f in ca.key server.key approval.key admin.yaml; do
  t_expect_eq 600 "$(stat -c %a "$SRV_DIR/$f")" "$f mode"
done
t_expect_contains "$SRV_DIR/admin.yaml" "$SRV_ADMIN_TOKEN"
t_expect_contains "$SRV_DIR/admin.yaml" "$SRV_URL"
# the server certificate names every --hostname, localhost and the loopback addresses
openssl x509 -in "$SRV_DIR/server.crt" -noout -ext subjectAltName >"$T/san"
for n in DNS:cp.example.com "IP Address:10.1.2.3" DNS:localhost "IP Address:127.0.0.1"; do
  t_expect_contains "$T/san" "$n"
done
openssl verify -CAfile "$SRV_DIR/ca.crt" "$SRV_DIR/server.crt" >/dev/null || t_fail "server cert not from the CA"
openssl x509 -in "$SRV_DIR/ca.crt" -noout -text | grep -q "ASN1 OID: prime256v1" || t_fail "CA is not EC P-256"
# the stored admin token is hashed, never in clear
if grep -qa "$SRV_ADMIN_TOKEN" "$SRV_DIR/outpost.db"; then t_fail "admin token stored in clear"; fi

# init refuses an existing, non-empty directory
t_run 1 "$T/o" "$S" init --data-dir "$SRV_DIR"
t_expect_contains "$T/o" "is not empty: init never overwrites"

# bad settings: file:line and the key; unknown flags
cp "$SRV_DIR/server.yaml" "$T/server.yaml.orig"
printf 'heartbeat_intervall: 5s\n' >>"$SRV_DIR/server.yaml"
t_run 1 "$T/o" "$S" serve --data-dir "$SRV_DIR"
t_expect_contains "$T/o" "server.yaml:"
t_expect_contains "$T/o" 'unknown setting "heartbeat_intervall"'
cp "$T/server.yaml.orig" "$SRV_DIR/server.yaml"
t_run 2 "$T/o" "$S" serve --data-dir "$SRV_DIR" --lease-ttl soon
t_expect_contains "$T/o" '"soon" is not a duration'
t_run 2 "$T/o" "$S" serve --data-dir "$SRV_DIR" --no-such-flag 1
t_expect_contains "$T/o" "unknown or incomplete option --no-such-flag"
t_run 1 "$T/o" "$S" serve --data-dir "$T/nowhere"
t_expect_contains "$T/o" "create it with outpost-server init"
t_run 0 "$T/o" "$S" serve --help
t_expect_contains "$T/o" "--heartbeat-interval"

t_srv_start --log-level debug
code=$(t_srv_req "$T/h" GET /health)
t_expect_eq 200 "$code" "/health"
t_expect_eq ok "$(t_json "$T/h" .status)"
t_expect_eq 0.1.0 "$(t_json "$T/h" .version)"
[[ "$(t_json "$T/h" .server_time)" =~ ^20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9:]{8}\.[0-9]{3}Z$ ]] || t_fail "server_time not RFC 3339 with ms"
# the certificate verifies for 127.0.0.1 and localhost
curl -sf --cacert "$SRV_CA" "https://localhost:$SRV_PORT/health" >/dev/null || t_fail "localhost SAN"

# a second server on the same data dir is refused
t_run 1 "$T/o" "$S" serve --data-dir "$SRV_DIR" --listen 127.0.0.1:$(t_free_port)
t_expect_contains "$T/o" "another outpost-server is serving"

# unknown route and method
t_srv_expect 404 not_found "$T/o" "$(t_srv_req "$T/o" GET /nope)"
t_srv_expect 405 method_not_allowed "$T/o" "$(t_srv_req "$T/o" DELETE /health)"
t_expect_contains "$T/o" '"server_time"'

# the heap a large body was parsed into is kept while requests come, and given back after 10s
# without one
python3 -c 'import json; print(json.dumps({"pad": list(range(100000))}))' >"$T/big.json"
t_srv_cli task submit --type testkit.run --params "$T/big.json" >"$T/o" 2>&1 || { cat "$T/o" >&2; t_fail "submitting a 600 KB task"; }
# (not with a sanitizer's allocator, which keeps its own heap)
if [ "$OUTPOST_SANITIZE" != 1 ]; then
  kept=$(awk '/^RssAnon:/ {print $2}' "/proc/$SRV_PID/status")
  t_wait_for 20 grep -q "DEBUG server: no request for 10s: the heap kept for large bodies goes back to the system" "$T/server.log"
  kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$SRV_PID/status")
  echo "the server's private memory: ${kept} KiB with the heap kept, ${kb} KiB after" >&2
  [ $((kept - kb)) -ge 2048 ] || t_fail "the server's private memory went from ${kept} to ${kb} KiB when it gave its heap back"
fi

# graceful stop on SIGTERM: exit 0, logged
t_srv_stop
t_expect_contains "$T/server.log" "INFO server: stopped"
# the access log has the requests and no token
t_expect_contains "$T/server.log" "INFO access: 127.0.0.1 GET /health 200"
t_expect_not_contains "$T/server.log" "$SRV_ADMIN_TOKEN"

# serve on a directory init never made: refused before anything is written, so init still works
mkdir -p "$T/fresh"
t_run 1 "$T/o" "$S" serve --data-dir "$T/fresh" --listen 127.0.0.1:$(t_free_port)
t_expect_contains "$T/o" "outpost-server serve: $(realpath "$T/fresh") is not initialized (no ca.crt): run outpost-server init --data-dir $(realpath "$T/fresh") first"
[ -z "$(ls -A "$T/fresh")" ] || t_fail "serve wrote into an uninitialized directory: $(ls -A "$T/fresh")"
: >"$T/fresh/server.lock" # as an older serve left it
t_run 0 "$T/o" "$S" init --data-dir "$T/fresh" --listen 127.0.0.1:$(t_free_port)
echo PASS
