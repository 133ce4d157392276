#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Heartbeats, the lease long poll and completions share kept-alive connections: over 100
# heartbeats (and a few tasks) a counting TCP forwarder sees one or two connections.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 0.1s --lease-ttl 3s --long-poll 2s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create 2>/dev/null)
ta_enroll a1 "$tok"
D=$T/agents/a1
fport=$(t_free_port)
python3 "$OUTPOST_SOURCE_DIR/tests/agent/tcpcount.py" "$fport" "$SRV_PORT" "$T/connections" &
t_track $!
t_wait_port "$fport"
sed -i "s|^control_plane: .*|control_plane: https://127.0.0.1:$fport|" "$D/config.yaml"
base=$(cat "$T/connections") # t_wait_port's probe
ta_start a1
for i in 1 2 3; do
  task=$(ta_submit testkit.run '{"action": "echo"}')
  ta_wait_task "$task" succeeded
done
# 100 heartbeats at 0.1 s (± 20 % jitter) take about 10 s.
sleep 11
beats=$(grep -c 'POST /agent/heartbeat' "$T/server.log" || true)
[ "$beats" -ge 100 ] || t_fail "only $beats heartbeats reached the server in 11 s"
# One more is the clock check at start (GET /health with time checks off: its own TLS settings).
n=$(( $(cat "$T/connections") - base - 1 ))
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || t_fail "$n TLS connections for $beats heartbeats and 3 tasks (expected 1 or 2)"
ta_status a1 >/dev/null
t_expect_eq "$n" "$(t_json "$D/status.json" .tls_handshakes)" "handshakes the agent counted"
kill -TERM "$(ta_pid a1)"
ta_wait_exit a1
t_srv_stop
echo "ok: $beats heartbeats over $n connection(s)"
