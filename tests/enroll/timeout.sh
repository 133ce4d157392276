#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A control plane that accepts connections and never answers (kill -STOP): install and check
# name the timeout, the URL and what to check; while install waits, its argv holds no token.
# Label plain-only (signals).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start
t_plugin_dir "$T/plugins" testkit
t_ag_install ok --plugins-dir "$T/plugins"
CFG=$AG_CFG
tok=$(t_ag_token)
token=$(cat "$tok")

kill -STOP "$SRV_PID"
t_on_exit "kill -CONT $SRV_PID"
start=$(date +%s%N)
OUTPOST_CONNECT_TIMEOUT=2s OUTPOST_REQUEST_TIMEOUT=3s "$OUTPOST_AGENT" install --control-plane "$SRV_URL" \
  --token "$token" --ca-cert "$SRV_CA" --config-dir "$T/hung/etc" --state-dir "$T/hung/state" \
  --user "$(id -un)" --no-service >"$T/o" 2>&1 &
pid=$!
sleep 0.7
tr '\0' ' ' <"/proc/$pid/cmdline" >"$T/cmdline"
grep -q -- "--token x" "$T/cmdline" || { cat "$T/cmdline" >&2; t_fail "argv does not show the wiped token"; }
t_expect_not_contains "$T/cmdline" "$token"
if tr '\0' '\n' <"/proc/$pid/environ" | grep -qF -- "$token"; then t_fail "the token is in the environment"; fi
rc=0
wait "$pid" || rc=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
t_expect_eq 5 "$rc" "install exit code on a hung control plane"
t_expect_contains "$T/o" "FATAL: enrollment failed: Get \"$SRV_URL/health\": net/http: TLS handshake timeout"
t_expect_contains "$T/o" "no answer in time: check firewalls"
[ "$elapsed" -lt 8000 ] || t_fail "install took ${elapsed} ms with a 2 s connect timeout"
[ ! -e "$T/hung" ] || t_fail "a failed install left files"

# check: the control plane line fails with the timeout, the rest is skipped, not hung
t_run 1 "$T/c" env OUTPOST_CONNECT_TIMEOUT=1s OUTPOST_REQUEST_TIMEOUT=2s "$OUTPOST_AGENT" check --config "$CFG"
t_expect_contains "$T/c" "FAIL  control-plane  Get \"$SRV_URL/health\": net/http: TLS handshake timeout"
t_expect_contains "$T/c" "SKIP  registration"
t_expect_contains "$T/c" "OK    certificate"

# the server resumes: the token was never spent
kill -CONT "$SRV_PID"
t_run 0 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$tok" --ca-cert "$SRV_CA" \
  --config-dir "$T/later/etc" --state-dir "$T/later/state" --user "$(id -un)" --no-service
t_expect_contains "$T/o" "enrolled as agt_"
t_srv_stop
echo PASS
