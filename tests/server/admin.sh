#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The admin CLI and API: named admin tokens, the audit log (who, what, when, from where),
# settings, connection settings from flags and environment, exit codes, --json, --help,
# backup while serving, the offline break-glass token.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
S=$OUTPOST_SERVER
t_srv_init
t_srv_start

# --help everywhere, exit 0; usage errors exit 2
for c in token admin-token agents task cr settings audit status whoami; do
  t_run 0 "$T/h" "$S" $c --help
  t_expect_contains "$T/h" "usage: outpost-server $c"
done
t_run 0 "$T/h" "$S" init --help
t_run 0 "$T/h" "$S" backup --help
t_run 2 "$T/o" t_srv_cli task submit
t_expect_contains "$T/o" "--type T is required"
t_run 2 "$T/o" t_srv_cli token create --ttl forever
t_run 2 "$T/o" t_srv_cli agents frob
t_run 2 "$T/o" t_srv_cli token list --bogus

# named admin tokens
t_run 0 "$T/o" t_srv_cli whoami
t_expect_eq admin "$(head -1 "$T/o")"
carol=$(t_srv_cli admin-token create --name carol --description "on call" 2>/dev/null)
[[ "$carol" =~ ^oa_[0-9A-Za-z]{32}$ ]] || t_fail "admin token shape: $carol"
t_run 6 "$T/o" t_srv_cli admin-token create --name carol
t_expect_contains "$T/o" name_taken
t_srv_cli admin-token list >"$T/list"
t_expect_contains "$T/list" carol
t_expect_contains "$T/list" "on call"
# connection settings from the environment and flags override admin.yaml
printf '%s\n' "$carol" >"$T/carol.tok"
t_expect_eq carol "$("$S" whoami --server "$SRV_URL" --token-file "$T/carol.tok" --ca-file "$SRV_CA")" "flags"
t_expect_eq carol "$(OUTPOST_SERVER_URL=$SRV_URL OUTPOST_ADMIN_TOKEN=$carol OUTPOST_CA_FILE=$SRV_CA "$S" whoami)" "environment"
t_expect_eq carol "$(OUTPOST_ADMIN_TOKEN=$carol "$S" whoami --data-dir "$SRV_DIR")" "token from env, rest from admin.yaml"
t_expect_eq admin "$(OUTPOST_DATA_DIR=$SRV_DIR "$S" whoami)" "OUTPOST_DATA_DIR"
t_expect_eq admin "$("$S" whoami --admin-config "$SRV_DIR/admin.yaml")" "--admin-config"
# exit codes: unreachable 3, refused token 4, not found 5, conflict 6, usage 2
t_run 3 "$T/o" "$S" whoami --server "https://127.0.0.1:$(t_free_port)" --token-file "$T/carol.tok" --ca-file "$SRV_CA"
t_expect_contains "$T/o" "cannot reach"
t_run 3 "$T/o" "$S" whoami --server "$SRV_URL" --token-file "$T/carol.tok" --ca-file /etc/ssl/certs/ca-certificates.crt
printf 'oa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n' >"$T/bad.tok"
t_run 4 "$T/o" "$S" whoami --data-dir "$SRV_DIR" --token-file "$T/bad.tok"
t_expect_contains "$T/o" "auth_invalid"
t_run 5 "$T/o" t_srv_cli agents show agt_nosuchagent00000
t_expect_contains "$T/o" "agent_not_found"
t_run 5 "$T/o" t_srv_cli cr show cr_nosuch
t_run 2 "$T/o" "$S" whoami --data-dir "$T/empty-dir"
# --json on errors prints the error body too
t_run 5 "$T/o" t_srv_cli task show tsk_nosuch --json
t_expect_contains "$T/o" '"reason": "task_not_found"'

# revoking: the last active admin token cannot go; a revoked token is refused
t_run 0 "$T/o" t_srv_cli admin-token revoke carol
t_run 4 "$T/o" "$S" whoami --data-dir "$SRV_DIR" --token-file "$T/carol.tok"
t_run 6 "$T/o" t_srv_cli admin-token revoke admin
t_expect_contains "$T/o" last_admin_token
t_run 5 "$T/o" t_srv_cli admin-token revoke nobody

