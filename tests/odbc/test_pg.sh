#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# odbc with psqlODBC against a PostgreSQL 15 server started on 127.0.0.1: every bound type and
# NULLs in and out, unicode, long values, exports equal to psql's, a script rolled back on
# failure, query timeout, cancel (the server's query stops too), wrong password, unreachable
# host, login timeout, syntax error, and no password in any output.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/odbc/fixtures.sh"

[ -e "$ODBC_DRIVERS/psqlodbcw.so" ] || t_fail "odbc-postgresql is not installed (scripts/deps.sh)"
odbc_pg_start
URL=$ODBC_PG_URL
CRED='"password_secret": "pg_password"'

odbc_psql -c "create table types(
  s text, i bigint, n float8, d numeric(12,3), f bool, dt date, tm time, ts timestamp,
  bin bytea, nul int, \"ünï\" varchar(20))"

# ---- every bound type in; the same values out, and in the server as psql sees them --------
odbc_task bind <<EOF
{"type": "odbc.query", "params": {"url": "$URL", $CRED,
 "sql": "insert into types values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
 "params": ["héllo ☃ 'quoted' 😀", 1234567890123, 2.5, {"type": "decimal", "value": "-123.456"},
            true, {"type": "date", "value": "2024-02-29"}, {"type": "time", "value": "13:45:30.25"},
            {"type": "timestamp", "value": "2024-02-29T13:45:30.125"},
            {"type": "binary", "value": "AP8Q"}, null, "日本語"]}}
EOF
odbc_run 0 bind
t_expect_eq 1 "$(odbc_json "$T/bind.out" .result.rows_affected)" "rows_affected"
t_expect_eq "héllo ☃ 'quoted' 😀|1234567890123|2.5|-123.456|t|2024-02-29|13:45:30.25|2024-02-29 13:45:30.125|\\x00ff10||日本語" \
  "$(odbc_psql -c 'select * from types')" "stored row"

# NULLs of every type, typed.
odbc_task nulls <<EOF
{"type": "odbc.query", "params": {"url": "$URL", $CRED,
 "sql": "insert into types values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
 "params": [{"type": "string", "value": null}, {"type": "integer", "value": null},
            {"type": "number", "value": null}, {"type": "decimal", "value": null},
            {"type": "boolean", "value": null}, {"type": "date", "value": null},
            {"type": "time", "value": null}, {"type": "timestamp", "value": null},
            {"type": "binary", "value": null}, null, null]}}
EOF
odbc_run 0 nulls
t_expect_eq 1 "$(odbc_psql -c 'select count(*) from types where s is null and i is null and n is null and d is null and f is null and dt is null and tm is null and ts is null and bin is null and nul is null')"

odbc_task select <<EOF
{"type": "odbc.query", "params": {"url": "$URL", $CRED,
 "sql": "select * from types where i = ? or i is null order by i nulls last", "params": [1234567890123]}}
EOF
odbc_run 0 select
"$ODBC_PY" - "$T/select.out" <<'PY' || t_fail "select: values"
import json, sys
r = json.load(open(sys.argv[1]))["result"]
assert r["row_count"] == 2, r
want = {"s": "héllo ☃ 'quoted' 😀", "i": 1234567890123, "n": 2.5, "d": "-123.456", "f": True,
        "dt": "2024-02-29", "tm": "13:45:30.25", "ts": "2024-02-29T13:45:30.125", "bin": "AP8Q",
        "nul": None, "ünï": "日本語"}
assert r["rows"][0] == want, r["rows"][0]
assert all(v is None for v in r["rows"][1].values()), r["rows"][1]
types = {c["name"]: (c["type"], c["db_type"]) for c in r["columns"]}
assert types["i"] == ("BIGINT", "int8") and types["f"] == ("BIT", "bool"), types
assert types["ts"] == ("TIMESTAMP", "timestamp without time zone"), types
assert r["dbms"].startswith("PostgreSQL "), r["dbms"]
PY
odbc_no_secret select

# Booleans stay true/false through a connection string with psqlODBC's defaults (bools as text).
odbc_task bools <<EOF
{"type": "odbc.query", "params": {"connection_string": "Driver=$ODBC_DRIVERS/psqlodbcw.so;Server=127.0.0.1;Port=$ODBC_PG_PORT;Database=postgres",
 "user": "$ODBC_PG_USER", $CRED, "sql": "select true as t, false as f, null::bool as n", "rows_as": "arrays"}}
