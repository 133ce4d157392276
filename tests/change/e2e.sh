#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Change requests end to end: the real outpost-server, two real agents with the change plugin
# and the bundled change types, and a real nginx on loopback under a small service manager.
# An unapproved change request is never leased; an approved one runs on its target only and
# restarts nginx; one whose health url keeps failing is rolled back (with the http plugin, where
# it is built); a file put in place that fails its check is rolled back; a dry run changes
# nothing; an approval that does not verify with the agent's key is refused; `cr show` prints
# the step-by-step record; a change whose agent was killed mid-step waits in needs_attention
# and resumes from its record.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/change/lib.sh"
t_srv_init
t_srv_start --heartbeat-interval 500ms --lease-ttl 3s --long-poll 2s
. "$OUTPOST_SOURCE_DIR/tests/agent/agentlib.sh"
t_plugin_dir "$P" change
# the http plugin, where it is built, for the health_url check of restart-service
[ -f "$OUTPOST_PLUGIN_DIR/http.so" ] && t_plugin_dir "$P" http
tok=$(t_srv_cli token create --uses 5 2>/dev/null)
bob=$(t_srv_cli admin-token create --name bob 2>/dev/null)
echo "$bob" >"$T/bob.tok"
as_bob() { "$OUTPOST_SERVER" "$@" --data-dir "$SRV_DIR" --token-file "$T/bob.tok"; }
for a in a1 a2; do
  ta_enroll "$a" "$tok" "change_types_dir: $T/agents/$a/types"
  mkdir -p "$T/agents/$a/types"
  chmod 755 "$T/agents/$a/types"
  # the bundled types come from the source tree (an installed agent finds them by itself)
  if grep -q '^  config:$' "$T/agents/$a/config.yaml"; then
    sed -i "s#^  config:\$#  config:\n    change:\n      bundled_dir: $CH_BUNDLED#" "$T/agents/$a/config.yaml"
  else
    sed -i "s#^  dir: $P\$#  dir: $P\n  config:\n    change:\n      bundled_dir: $CH_BUNDLED#" "$T/agents/$a/config.yaml"
  fi
done
# a change type of a1's own, for the lost-lease case
cat >"$T/agents/a1/types/three-steps.yaml" <<'EOF'
name: three-steps
description: a step, a slow step, a last step
apply:
  - name: first
    shell: true
    exec: echo first >> "$OUTPOST_CR_DIR/log"
  - name: slow
    shell: true
    exec: >-
      echo slow >> "$OUTPOST_CR_DIR/log";
      if [ "$(grep -c slow "$OUTPOST_CR_DIR/log")" = 1 ]; then
      sleep 60 & echo $! > "$OUTPOST_CR_DIR/sleep.pid"; wait; else sleep 1; fi
  - name: last
    shell: true
    exec: echo last >> "$OUTPOST_CR_DIR/log"
EOF
chmod 644 "$T/agents/a1/types/three-steps.yaml"
A1=$(cat "$T/agents/a1/id")
A2=$(cat "$T/agents/a2/id")
ta_start a1
ta_start a2
# the agents report their change types (from change.types) in a heartbeat
has_types() {
  t_srv_cli agents show "$1" --json 2>/dev/null | python3 -c 'import json,sys
a = json.load(sys.stdin); a = a.get("agent", a)
assert {"put-file", "restart-service", "sql-migration"} <= {t["name"] for t in a["change_types"]}'
}
t_wait_for 20 has_types "$A1"
t_wait_for 20 has_types "$A2"

# nginx on loopback, under the test's service manager
PORT=$(t_free_port)
NG=$T/nginx
mkdir -p "$NG" "$T/www"
echo v1 >"$T/www/index.html"
cat >"$NG/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $NG/body;
  proxy_temp_path $NG/proxy;
  fastcgi_temp_path $NG/fastcgi;
  uwsgi_temp_path $NG/uwsgi;
  scgi_temp_path $NG/scgi;
  server { listen 127.0.0.1:$PORT; root $T/www; }
}
EOF
cp "$NG/nginx.conf" "$NG/nginx.conf.orig"
bash "$CH_SRC/svc.sh" run "$NG/svc" -- nginx -c "$NG/nginx.conf" -e "$NG/error.log" >"$NG/svc.log" 2>&1 &
t_track $!
t_wait_port "$PORT"
URL=http://127.0.0.1:$PORT/

