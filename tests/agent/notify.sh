#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Type=notify: READY=1 once running, WATCHDOG=1 while alive, STOPPING=1 at SIGTERM, sent to a
# NOTIFY_SOCKET the test binds (systemd is not PID 1 here: decisions.md 20). Also SIGHUP:
# the config is reloaded and plugins rescanned (a plugin added to the directory is served).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 1s --lease-ttl 3s --long-poll 1s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
tok=$(t_srv_cli token create 2>/dev/null)
ta_enroll a1 "$tok" "" "" "  enabled: [testkit]"
D=$T/agents/a1
python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(s.recv(4096).decode().replace("\n", " ") + "\n")
PY
t_track $!
t_wait_for 5 test -S "$T/notify.sock"
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=400000 ta_start a1
t_wait_for 5 grep -q "READY=1" "$T/notify.log"
t_wait_for 5 grep -q "WATCHDOG=1" "$T/notify.log"

# SIGHUP: enable the template plugin; its task type is served without a restart.
t_plugin_dir "$P" template
sed -i 's/enabled: \[testkit\]/enabled: [testkit, template]/' "$D/config.yaml"
kill -HUP "$(ta_pid a1)"
t_wait_for 10 grep -q "loaded template 1.0.0" "$D/agent.log"
task=$(ta_submit template.echo '{"name": "reload"}')
ta_wait_task "$task" succeeded
# A broken config on SIGHUP is refused and the agent keeps running with the old one.
echo "concurency: 3" >>"$D/config.yaml"
kill -HUP "$(ta_pid a1)"
t_wait_for 5 grep -q "reload refused, keeping the running config: $D/config.yaml:.*unknown key \"concurency\"" "$D/agent.log"
task=$(ta_submit testkit.run '{"action": "echo"}')
ta_wait_task "$task" succeeded

kill -TERM "$(ta_pid a1)"
ta_wait_exit a1
t_expect_eq 0 "$TA_RC"
t_expect_contains "$T/notify.log" "STOPPING=1"
t_srv_stop
echo ok