EOF
odbc_run 0 bools
t_expect_eq '[[true, false, null]]' "$(odbc_json "$T/bools.out" .result.rows)"

# ---- exports equal psql's, long values included --------------------------------------------
odbc_psql -c "create table wide as select i as id, 'name-' || i || case when i % 7 = 0 then ', \"q\"' else '' end as name,
  (i % 1000) / 100.0 as amount, timestamp '2024-01-01' + i * interval '1 second' as created, i / 3.0::float8 as ratio,
  case when i % 500 = 0 then repeat('long ☃ ', 2000) end as note,
  case when i % 3 = 0 then json_build_object('k', repeat('v', 400)) end as doc
  from generate_series(1, 20000) i"
odbc_task export <<EOF
{"type": "odbc.export", "params": {"url": "$URL", $CRED, "sql": "select * from wide order by id", "fetch_rows": 700}}
EOF
odbc_run 0 export
PGPASSWORD=$ODBC_PG_PASSWORD psql -X -h 127.0.0.1 -p "$ODBC_PG_PORT" -U "$ODBC_PG_USER" -d postgres \
  --csv -c "select * from wide order by id" | sed -E 's/^([0-9]+,("([^"]|"")*"|[^,]*),[^,]*,[0-9-]+) /\1T/' >"$T/psql.csv"
cmp "$T/psql.csv" "$T/ws-export/artifacts/export.csv" || {
  diff "$T/psql.csv" "$T/ws-export/artifacts/export.csv" | head -n 10 >&2
  t_fail "export.csv differs from psql --csv"
}
t_expect_eq 20000 "$(odbc_json "$T/export.out" .result.rows)"
odbc_task jsonl <<EOF
{"type": "odbc.export", "params": {"url": "$URL", $CRED, "sql": "select * from wide where id % 500 = 0 order by id", "format": "jsonl"}}
EOF
odbc_run 0 jsonl
"$ODBC_PY" - "$T/ws-jsonl/artifacts/export.jsonl" <<'PY' || t_fail "jsonl: long values"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert len(rows) == 40, len(rows)
assert rows[0]["note"] == "long ☃ " * 2000 and rows[0]["id"] == 500, rows[0]["id"]
assert rows[0]["created"] == "2024-01-01T00:08:20", rows[0]["created"]
assert rows[0]["amount"] == "5.0000000000000000", rows[0]["amount"]
assert json.loads(rows[2]["doc"]) == {"k": "v" * 400}, rows[2]["doc"][:50]
PY

# ---- a script: one transaction, rolled back when a statement fails -------------------------
odbc_task tx <<EOF
{"type": "odbc.script", "params": {"url": "$URL", $CRED, "script":
 "create table rb(a int); insert into rb values (1); insert into nosuch values (2); insert into rb values (3)"}}
EOF
odbc_run 1 tx
odbc_expect tx failed $'statement 3 of 4 failed: [42P01] ERROR: relation "nosuch" does not exist; Error while executing the query (native 1)\nthe transaction was rolled back: nothing was changed'
t_expect_eq 0 "$(odbc_psql -c "select count(*) from pg_tables where tablename = 'rb'")" "table rb after rollback"
odbc_task tx2 <<EOF
{"type": "odbc.script", "params": {"url": "$URL", $CRED, "statements": [
 "create table ok(a int)", "insert into ok select generate_series(1, 5)", "update ok set a = a + 1 where a > 3"]}}
EOF
odbc_run 0 tx2
t_expect_eq '[{"index": 1, "rows_affected": 0}, {"index": 2, "rows_affected": 5}, {"index": 3, "rows_affected": 2}]' \
  "$(odbc_json "$T/tx2.out" .result.statements)"
t_expect_eq 17 "$(odbc_psql -c 'select sum(a) from ok')"

# A failure at commit (a deferred foreign key): nothing is kept.
odbc_psql -c "create table parent(id int primary key)" \
  -c "create table child(pid int references parent deferrable initially deferred)"
odbc_task commit <<EOF
{"type": "odbc.script", "params": {"url": "$URL", $CRED, "statements": [
 "insert into parent values (1)", "insert into child values (2)"]}}
