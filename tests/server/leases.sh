#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tasks and leases: the long poll answers at once when work arrives; renew, logs with offsets,
# complete and its replay, release; fencing (409 lease_lost) after expiry and re-lease; the
# reaper's requeue up to max attempts then lease_expired; cancel; routing and `unroutable`.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
t_srv_start --lease-ttl 30s --heartbeat-interval 1s --release-backoff 4s
tok=$(t_srv_cli token create --uses 10 2>/dev/null)
ECHO='"plugins":[{"name":"echo","version":"1","types":["echo"]}]'
t_srv_enroll a1 "$tok" "{$ECHO,\"pool\":\"p\",\"tags\":[\"x\",\"y\"]}"
t_srv_enroll a2 "$tok" "{$ECHO,\"pool\":\"q\"}"
a1=$(cat "$T/agents/a1/id")
a2=$(cat "$T/agents/a2/id")
submit() { t_srv_cli task submit "$@" 2>>"$T/submit.err"; }
lease_of() { t_json "$1" .leases[0].lease_id; }

# an empty long poll waits, then 204
start=$(date +%s%N)
t_expect_eq 204 "$(t_srv_agent a1 "$T/o" POST /agent/leases '{"slots":1,"wait":0.6}')" "empty poll"
ms=$((($(date +%s%N) - start) / 1000000))
[ $ms -ge 550 ] || t_fail "the long poll answered after ${ms}ms, before its wait"

# the long poll answers at once when a task arrives
t_srv_agent a1 "$T/lp" POST /agent/leases '{"slots":1,"wait":20}' >"$T/lp.code" &
lp=$!
sleep 0.5
start=$(date +%s%N)
tid=$(submit --type echo --params - <<<'{"msg":"hi"}')
wait $lp
ms=$((($(date +%s%N) - start) / 1000000))
t_expect_eq 200 "$(cat "$T/lp.code")" "long poll"
[ $ms -lt 3000 ] || t_fail "the long poll took ${ms}ms to hear of the task"
t_expect_eq "$tid" "$(t_json "$T/lp" .leases[0].task_id)"
t_expect_eq 1 "$(t_json "$T/lp" .leases[0].attempt)"
t_expect_eq hi "$(t_json "$T/lp" .leases[0].params.msg)"
t_expect_eq 30 "$(t_json "$T/lp" .leases[0].ttl)"
L=$(lease_of "$T/lp")

# an agent that hangs up its waiting lease request does not get the next task
curl -s --max-time 1 --cacert "$SRV_CA" --cert "$T/agents/a2/cert.pem" --key "$T/agents/a2/key.pem" \
  -H 'Content-Type: application/json' --data '{"wait":20}' "$SRV_URL/agent/leases" >/dev/null || true
sleep 0.3
t_srv_cli status --json >"$T/st"
t_expect_eq 0 "$(t_json "$T/st" .waiting_lease_requests)" "waiting requests after the agent hung up"

