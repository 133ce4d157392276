#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ssh plugin host keys: strict by default; unknown and changed keys fail with the fingerprint
# and how to trust it; pinned fingerprints; the loud insecure flag.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/ssh/fixture.sh"
ssh_fixture_init
sshd_start a
P=$SSHD_PORT
FP=$(sshd_fingerprint a)
C=$(ssh_conn "$P")
KH=$T/known_hosts
ssh_task "$T/t.json" ssh.exec "$C, \"command\": \"echo ok\""

t_log "known host"
ssh_run 0 "$T/o1" "$T/t.json"

t_log "unknown host"
mv "$KH" "$KH.good"
: > "$KH"
ssh_run 1 "$T/o2" "$T/t.json"
t_expect_eq "host key verification failed for 127.0.0.1:$P: the host is unknown: $KH has no key for [127.0.0.1]:$P. It presented ssh-ed25519 key $FP. If that is the host's fingerprint (check on the host: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), trust it by adding the key to the known_hosts file (ssh-keyscan -p $P 127.0.0.1 >> $KH) or by pinning it in the task: \"host_key\": \"$FP\"" "$(t_json "$T/o2" .error)"

t_log "the advice works: ssh-keyscan into known_hosts"
ssh-keyscan -p "$P" -t ed25519 127.0.0.1 2>/dev/null >> "$KH"
ssh_run 0 "$T/o2b" "$T/t.json"

t_log "no known_hosts file at all"
rm -f "$KH"
ssh_run 1 "$T/o3" "$T/t.json"
t_expect_contains "$(t_json "$T/o3" .error)" "the host is unknown: $KH has no key for [127.0.0.1]:$P (the file does not exist). It presented ssh-ed25519 key $FP."

t_log "changed host key"
echo "[127.0.0.1]:$P $(cat "$T/keys/other.pub")" > "$KH"
ssh_run 1 "$T/o4" "$T/t.json"
t_expect_eq "host key verification failed for 127.0.0.1:$P: the host key has CHANGED: it presented ssh-ed25519 key $FP, which does not match the key recorded for [127.0.0.1]:$P in $KH. Someone may be intercepting the connection, or the host was reinstalled. If the change is expected, remove the old key (ssh-keygen -R '[127.0.0.1]:$P' -f $KH) and add the new one, or pin it in the task with \"host_key\": \"$FP\"" "$(t_json "$T/o4" .error)"

t_log "a pinned fingerprint is enough, whatever known_hosts says"
ssh_task "$T/pin.json" ssh.exec "$C, \"command\": \"echo ok\", \"host_key\": \"$FP\""
ssh_run 0 "$T/o5" "$T/pin.json"

t_log "a pinned fingerprint that does not match"
BAD=$(ssh-keygen -lf "$T/keys/other.pub" | awk '{print $2}')
ssh_task "$T/pin2.json" ssh.exec "$C, \"command\": \"echo ok\", \"host_key\": \"$BAD\""
ssh_run 1 "$T/o6" "$T/pin2.json"
t_expect_eq "host key verification failed for 127.0.0.1:$P: it presented ssh-ed25519 key $FP, but params.host_key pins $BAD. If the host's key was changed on purpose, update the pin; otherwise someone may be intercepting the connection" "$(t_json "$T/o6" .error)"

t_log "a pin that is not a fingerprint"
ssh_task "$T/pin3.json" ssh.exec "$C, \"command\": \"echo ok\", \"host_key\": \"MD5:aa:bb\""
ssh_run 2 "$T/o7" "$T/pin3.json"
t_expect_eq 'params.host_key: does not match pattern ^SHA256:[A-Za-z0-9+/]{43}=?$' "$(t_json "$T/o7" .error)"

t_log "insecure_ignore_host_key connects, and says so loudly"
ssh_task "$T/ins.json" ssh.exec "$C, \"command\": \"echo ok\", \"insecure_ignore_host_key\": true"
ssh_run 0 "$T/o8" "$T/ins.json"
t_expect_contains "$T/o8.log" "WARN task: INSECURE: the host key of 127.0.0.1:$P is NOT verified (params.insecure_ignore_host_key is set); it presented ssh-ed25519 key $FP."

t_log "a pin and the insecure flag together"
ssh_task "$T/both.json" ssh.exec "$C, \"command\": \"echo ok\", \"insecure_ignore_host_key\": true, \"host_key\": \"$FP\""
ssh_run 2 "$T/o9" "$T/both.json"
t_expect_eq "params: host_key and insecure_ignore_host_key exclude each other" "$(t_json "$T/o9" .error)"

t_log "the default known_hosts path when the settings give none"
cat > "$T/agent.yaml" <<EOF2
plugins:
  dir: $OUTPOST_PLUGIN_DIR
  enabled: [ssh]
EOF2
ssh_run 1 "$T/o10" "$T/t.json"
t_expect_contains "$(t_json "$T/o10" .error)" "the host is unknown: /etc/outpost-agent/known_hosts has no key for [127.0.0.1]:$P"

t_log "an unknown plugin setting stops the plugin from loading"
ssh_agent_config "      knownhosts: /x"
ssh_run 3 "$T/o11" "$T/t.json"
t_expect_contains "$T/o11.log" 'plugins.config.ssh: unknown setting "knownhosts" (known: known_hosts, local_paths, env_allow)'