# settings: the recommended version reaches agents' heartbeats
t_run 0 "$T/o" t_srv_cli settings set --recommended-version 1.2.3
t_srv_cli settings show --json >"$T/s"
t_expect_eq 1.2.3 "$(t_json "$T/s" .recommended_version)"
t_expect_eq 15 "$(t_json "$T/s" .server.heartbeat_interval)"
tok=$(t_srv_cli token create --description "for the audit test" 2>/dev/null)
t_srv_enroll a1 "$tok"
t_srv_agent a1 "$T/hb" POST /agent/heartbeat '{}' >/dev/null
t_expect_eq 1.2.3 "$(t_json "$T/hb" .recommended_version)"
t_run 0 "$T/o" t_srv_cli settings set --recommended-version ""
t_srv_agent a1 "$T/hb" POST /agent/heartbeat '{}' >/dev/null
t_expect_eq "" "$(t_json "$T/hb" .recommended_version)" "cleared"

# agents: drain/undrain/revoke through the CLI, tables and JSON
id=$(cat "$T/agents/a1/id")
t_srv_cli agents list >"$T/list"
t_expect_contains "$T/list" "HOSTNAME"
t_expect_contains "$T/list" "$id"
t_run 0 "$T/o" t_srv_cli agents drain "$id"
t_run 0 "$T/o" t_srv_cli agents list --status draining --json
t_expect_contains "$T/o" "$id"
t_run 0 "$T/o" t_srv_cli agents undrain "$id"
t_run 0 "$T/o" t_srv_cli agents revoke "$id"
t_run 6 "$T/o" t_srv_cli agents drain "$id"
t_run 0 "$T/o" t_srv_cli status
t_expect_contains "$T/o" "agents: revoked=1"
t_expect_contains "$T/o" "database: sqlite"

# the audit log: every admin action, with who, what, when, from where, and the result
t_srv_cli audit list --json >"$T/audit"
python3 - "$T/audit" <<'PY'
import json, sys
entries = json.load(open(sys.argv[1]))["entries"]
seen = {(e["actor"], e["action"], e["result"]) for e in entries}
for want in [("admin", "admin_token.create", "ok"), ("admin", "admin_token.create", "name_taken"),
             ("admin", "admin_token.revoke", "ok"), ("admin", "admin_token.revoke", "last_admin_token"),
             ("admin", "settings.update", "ok"), ("admin", "token.create", "ok"),
             ("admin", "agent.drain", "ok"), ("admin", "agent.undrain", "ok"),
             ("admin", "agent.revoke", "ok"), ("admin", "agent.drain", "agent_revoked"),
             ("-", "auth.failed", "auth_invalid")]:
    assert want in seen, (want, sorted(seen))
for e in entries:
    assert e["remote"] == "127.0.0.1" and e["at"].endswith("Z"), e
revoke = [e for e in entries if e["action"] == "agent.revoke"][0]
assert revoke["target"].startswith("agt_") and revoke["detail"]["hostname"] == "a1", revoke
PY
t_srv_cli audit list >"$T/audit.txt"
t_expect_contains "$T/audit.txt" "ACTOR"
t_expect_contains "$T/audit.txt" "agent.revoke"
t_srv_cli audit list --actor admin --action token.create --json >"$T/a2"
t_expect_eq 1 "$(grep -c '"action": "token.create"' "$T/a2")"
t_run 1 "$T/o" t_srv_cli audit list --since yesterday
t_expect_contains "$T/o" "RFC 3339"
# reads are not audited (only refused tokens on them); secrets never are
python3 - "$T/audit" <<'PY'
import json, sys
for e in json.load(open(sys.argv[1]))["entries"]:
    assert e["action"] == "auth.failed" or "." in e["action"] and not e["action"].endswith((".list", ".show")), e
PY
t_expect_not_contains "$T/audit" "$tok"
t_expect_not_contains "$T/audit" "$carol"