# renew, logs with offsets, complete, replay
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/renew" '{"progress":{"pct":10}}')" renew
t_expect_eq false "$(t_json "$T/o" .cancel)"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/logs" '{"offset":0,"data":"line one\n"}')" log1
t_expect_eq 9 "$(t_json "$T/o" .offset)"
t_srv_expect 416 offset_mismatch "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/logs" '{"offset":0,"data":"line one\n"}')"
t_expect_eq 9 "$(t_json "$T/o" .offset)" "416 gives the server's offset"
t_srv_expect 416 offset_mismatch "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/logs" '{"offset":20,"data":"gap"}')"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/logs" '{"offset":9,"data":"line twö\n"}')" log2
t_expect_eq 19 "$(t_json "$T/o" .offset)"
# another agent cannot touch the lease
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a2 "$T/o" POST "/agent/leases/$L/renew" '{}')"
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a2 "$T/o" POST "/agent/leases/$L/complete" '{"status":"failed"}')"
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/complete" '{"status":"succeeded","result":{"answer":42},"duration":0.25,"artifacts":[{"name":"out.csv","size":3,"sha256":"abc","path":"/w/out.csv"}],"log":{"offset":19,"data":"the end\n"}}')" "complete, with the end of the log"
t_expect_eq true "$(t_json "$T/o" .acknowledged)"
t_expect_not_contains "$T/o" duplicate
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/complete" '{"status":"succeeded"}')" "complete replay"
t_expect_eq true "$(t_json "$T/o" .duplicate)"
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/renew" '{}')"
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/logs" '{"offset":19,"data":"late"}')"
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_eq succeeded "$(t_json "$T/t" .state)"
t_expect_eq 42 "$(t_json "$T/t" .result.answer)"
t_expect_eq out.csv "$(t_json "$T/t" .artifacts[0].name)"
t_expect_eq "$a1" "$(t_json "$T/t" .agent_id)"
t_run 0 "$T/logs" t_srv_cli task logs "$tid"
# --follow prints what arrives until the task ends
tid2=$(submit --type echo)
t_srv_cli task logs "$tid2" --follow >"$T/follow" 2>&1 &
fpid=$!
t_srv_agent a1 "$T/l" POST /agent/leases '{"slots":1}' >/dev/null
L2=$(lease_of "$T/l")
t_srv_agent a1 "$T/o" POST "/agent/leases/$L2/logs" '{"offset":0,"data":"first\n"}' >/dev/null
sleep 0.7
t_srv_agent a1 "$T/o" POST "/agent/leases/$L2/logs" '{"offset":6,"data":"second\n"}' >/dev/null
# a log chunk out of step in a completion is dropped (and said in the server's log); the
# completion is recorded all the same
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L2/complete" '{"status":"succeeded","log":{"offset":99,"data":"lost\n"}}')" "complete, log out of step"
wait $fpid
t_expect_eq "$(printf 'first\nsecond')" "$(cat "$T/follow")" "task logs --follow"
t_expect_contains "$T/server.log" "lease $L2: the log chunk sent with the completion was not stored (offset mismatch; offset 99, the server has 13 bytes)"
t_srv_cli task show "$tid2" --json >"$T/t2"
t_expect_eq succeeded "$(t_json "$T/t2" .state)" "completed despite the log chunk"
t_expect_eq "$(printf 'line one\nline twö\nthe end')" "$(cat "$T/logs")" "task logs"
t_srv_cli task show "$tid" >"$T/human"
t_expect_contains "$T/human" "succeeded"
t_expect_contains "$T/human" "$L"

