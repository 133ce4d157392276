#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# outpost-agent uninstall: deregisters (the server then refuses the certificate), removes the
# config, key, certificate and what install created, keeps logs; --keep-state keeps workspaces;
# an unreachable control plane is reported with the admin command; directories that existed
# before install stay.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start
t_plugin_dir "$T/plugins" testkit

# a full uninstall
t_ag_install a1 --plugins-dir "$T/plugins"
S=$AG_STATE
cp "$S/agent.crt" "$T/a1.crt"
cp "$S/agent.key" "$T/a1.key"
printf 'log:\n  file: %s/agent.log\n' "$S" >>"$AG_CFG"
echo "a log line" >"$S/agent.log"
echo "an older log line" >"$S/agent.log.1"
mkdir -p "$S/work/tsk_1" && echo artifact >"$S/work/tsk_1/out.csv"
echo '{}' >"$S/plugin-cache.json"
t_run 0 "$T/o" "$OUTPOST_AGENT" uninstall --config "$AG_CFG"
t_expect_contains "$T/o" "deregistered $AG_ID from $SRV_URL"
t_expect_contains "$T/o" "removed $AG_CFG"
t_expect_contains "$T/o" "kept the logs: $S/agent.log*"
t_srv_cli agents list --all --json >"$T/al"
python3 - "$T/al" "$AG_ID" <<'PY' || t_fail "the agent is not revoked on the server"
import json, sys
a = [x for x in json.load(open(sys.argv[1]))["agents"] if x["id"] == sys.argv[2]]
assert a and a[0]["status"] == "revoked", a
PY
code=$(curl -s -o "$T/hb" -w '%{http_code}' --cacert "$SRV_CA" --cert "$T/a1.crt" --key "$T/a1.key" \
  -H 'Content-Type: application/json' --data '{}' "$SRV_URL/agent/heartbeat")
t_srv_expect 403 agent_revoked "$T/hb" "$code"
[ ! -e "$AG_CFG" ] && [ ! -e "$T/a1/etc" ] || t_fail "config dir left"
t_expect_eq "agent.log agent.log.1" "$(ls "$S" | tr '\n' ' ' | sed 's/ $//')" "what is left in the state dir"
# uninstalled twice: nothing to do, said so
t_run 2 "$T/o" "$OUTPOST_AGENT" uninstall --config "$AG_CFG"
t_expect_contains "$T/o" "nothing to uninstall"

# --keep-state: the identity goes, the work stays; the same dirs enroll again
t_ag_install a2
S=$AG_STATE
mkdir -p "$S/work/tsk_9" && echo kept >"$S/work/tsk_9/result.json"
t_run 0 "$T/o" "$OUTPOST_AGENT" uninstall --config "$AG_CFG" --keep-state
t_expect_contains "$T/o" "kept $S (--keep-state)"
for f in agent.key agent.crt agent.json ca.crt approval.pem server-ca.crt; do
  [ ! -e "$S/$f" ] || t_fail "--keep-state left $f"
done
t_expect_eq kept "$(cat "$S/work/tsk_9/result.json")" "workspace after --keep-state"
old_id=$AG_ID
t_ag_install a2
[ "$AG_ID" != "$old_id" ] || t_fail "re-enrolled with the old id"
t_expect_eq kept "$(cat "$S/work/tsk_9/result.json")" "workspace after reinstall"

# already revoked on the server: said so, uninstalled anyway
t_run 0 "$T/o" t_srv_cli agents revoke "$AG_ID"
t_run 0 "$T/o" "$OUTPOST_AGENT" uninstall --config "$AG_CFG"
t_expect_contains "$T/o" "$AG_ID was already revoked or deleted on $SRV_URL"

# directories that existed before install stay, with what else they hold
mkdir -p "$T/a3/etc" "$T/a3/state"
echo mine >"$T/a3/etc/other.conf"
echo mine >"$T/a3/state/other.file"
t_ag_install a3
t_run 0 "$T/o" "$OUTPOST_AGENT" uninstall --config "$AG_CFG"
t_expect_eq "other.conf" "$(ls "$T/a3/etc")" "config dir after uninstall"
t_expect_eq "other.file" "$(ls "$T/a3/state")" "state dir after uninstall"

# the control plane unreachable: uninstall still cleans up and names the admin command
t_ag_install a4
t_srv_stop
t_run 0 "$T/o" "$OUTPOST_AGENT" uninstall --config "$AG_CFG"
t_expect_contains "$T/o" "WARN: could not deregister $AG_ID: Post \"$SRV_URL/agent/deregister\": dial tcp"
t_expect_contains "$T/o" "outpost-server agents revoke $AG_ID"
[ ! -e "$T/a4/etc" ] && [ ! -e "$T/a4/state" ] || { ls -laR "$T/a4" >&2; t_fail "uninstall left $T/a4/etc or state"; }
echo PASS