# Prometheus metrics for a scraper holding an admin token
code=$(curl -s -o "$T/metrics" -w '%{http_code} %{content_type}' --cacert "$SRV_CA" \
  -H "Authorization: Bearer $SRV_ADMIN_TOKEN" "$SRV_URL/admin/metrics")
t_expect_eq "200 text/plain; version=0.0.4; charset=utf-8" "$code" "metrics"
t_expect_contains "$T/metrics" 'outpost_agents{status="revoked"} 1'
t_expect_contains "$T/metrics" "# TYPE outpost_db_transactions_total counter"
t_srv_expect 401 auth_required "$T/o" "$(t_srv_req "$T/o" GET /admin/metrics)"

# backup while serving: a consistent database plus the keys
t_run 0 "$T/o" "$S" backup --data-dir "$SRV_DIR" --out "$T/backup"
for f in outpost.db ca.crt ca.key server.crt server.key approval.key approval.pub server.yaml admin.yaml; do
  [ -f "$T/backup/$f" ] || t_fail "backup lacks $f"
done
t_expect_eq 600 "$(stat -c %a "$T/backup/ca.key")"
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) from audit").fetchone()[0] > 5)' "$T/backup/outpost.db" >"$T/n"
t_expect_eq True "$(cat "$T/n")" "backup holds the audit log"
t_run 1 "$T/o" "$S" backup --data-dir "$SRV_DIR" --out "$T/backup"

# break-glass: --offline refuses while serving, works when stopped, and is audited
t_run 6 "$T/o" "$S" admin-token create --name rescue --offline --data-dir "$SRV_DIR"
t_expect_contains "$T/o" "the server is running"
t_srv_stop
rescue=$("$S" admin-token create --name rescue --offline --data-dir "$SRV_DIR")
[[ "$rescue" =~ ^oa_ ]] || t_fail "offline token: $rescue"
t_srv_start
printf '%s\n' "$rescue" >"$T/rescue.tok"
t_expect_eq rescue "$("$S" whoami --data-dir "$SRV_DIR" --token-file "$T/rescue.tok")"
t_srv_cli audit list --json >"$T/audit"
t_expect_contains "$T/audit" '"actor": "offline"'
# retention: finished tasks (logs, leases, artifacts with them) and audit entries age out
t_srv_stop
t_srv_start --retention 1s --audit-retention 2s
tok=$(t_srv_cli token create 2>/dev/null)
t_srv_enroll r1 "$tok" '{"plugins":[{"name":"echo","types":["echo"]}]}'
old=$(t_srv_cli task submit --type echo 2>/dev/null)
queued=$(t_srv_cli task submit --type other 2>/dev/null)
t_srv_agent r1 "$T/l" POST /agent/leases '{"slots":1}' >/dev/null
L=$(t_json "$T/l" .leases[0].lease_id)
t_srv_agent r1 "$T/o" POST "/agent/leases/$L/logs" '{"offset":0,"data":"x"}' >/dev/null
t_srv_agent r1 "$T/o" POST "/agent/leases/$L/complete" '{"status":"succeeded"}' >/dev/null
t_wait_for 10 sh -c "! \"\$0\" task show $old --data-dir \"$SRV_DIR\" >/dev/null 2>&1" "$OUTPOST_SERVER"
t_run 0 "$T/o" t_srv_cli task show "$queued"
t_expect_contains "$T/server.log" "INFO retention: deleted 1 tasks"
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) from logs").fetchone()[0], c.execute("select count(*) from leases").fetchone()[0])' "$SRV_DIR/outpost.db" >"$T/left"
t_expect_eq "0 0" "$(cat "$T/left")" "logs and leases of the deleted task"
t_wait_for 10 python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); assert c.execute("select count(*) from audit").fetchone()[0] < 3' "$SRV_DIR/outpost.db"

# the backup serves as a data dir of its own
t_srv_stop
SRV_DIR=$T/backup
t_srv_start
t_expect_eq admin "$(t_srv_cli whoami)" "restored backup serves"
t_srv_stop
echo PASS