# small artifacts uploaded to the server (decisions 17), fenced like the rest
tid=$(submit --type echo)
t_srv_agent a1 "$T/l" POST /agent/leases '{"slots":1}' >/dev/null
L=$(lease_of "$T/l")
printf 'a,b\n1,2\n' >"$T/art.csv"
b64=$(base64 -w0 "$T/art.csv")
sum=$(sha256sum "$T/art.csv" | cut -d' ' -f1)
art() { t_srv_agent a1 "$T/o" POST "/agent/leases/$1/artifacts" "$2"; }
t_expect_eq 201 "$(art "$L" "{\"name\":\"out.csv\",\"content\":\"$b64\",\"sha256\":\"$sum\",\"content_type\":\"text/csv\"}")" upload
t_expect_eq "$sum" "$(t_json "$T/o" .sha256)"
t_expect_eq 200 "$(art "$L" "{\"name\":\"out.csv\",\"content\":\"$b64\"}")" "upload replay"
t_expect_eq true "$(t_json "$T/o" .duplicate)"
t_srv_expect 409 artifact_exists "$T/o" "$(art "$L" '{"name":"out.csv","content":"eHl6"}')"
t_srv_expect 400 invalid_field "$T/o" "$(art "$L" '{"name":"bad.b64","content":"not base64!"}')"
t_srv_expect 400 checksum_mismatch "$T/o" "$(art "$L" "{\"name\":\"x.csv\",\"content\":\"$b64\",\"sha256\":\"$(printf '0%.0s' $(seq 64))\"}")"
t_srv_expect 400 invalid_field "$T/o" "$(art "$L" "{\"name\":\"../etc/passwd\",\"content\":\"$b64\"}")"
python3 -c 'import base64,json;print(json.dumps({"name":"big.bin","content":base64.b64encode(b"x"*600000).decode()}))' >"$T/big.json"
t_srv_expect 413 artifact_too_large "$T/o" "$(art "$L" "@$T/big.json")"
t_srv_agent a1 "$T/o" POST "/agent/leases/$L/complete" "{\"status\":\"succeeded\",\"artifacts\":[{\"name\":\"out.csv\",\"size\":8,\"sha256\":\"$sum\",\"path\":\"/w/out.csv\"},{\"name\":\"huge.parquet\",\"size\":9000000000,\"sha256\":\"ab\",\"path\":\"/w/huge.parquet\"}]}" >/dev/null
t_srv_expect 409 lease_lost "$T/o" "$(art "$L" "{\"name\":\"late.csv\",\"content\":\"$b64\"}")"
t_srv_cli task artifacts "$tid" >"$T/arts"
t_expect_contains "$T/arts" "out.csv"
t_expect_contains "$T/arts" "huge.parquet"
t_run 0 "$T/o" t_srv_cli task artifact "$tid" out.csv --out "$T/got.csv"
cmp "$T/art.csv" "$T/got.csv" || t_fail "downloaded artifact differs"
t_expect_eq "$(cat "$T/art.csv")" "$(t_srv_cli task artifact "$tid" out.csv)" "artifact to stdout"
t_run 5 "$T/o" t_srv_cli task artifact "$tid" nope.csv

# release gives the task back without spending an attempt, and not to the same agent at once
tid=$(submit --type echo --max-attempts 1)
t_srv_agent a1 "$T/l" POST /agent/leases '{"slots":1}' >/dev/null
L=$(lease_of "$T/l")
t_expect_eq 200 "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L/release" '{"reason":"plugin missing"}')" release
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_eq queued "$(t_json "$T/t" .state)"
t_expect_eq 0 "$(t_json "$T/t" .attempt)"
t_expect_contains "$(t_json "$T/t" .reason)" "plugin missing"
t_expect_eq 204 "$(t_srv_agent a1 "$T/o" POST /agent/leases '{"slots":1}')" "released agent waits out the backoff"
t_expect_eq 200 "$(t_srv_agent a2 "$T/l" POST /agent/leases '{"slots":1}')" "another agent takes it"
t_expect_eq 1 "$(t_json "$T/l" .leases[0].attempt)"
L=$(lease_of "$T/l")
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a2 "$T/o" POST "/agent/leases/$L/release" '{}' >/dev/null; t_srv_agent a2 "$T/o" POST "/agent/leases/$L/release" '{}')"
t_srv_cli task cancel "$tid" >/dev/null
# a waiting request of the releasing agent hears of the task when its backoff (4s) ends
tid=$(submit --type echo)
t_srv_agent a1 "$T/l" POST /agent/leases '{"slots":1}' >/dev/null
t_srv_agent a1 "$T/o" POST "/agent/leases/$(lease_of "$T/l")/release" '{}' >/dev/null
start=$(date +%s%N)
t_expect_eq 200 "$(t_srv_agent a1 "$T/l" POST /agent/leases '{"slots":1,"wait":15}')" "after the backoff"
ms=$((($(date +%s%N) - start) / 1000000))
[ $ms -ge 3500 ] && [ $ms -lt 9000 ] || t_fail "the released task came back after ${ms}ms, not after the 4s backoff"
t_expect_eq "$tid" "$(t_json "$T/l" .leases[0].task_id)"
t_srv_agent a1 "$T/o" POST "/agent/leases/$(lease_of "$T/l")/complete" '{"status":"succeeded"}' >/dev/null