# cr_file FILE TYPE TARGET PARAMS_JSON: a CR.yaml (JSON is YAML)
cr_file() {
  printf 'title: %s test\nchange_type: %s\ntarget_agent: %s\ntimeout: 2m\nparams: %s\n' "$2" "$2" "$3" "$4" >"$1"
}
cr_state() { t_srv_cli cr show "$1" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
cr_wait() { # ID STATE [SECONDS]
  local i st=""
  for ((i = 0; i < ${3:-30} * 10; i++)); do
    st=$(cr_state "$1")
    [ "$st" = "$2" ] && return 0
    sleep 0.1
  done
  t_srv_cli cr show "$1" >&2 || true
  t_fail "change request $1: expected state $2, got $st"
}
RESTART="{\"unit\": \"nginx-test\", \"restart_command\": [\"bash\", \"$CH_SRC/svc.sh\", \"restart\", \"$NG/svc\"],
 \"health_command\": [\"curl\", \"-sf\", \"-o\", \"/dev/null\", \"$URL\"], \"health_attempts\": 20, \"health_interval\": \"250ms\"}"

# --- an unapproved change request is never leased, to any agent.
cr_file "$T/restart.yaml" restart-service "$A1" "$RESTART"
cr=$(t_srv_cli cr create --file "$T/restart.yaml" 2>/dev/null)
pid0=$(cat "$NG/svc/pid")
sleep 3
t_expect_eq pending "$(cr_state "$cr")" "before approval"
t_srv_cli cr show "$cr" --json >"$T/pending.json"
t_expect_eq "" "$(t_json "$T/pending.json" .task_id)" "a task before approval"
t_expect_not_contains "$T/agents/a1/agent.log" "change.apply"
t_expect_not_contains "$T/agents/a2/agent.log" "change.apply"
t_expect_eq "$pid0" "$(cat "$NG/svc/pid")" "nginx before approval"
# the planned steps, with their phases, are shown for review
t_srv_cli cr show "$cr" >"$T/pending.txt"
t_expect_contains "$T/pending.txt" "apply: restart: runs {{ params.restart_command }} (when params.restart_command)"
t_expect_contains "$T/pending.txt" "verify: health command: runs {{ params.health_command }} (when params.health_command)"

# --- approved by bob: leased by its target only, nginx restarted and healthy.
t_run 0 "$T/approve.out" as_bob cr approve "$cr"
cr_wait "$cr" succeeded
t_srv_cli cr show "$cr" --json >"$T/cr.json"
task=$(t_json "$T/cr.json" .task_id)
t_expect_eq "$A1" "$(ta_task "$task" agent_id)" "the agent that ran it"
t_expect_contains "$T/agents/a1/agent.log" "running task $task (change.apply)"
t_expect_not_contains "$T/agents/a2/agent.log" "$task"
[ "$(cat "$NG/svc/pid")" != "$pid0" ] || t_fail "nginx was not restarted"
t_expect_eq 1 "$(cat "$NG/svc/restarts")"
t_expect_eq v1 "$(curl -sf "$URL")"
# the step-by-step record: start and end of each step that ran, skipped ones once
python3 - "$T/cr.json" <<'PY'
import json, sys
cr = json.load(open(sys.argv[1]))
recs = [s["step"] for s in cr["steps"]]
ev = [(r["index"], r["name"], r["event"], r.get("status")) for r in recs]
assert ev == [(1, "unit is known to systemd", "end", "skipped"),
              (2, "restart", "start", None), (2, "restart", "end", "ok"),
              (3, "systemctl restart", "end", "skipped"),
              (4, "unit is active", "end", "skipped"),
              (5, "health command", "start", None), (5, "health command", "end", "ok"),
              (6, "health url", "end", "skipped")], ev
assert recs[2]["exit_code"] == 0 and recs[2]["output"]["sha256"].startswith("sha256:")
assert all(s["attempt"] == 1 and not s["late"] for s in cr["steps"])
PY
t_srv_cli cr show "$cr" >"$T/cr.txt"
t_expect_contains "$T/cr.txt" '2 apply "restart": started (exec)'
t_expect_contains "$T/cr.txt" '2 apply "restart": ok in '
t_expect_contains "$T/cr.txt" ', exit 0, output sha256:'
t_expect_contains "$T/cr.txt" '1 precheck "unit is known to systemd": skipped (when: not params.restart_command (it is set))'
t_expect_contains "$T/cr.txt" '5 verify "health command": ok in '
t_srv_cli task logs "$task" >"$T/task.log" 2>&1
t_expect_contains "$T/task.log" "apply step 2 (restart): bash $CH_SRC/svc.sh restart $NG/svc"
t_expect_contains "$T/task.log" "restarted: pid $pid0 -> "

# --- a service that does not come back healthy: its health url keeps failing (an http.request
# step through the http plugin), the change fails after its attempts, the rollback runs.
if [ -f "$P/http.so" ]; then
  UNHEALTHY="{\"unit\": \"nginx-test\", \"restart_command\": [\"bash\", \"$CH_SRC/svc.sh\", \"restart\", \"$NG/svc\"],
   \"health_url\": \"${URL%/}/no-such-page\", \"health_attempts\": 2, \"health_interval\": \"100ms\",
   \"rollback_command\": [\"touch\", \"$T/rolled-back\"]}"
  cr_file "$T/unhealthy.yaml" restart-service "$A1" "$UNHEALTHY"
  cr=$(t_srv_cli cr create --file "$T/unhealthy.yaml" 2>/dev/null)
  as_bob cr approve "$cr" >/dev/null 2>&1
  cr_wait "$cr" failed
  [ -e "$T/rolled-back" ] || t_fail "the rollback command of an unhealthy restart did not run"
  t_srv_cli cr show "$cr" --json >"$T/unhealthy.json"
  t_expect_contains "$(t_json "$T/unhealthy.json" .task.reason)" 'verify step 6 (health url) failed'
  t_expect_contains "$(t_json "$T/unhealthy.json" .task.reason)" "expected status 2xx or 3xx, got 404"
  t_expect_contains "$(t_json "$T/unhealthy.json" .task.reason)" 'rolled back (1 rollback step ran)'
  t_srv_cli cr show "$cr" >"$T/unhealthy.txt"
  t_expect_contains "$T/unhealthy.txt" '6 verify "health url": failed in '
  t_expect_contains "$T/unhealthy.txt" '7 rollback "rollback command": ok in '
fi

# --- a file put in place that fails its check is rolled back (put-file, verify nginx -t).
cr_file "$T/badconf.yaml" put-file "$A1" "$(python3 -c 'import json,sys; print(json.dumps({"path": sys.argv[1] + "/nginx.conf",
  "content": "events {}\nhttp { server { listen nope; } }\n", "verify_command": ["nginx", "-t", "-q", "-c", sys.argv[1] + "/nginx.conf", "-e", sys.argv[1] + "/test.log"],
  "then_command": ["bash", sys.argv[2], "restart", sys.argv[1] + "/svc"]}))' "$NG" "$CH_SRC/svc.sh")"