EOF
odbc_run 1 commit
odbc_expect commit failed $'commit failed: [23503] ERROR: insert or update on table "child" violates foreign key constraint "child_pid_fkey" DETAIL: Key (pid)=(2) is not present in table "parent". (native 110)\nthe transaction was not committed'
t_expect_eq 0 "$(odbc_psql -c 'select count(*) from parent')" "parent rows after the failed commit"

# ---- failures, with the messages users see -------------------------------------------------
odbc_task syntax <<EOF
{"type": "odbc.query", "params": {"url": "$URL", $CRED, "sql": "selec 1"}}
EOF
odbc_run 1 syntax
odbc_expect syntax failed 'query failed: [42601] ERROR: syntax error at or near "selec"; Error while executing the query (native 1)'

odbc_task qtimeout <<EOF
{"type": "odbc.query", "params": {"url": "$URL", $CRED, "sql": "select pg_sleep(20)", "query_timeout": "1s"}}
EOF
start=$(date +%s%N)
odbc_run 4 qtimeout
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
odbc_expect qtimeout timed_out 'query failed: timed out after 1s (params.query_timeout): [57014] ERROR: canceling statement due to statement timeout; Error while executing the query (native 1)'
[ "$elapsed" -lt 6000 ] || t_fail "query_timeout 1s took ${elapsed} ms"

odbc_task wrongpw <<EOF
{"type": "odbc.query", "params": {"url": "$URL", "password_secret": "wrong_password", "sql": "select 1"}}
EOF
odbc_run 1 wrongpw
odbc_expect wrongpw failed "cannot connect to PostgreSQL server 127.0.0.1:$ODBC_PG_PORT (database postgres): [08001] connection to server at \"127.0.0.1\", port $ODBC_PG_PORT failed: FATAL: password authentication failed for user \"outpost\" (native 101)
hint: the database refused the credentials: check the user name and the secret named in params.password_secret (wrong_password)"
t_expect_not_contains "$T/wrongpw.out" "not-the-password-5e2b"
t_expect_not_contains "$T/wrongpw.err" "not-the-password-5e2b"

# A diagnostic that quotes a secret is redacted: here the user name comes from the secret.
odbc_task redact <<EOF
{"type": "odbc.query", "params": {"url": "jdbc:postgresql://127.0.0.1:$ODBC_PG_PORT/postgres", "user_secret": "pg_password", "password_secret": "wrong_password", "sql": "select 1"}}
EOF
odbc_run 1 redact
t_expect_contains "$T/redact.out" 'password authentication failed for user \"{[REDACTED]}\"'
odbc_no_secret redact

closed=$(t_free_port)
odbc_task refused <<EOF
{"type": "odbc.query", "params": {"url": "jdbc:postgresql://127.0.0.1:$closed/app?user=app", $CRED, "sql": "select 1"}}
EOF
odbc_run 1 refused
odbc_expect refused failed "cannot connect to PostgreSQL server 127.0.0.1:$closed (database app): [08001] connection to server at \"127.0.0.1\", port $closed failed: Connection refused Is the server running on that host and accepting TCP/IP connections? (native 101)
hint: the agent connects to 127.0.0.1:$closed from its egress IP 127.0.0.1; check that the database listens there and that its firewall or allowlist (security group, pg_hba.conf) admits 127.0.0.1"
odbc_no_secret refused

# A server that accepts connections and never answers: the login timeout ends the wait.
silent=$(t_free_port)
"$ODBC_PY" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); time.sleep(60)' "$silent" &
t_track $!
t_wait_port "$silent"
odbc_task login <<EOF
{"type": "odbc.query", "params": {"url": "jdbc:postgresql://127.0.0.1:$silent/app?user=app", $CRED, "sql": "select 1", "login_timeout": "1s"}}
EOF
start=$(date +%s%N)
odbc_run 1 login
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
odbc_expect login failed "cannot connect to PostgreSQL server 127.0.0.1:$silent (database app): [08001] connection to server at \"127.0.0.1\", port $silent failed: timeout expired (native 101)
hint: the agent connects to 127.0.0.1:$silent from its egress IP 127.0.0.1; check that the database listens there and that its firewall or allowlist (security group, pg_hba.conf) admits 127.0.0.1 (no answer within params.login_timeout, 1s)"
[ "$elapsed" -lt 5000 ] || t_fail "login_timeout 1s took ${elapsed} ms"