# cancel: queued ends at once; leased is told through renew and heartbeat
tid=$(submit --type echo)
t_run 0 "$T/o" t_srv_cli task cancel "$tid"
t_expect_contains "$T/o" cancelled
t_run 6 "$T/o" t_srv_cli task cancel "$tid"
t_expect_contains "$T/o" task_finished
tid=$(submit --type echo)
t_srv_agent a1 "$T/l" POST /agent/leases '{"slots":1}' >/dev/null
L=$(lease_of "$T/l")
t_run 0 "$T/o" t_srv_cli task cancel "$tid"
t_expect_contains "$T/o" "cancel requested"
t_srv_agent a1 "$T/o" POST "/agent/leases/$L/renew" '{}' >/dev/null
t_expect_eq true "$(t_json "$T/o" .cancel)" "renew says cancel"
t_srv_agent a1 "$T/hb" POST /agent/heartbeat "{\"running\":[\"$L\"]}" >/dev/null
t_expect_eq "[\"$L\"]" "$(t_json "$T/hb" .cancel)" "heartbeat says cancel"
t_srv_agent a1 "$T/o" POST "/agent/leases/$L/complete" '{"status":"cancelled"}' >/dev/null
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_eq cancelled "$(t_json "$T/t" .state)"
t_run 5 "$T/o" t_srv_cli task show tsk_nosuchtask

# routing: type, pool, environment, tags, target host; unroutable names what matched nobody
only() { # AGENT_THAT_GETS_IT OTHER submit-args...
  local got=$1 other=$2 tid
  shift 2
  tid=$(submit --type echo "$@")
  t_expect_eq 204 "$(t_srv_agent "$other" "$T/o" POST /agent/leases '{"slots":5}')" "$other must not get $*"
  t_expect_eq 200 "$(t_srv_agent "$got" "$T/o" POST /agent/leases '{"slots":5}')" "$got must get $*"
  t_expect_eq "$tid" "$(t_json "$T/o" .leases[0].task_id)"
  t_srv_agent "$got" "$T/c" POST "/agent/leases/$(lease_of "$T/o")/complete" '{"status":"succeeded"}' >/dev/null
}
only a1 a2 --pool p
only a2 a1 --pool q
only a1 a2 --tags x
only a1 a2 --tags x,y
only a2 a1 --target-host A2
only a1 a2 --target-agent "$a1"
tid=$(submit --type nope --pool zz)
t_expect_contains "$T/submit.err" "unroutable: no eligible agent"
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_eq unroutable "$(t_json "$T/t" .routing.status)"
t_expect_contains "$(t_json "$T/t" .routing.message)" "type=nope (no agent serves it)"
t_expect_contains "$(t_json "$T/t" .routing.message)" "pool=zz"
tid=$(submit --type echo --tags z)
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_eq '["tags=[\"z\"]"]' "$(t_json "$T/t" .routing.unmatched)"
tid=$(submit --type echo --pool p --target-host a2)
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_contains "$(t_json "$T/t" .routing.message)" "no agent matches all"
tid=$(submit --type echo --environment prod)
t_srv_cli task list --state queued >"$T/list"
t_expect_contains "$T/list" "unroutable: no eligible agent"
t_expect_contains "$T/list" "$tid"
for id in $(t_srv_cli task list --state queued --json | grep -o 'tsk_[0-9A-Za-z]*' | sort -u); do
  t_srv_cli task cancel "$id" >/dev/null
done