cr=$(t_srv_cli cr create --file "$T/badconf.yaml" 2>/dev/null)
as_bob cr approve "$cr" >/dev/null 2>&1
cr_wait "$cr" failed
cmp -s "$NG/nginx.conf" "$NG/nginx.conf.orig" || t_fail "the broken config was not rolled back"
t_srv_cli cr show "$cr" --json >"$T/bad.json"
t_expect_contains "$(t_json "$T/bad.json" .task.reason)" 'verify step 5 (verify command) failed: exit status 1: '
t_expect_contains "$(t_json "$T/bad.json" .task.reason)" 'rolled back (2 rollback steps ran)'
t_srv_cli cr show "$cr" >"$T/bad.txt"
t_expect_contains "$T/bad.txt" '5 verify "verify command": failed in '
t_expect_contains "$T/bad.txt" '7 rollback "restore the backup": ok in '
t_expect_contains "$T/bad.txt" '8 rollback "then command after restore": ok in '
[ -f "$T/agents/a1/state/changes/$cr/backup" ] || t_fail "no backup in the change request's directory"
t_expect_eq v1 "$(curl -sf "$URL")" "nginx after the rollback"

# --- a dry run changes nothing; the same change for real does.
put() { python3 -c 'import json,sys; print(json.dumps({"path": sys.argv[1], "content": "v2\n", "dry_run": sys.argv[2] == "1"}))' "$T/www/index.html" "$1"; }
cr_file "$T/dry.yaml" put-file "$A1" "$(put 1)"
cr=$(t_srv_cli cr create --file "$T/dry.yaml" 2>/dev/null)
as_bob cr approve "$cr" >/dev/null 2>&1
cr_wait "$cr" succeeded
t_expect_eq v1 "$(cat "$T/www/index.html")" "after a dry run"
[ ! -e "$T/agents/a1/state/changes/$cr" ] || t_fail "a dry run made its change request directory"
task=$(t_srv_cli cr show "$cr" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])')
t_srv_cli task show "$task" --json >"$T/drytask.json"
t_expect_eq dry_run "$(t_json "$T/drytask.json" .result.outcome)"
t_srv_cli cr show "$cr" >"$T/dry.txt"
t_expect_contains "$T/dry.txt" '2 apply "back up the current file": dry run, would run /bin/sh -c'
cr_file "$T/real.yaml" put-file "$A1" "$(put 0)"
cr=$(t_srv_cli cr create --file "$T/real.yaml" 2>/dev/null)
as_bob cr approve "$cr" >/dev/null 2>&1
cr_wait "$cr" succeeded
t_expect_eq v2 "$(curl -sf "$URL")" "after the change"
cmp -s "$T/agents/a1/state/changes/$cr/backup" <(echo v1) || t_fail "the backup does not hold the old file"

