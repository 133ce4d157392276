#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Restarting the server with tasks and leases in flight loses nothing: leases get a grace
# period, logs continue at their offsets, queued tasks stay queued, and an acknowledged
# completion survives a kill -9 (durable before acknowledged).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
FLAGS=(--lease-ttl 4s --restart-lease-grace 15s --heartbeat-interval 1s)
t_srv_start "${FLAGS[@]}"
tok=$(t_srv_cli token create 2>/dev/null)
t_srv_enroll a1 "$tok" '{"plugins":[{"name":"echo","types":["echo"]}]}'
for i in 1 2 3; do t_srv_cli task submit --type echo --name "t$i" >>"$T/tids" 2>/dev/null; done
t_expect_eq 200 "$(t_srv_agent a1 "$T/l1" POST /agent/leases '{"slots":1}')" "lease before restart"
L1=$(t_json "$T/l1" .leases[0].lease_id)
t1=$(t_json "$T/l1" .leases[0].task_id)
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L1/logs" '{"offset":0,"data":"before\n"}')" log

# a waiting long poll is answered (204) when the server stops, not left hanging
t_srv_agent a1 "$T/lp" POST /agent/leases '{"slots":1,"task_types":["other"],"wait":20}' >"$T/lp.code" &
lp=$!
sleep 0.3
start=$(date +%s%N)
t_srv_stop
wait $lp || true
ms=$((($(date +%s%N) - start) / 1000000))
t_expect_eq 204 "$(cat "$T/lp.code")" "long poll during shutdown"
[ $ms -lt 3000 ] || t_fail "stopping took ${ms}ms with a long poll waiting"
t_expect_contains "$T/server.log" "INFO server: stopped"

# down for longer than the lease TTL
sleep 4.5
t_srv_start "${FLAGS[@]}"
t_expect_contains "$T/server.log" "1 leases in flight get a grace of 15.0s after the restart"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L1/renew" '{}')" "renew after restart (grace)"
t_srv_expect 416 offset_mismatch "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L1/logs" '{"offset":0,"data":"before\n"}')"
t_expect_eq 7 "$(t_json "$T/o" .offset)"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L1/logs" '{"offset":7,"data":"after\n"}')" "log after restart"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L1/complete" '{"status":"succeeded"}')" "complete after restart"
t_expect_eq "$(printf 'before\nafter')" "$(t_srv_cli task logs "$t1")"
# the two queued tasks are still there
t_expect_eq 200 "$(t_srv_agent a1 "$T/l2" POST /agent/leases '{"slots":5}')" "queued tasks after restart"
t_expect_eq 2 "$(python3 -c 'import json,sys;print(len(json.load(open(sys.argv[1]))["leases"]))' "$T/l2")"
L2=$(t_json "$T/l2" .leases[0].lease_id)
L3=$(t_json "$T/l2" .leases[1].lease_id)
t3=$(t_json "$T/l2" .leases[1].task_id)

# kill -9 right after an acknowledged completion: the completion is there after the restart
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L3/complete" '{"status":"succeeded","result":{"n":3}}')" complete
t_srv_kill
t_srv_start "${FLAGS[@]}"
t_srv_cli task show "$t3" --json >"$T/t"
t_expect_eq succeeded "$(t_json "$T/t" .state)" "completion acknowledged before kill -9"
t_expect_eq 3 "$(t_json "$T/t" .result.n)"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L2/renew" '{}')" "lease in flight across kill -9"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L2/complete" '{"status":"succeeded"}')"
t_srv_cli task list --json >"$T/all"
t_expect_eq 3 "$(grep -c '"state": "succeeded"' "$T/all")" "all three tasks succeeded"

# the database checks out
sqlite3 "$SRV_DIR/outpost.db" 'PRAGMA integrity_check' >"$T/ic" 2>/dev/null || python3 -c '
import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$SRV_DIR/outpost.db" >"$T/ic"
t_expect_eq ok "$(cat "$T/ic")" "integrity_check"
python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode").fetchone()[0])' "$SRV_DIR/outpost.db" >"$T/jm"
t_expect_eq wal "$(cat "$T/jm")" "journal mode"
t_srv_stop
echo PASS
