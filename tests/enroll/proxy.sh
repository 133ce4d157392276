#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# install through a real CONNECT proxy (tinyproxy): --https-proxy reaches the control plane,
# lands in the config, and check goes through it; a dead proxy, or one that refuses CONNECT,
# is named as the proxy.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
unset no_proxy NO_PROXY https_proxy HTTPS_PROXY
command -v tinyproxy >/dev/null || t_fail "tinyproxy is not installed (scripts/deps.sh)"
t_srv_init
t_srv_start
t_plugin_dir "$T/plugins" testkit
PPORT=$(t_free_port)
cat >"$T/tinyproxy.conf" <<CONF
Port $PPORT
Listen 127.0.0.1
Timeout 30
LogFile "$T/tinyproxy.log"
LogLevel Connect
MaxClients 20
Allow 127.0.0.1
ConnectPort $SRV_PORT
CONF
tinyproxy -d -c "$T/tinyproxy.conf" >"$T/tinyproxy.out" 2>&1 &
t_track $!
t_wait_port "$PPORT"

t_ag_install a1 --plugins-dir "$T/plugins" --https-proxy "http://127.0.0.1:$PPORT" --no-proxy example.invalid
t_expect_contains "$AG_CFG" "https_proxy: \"http://127.0.0.1:$PPORT\""
t_expect_contains "$AG_CFG" "no_proxy: \"example.invalid\""
t_expect_contains "$T/tinyproxy.log" "CONNECT 127.0.0.1:$SRV_PORT"
n=$(grep -c "CONNECT" "$T/tinyproxy.log")
t_run 0 "$T/c" "$OUTPOST_AGENT" check --config "$AG_CFG"
[ "$(grep -c CONNECT "$T/tinyproxy.log")" -gt "$n" ] || t_fail "check did not go through the proxy"

# a proxy that is not there: the proxy is named, not the control plane
DEAD=$(t_free_port)
tok=$(t_ag_token)
t_run 5 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$tok" --ca-cert "$SRV_CA" \
  --https-proxy "http://127.0.0.1:$DEAD" --config-dir "$T/a2/etc" --state-dir "$T/a2/state" \
  --user "$(id -un)" --no-service
t_expect_contains "$T/o" "FATAL: enrollment failed: Post \"$SRV_URL/agent/enroll\": proxyconnect tcp: dial tcp 127.0.0.1:$DEAD: connect: connection refused"
t_expect_contains "$T/o" "check https_proxy"
# a proxy that refuses CONNECT to the control plane's port
P2=$(t_free_port)
sed "s/^Port .*/Port $P2/; s/^ConnectPort .*/ConnectPort 1/; s|^LogFile .*|LogFile \"$T/tinyproxy2.log\"|" \
  "$T/tinyproxy.conf" >"$T/tinyproxy2.conf"
tinyproxy -d -c "$T/tinyproxy2.conf" >"$T/tinyproxy2.out" 2>&1 &
t_track $!
t_wait_port "$P2"
t_run 5 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$tok" --ca-cert "$SRV_CA" \
  --https-proxy "http://127.0.0.1:$P2" --config-dir "$T/a2/etc" --state-dir "$T/a2/state" \
  --user "$(id -un)" --no-service
t_expect_contains "$T/o" "proxyconnect tcp: the proxy refused to connect to 127.0.0.1:$SRV_PORT (CONNECT tunnel failed, response 403)"
# the token was never spent: without the proxy it enrolls
t_run 0 "$T/o" "$OUTPOST_AGENT" install --control-plane "$SRV_URL" --token-file "$tok" --ca-cert "$SRV_CA" \
  --config-dir "$T/a2/etc" --state-dir "$T/a2/state" --user "$(id -un)" --no-service
t_srv_stop
echo PASS