# --- an approval that does not verify with the agent's key is refused before anything runs.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null | openssl pkey -pubout >"$T/agents/a2/state/approval.pem"
cr_file "$T/tamper.yaml" put-file "$A2" "{\"path\": \"$T/www/tampered\", \"content\": \"x\"}"
cr=$(t_srv_cli cr create --file "$T/tamper.yaml" 2>/dev/null)
as_bob cr approve "$cr" >/dev/null 2>&1
cr_wait "$cr" failed
t_srv_cli cr show "$cr" --json >"$T/tamper.json"
t_expect_contains "$(t_json "$T/tamper.json" .task.reason)" "change request approval refused by the agent: the approval signature does not verify"
t_expect_eq "[]" "$(t_json "$T/tamper.json" .steps)" "steps of a refused change"
[ ! -e "$T/www/tampered" ] || t_fail "a change with a bad signature ran"

# --- the agent is killed mid-step: what the step started dies with it (the worker takes its
# children's process groups along); the change is not re-leased but waits in needs_attention;
# the steps recorded before the kill reached the server; resume skips what was done and runs
# the step that had started again.
cr_file "$T/three.yaml" three-steps "$A1" '{}'
cr=$(t_srv_cli cr create --file "$T/three.yaml" 2>/dev/null)
as_bob cr approve "$cr" >/dev/null 2>&1
t_wait_for 20 test -s "$T/agents/a1/state/changes/$cr/sleep.pid"
step_pid=$(cat "$T/agents/a1/state/changes/$cr/sleep.pid")
kill -0 "$step_pid" || t_fail "the slow step's command is not running"
kill -KILL "$(ta_pid a1)"
wait "$(ta_pid a1)" 2>/dev/null || true
gone() { [ ! -e "/proc/$step_pid" ] || grep -q '^[0-9]* (.*) Z' "/proc/$step_pid/stat"; }
t_wait_for 5 gone
cr_wait "$cr" needs_attention
ta_start a1
task=$(t_srv_cli cr show "$cr" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])')
t_run 0 "$T/resolve.out" as_bob task resolve "$task" --action resume
cr_wait "$cr" succeeded
t_expect_eq "first slow slow last" "$(tr '\n' ' ' <"$T/agents/a1/state/changes/$cr/log" | sed 's/ $//')"
t_srv_cli cr show "$cr" >"$T/three.txt"
t_expect_contains "$T/three.txt" '[attempt 1 '
t_expect_contains "$T/three.txt" '2 apply "slow": started (shell)'
t_expect_contains "$T/three.txt" '1 apply "first" (resume): skipped (recorded as done by an earlier attempt)'
t_expect_contains "$T/three.txt" '3 apply "last" (resume): ok in '

kill -TERM "$(ta_pid a1)" "$(ta_pid a2)"
ta_wait_exit a1
ta_wait_exit a2
t_srv_stop
echo ok