# many tasks, two agents with many slots: every task leased once
python3 -c 'import json;print(json.dumps({"tasks":[{"type":"echo","params":{"i":i}} for i in range(30)]}))' >"$T/batch.json"
t_expect_eq 201 "$(t_srv_admin "$T/b" POST /admin/tasks/batch "@$T/batch.json")" batch
t_srv_agent a1 "$T/x1" POST /agent/leases '{"slots":20}' >/dev/null
t_srv_agent a2 "$T/x2" POST /agent/leases '{"slots":20}' >/dev/null
python3 - "$T/x1" "$T/x2" <<'PY'
import json, sys
ids = [l["task_id"] for f in sys.argv[1:] for l in json.load(open(f))["leases"]]
assert len(ids) == 30 and len(set(ids)) == 30, (len(ids), len(set(ids)))
PY

# task submit --wait: exit 0 on success, 8 otherwise
( rc=0; t_srv_cli task submit --type echo --wait >"$T/w.out" 2>&1 || rc=$?; echo $rc >"$T/w.rc" ) &
w=$!
for _ in $(seq 50); do
  [ "$(t_srv_agent a1 "$T/l" POST /agent/leases '{"slots":1}')" = 200 ] && break
  sleep 0.1
done
t_srv_agent a1 "$T/o" POST "/agent/leases/$(lease_of "$T/l")/complete" '{"status":"failed","error":{"reason":"boom","message":"it broke"}}' >/dev/null
wait $w
t_expect_eq 8 "$(cat "$T/w.rc")" "task submit --wait on a failed task"
t_expect_contains "$T/w.out" "failed: boom"
for id in $(t_srv_cli task list --state queued,leased --json | grep -o '"id": "tsk_[0-9A-Za-z]*' | cut -d'"' -f4); do
  t_srv_cli task cancel "$id" >/dev/null
done
t_srv_stop

# (a short TTL from here on: the calls above must not race the clock on a loaded machine)
t_srv_start --lease-ttl 2s --heartbeat-interval 1s
# expiry: renew/logs/complete get lease_lost and change nothing; requeue with attempt + 1;
# after max attempts: failed, lease_expired
tid=$(submit --type echo --max-attempts 2)
t_expect_eq 200 "$(t_srv_agent a1 "$T/l1" POST /agent/leases '{"slots":1}')" "lease 1"
L1=$(lease_of "$T/l1")
sleep 2.6
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L1/renew" '{}')"
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L1/logs" '{"offset":0,"data":"x"}')"
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L1/complete" '{"status":"succeeded"}')"
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_eq queued "$(t_json "$T/t" .state)" "requeued after expiry"
t_expect_contains "$(t_json "$T/t" .reason)" "requeued: lease expired (attempt 1 of 2)"
# the second attempt goes to a2; a1's late completion is refused and changes nothing
t_expect_eq 200 "$(t_srv_agent a2 "$T/l2" POST /agent/leases '{"slots":1}')" "lease 2"
L2=$(lease_of "$T/l2")
t_expect_eq 2 "$(t_json "$T/l2" .leases[0].attempt)"
t_srv_expect 409 lease_lost "$T/o" "$(t_srv_agent a1 "$T/o" POST "/agent/leases/$L1/complete" '{"status":"succeeded"}')"
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_eq leased "$(t_json "$T/t" .state)"
t_expect_eq "$a2" "$(t_json "$T/t" .agent_id)"
# a heartbeat listing the lost lease is told to cancel it
t_srv_agent a1 "$T/hb" POST /agent/heartbeat "{\"running\":[\"$L1\"]}" >/dev/null
t_expect_contains "$(t_json "$T/hb" .cancel)" "\"$L1\""
sleep 2.6
t_srv_cli task show "$tid" --json >"$T/t"
t_expect_eq failed "$(t_json "$T/t" .state)" "after the last attempt"
t_expect_eq lease_expired "$(t_json "$T/t" .reason)"
t_expect_eq lease_expired "$(t_json "$T/t" .error.reason)"
t_expect_eq 2 "$(python3 -c 'import json,sys;print(len(json.load(open(sys.argv[1]))["leases"]))' "$T/t")" "two leases"

t_srv_stop
echo PASS