# ---- cancel: the statement stops on the server too -----------------------------------------
running() { odbc_psql -c "select count(*) from pg_stat_activity where query like '%pg_sleep(30)%' and state = 'active' and pid <> pg_backend_pid()"; }
running_is() { [ "$(running)" = "$1" ]; }
odbc_task cancel <<EOF
{"type": "odbc.query", "params": {"url": "$URL", $CRED, "sql": "select pg_sleep(30) as slept"}}
EOF
"$OUTPOST_AGENT" plugin run --task "$T/cancel.json" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
  --secrets "$T/secrets.yaml" --config "$T/agent.yaml" --workspace "$T/ws-cancel" \
  >"$T/cancel.out" 2>"$T/cancel.err" &
runner=$!
t_track $runner
t_wait_for 10 running_is 1
start=$(date +%s%N)
kill -INT $runner
rc=0
wait $runner || rc=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
t_expect_eq 1 "$rc" "cancel: exit code"
odbc_expect cancel cancelled 'cancelled: query failed: [57014] ERROR: canceling statement due to user request; Error while executing the query (native 1)'
[ "$elapsed" -lt 3000 ] || t_fail "cancel took ${elapsed} ms"
t_expect_eq 0 "$(running)" "pg_sleep still running on the server after cancel"

# An export cancelled half-way stops at the next fetch and leaves an empty artifact.
odbc_task xcancel <<EOF
{"type": "odbc.export", "params": {"url": "$URL", $CRED, "sql": "select i, repeat('x', 200) from generate_series(1, 100000000) i"}}
EOF
"$OUTPOST_AGENT" plugin run --task "$T/xcancel.json" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
  --secrets "$T/secrets.yaml" --config "$T/agent.yaml" --workspace "$T/ws-xcancel" \
  >"$T/xcancel.out" 2>"$T/xcancel.err" &
runner=$!
t_track $runner
artifact_grows() { [ "$(stat -c %s "$T/ws-xcancel/artifacts/export.csv" 2>/dev/null || echo 0)" -gt 1000000 ]; }
t_wait_for 30 artifact_grows
kill -INT $runner
rc=0
wait $runner || rc=$?
t_expect_eq 1 "$rc" "export cancel: exit code"
case "$(odbc_error xcancel)" in
  "cancelled after "*" rows") ;;
  *) t_fail "export cancel: error [$(odbc_error xcancel)]" ;;
esac
odbc_expect xcancel cancelled
t_expect_eq 0 "$(stat -c %s "$T/ws-xcancel/artifacts/export.csv")" "size of the cancelled export"

# The task's own deadline cancels the same way.
odbc_task deadline <<EOF
{"type": "odbc.query", "params": {"url": "$URL", $CRED, "sql": "select pg_sleep(30) as slept"}, "timeout": "2s"}
EOF
odbc_run 4 deadline
odbc_expect deadline timed_out
t_wait_for 5 running_is 0

# ---- a DSN from odbc.ini (ODBCINI through env_allow); its server fences the secret ---------
printf '[pgapp]\nDriver=%s/psqlodbcw.so\nServername=127.0.0.1\nPort=%s\nDatabase=postgres\nUseDeclareFetch=1\n' \
  "$ODBC_DRIVERS" "$ODBC_PG_PORT" >"$T/odbc.ini"
cat >>"$T/secrets.yaml" <<EOF
  local_password:
    from: "file:$T/pg.secret"
    allow:
      hosts: ["127.0.0.1"]
EOF
odbc_task dsn <<EOF
{"type": "odbc.query", "params": {"dsn": "pgapp", "user": "$ODBC_PG_USER", "password_secret": "local_password", "sql": "select current_database() as db"}}
EOF
ODBCINI=$T/odbc.ini ODBCSYSINI=$T odbc_run 0 dsn
t_expect_eq '[{"db": "postgres"}]' "$(odbc_json "$T/dsn.out" .result.rows)"
t_expect_contains "$T/dsn.err" "connecting to data source pgapp (server 127.0.0.1:$ODBC_PG_PORT) as outpost"
odbc_no_secret dsn
echo ok
