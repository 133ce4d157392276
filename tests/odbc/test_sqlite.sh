#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# odbc with the SQLite ODBC driver (no server): the type mapping in query results, CSV and
# JSON Lines exports, every bound type, NULLs, unicode, long values, scripts in a transaction
# (rolled back on error) and with autocommit, and the failures users meet.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/odbc/fixtures.sh"

[ -e "$ODBC_DRIVERS/libsqlite3odbc.so" ] || t_fail "libsqliteodbc is not installed (scripts/deps.sh)"
DB=$T/app.db
URL="jdbc:sqlite:$DB"
odbc_sqlite "$DB" "
create table t(id integer primary key, name text, price numeric(10,2), ratio real,
               flag boolean, born date, seen timestamp, data blob, note varchar(5), big bigint);
insert into t values (1, 'plain', 12.5, 0.25, 1, '2024-01-31', '2024-01-31 13:45:00.250',
                      x'00ff10', 'ok', 9007199254740993);
insert into t values (2, 'comma, \"quote\"', NULL, -1.5, 0, NULL, '2024-02-01 00:00:00', NULL,
                      'toolongvalue', -5);
insert into t values (3, '', 0, NULL, NULL, '1999-12-31', NULL, x'', 'ünï', 0);
insert into t values (4, 'multi
line ☃', 3.14159, 1e300, 1, '2024-01-01', '2024-01-01 00:00:00', NULL, NULL, NULL);
insert into t values (5, printf('%.6000c', 'x'), 1, 2, 0, '2024-01-01', '2024-01-01 00:00:00',
                      NULL, NULL, NULL);
"

# ---- CSV: RFC 4180 quoting, NULL empty and "" for an empty string, ISO dates, base64 -------
odbc_task csv <<EOF
{"type": "odbc.export", "params": {"url": "$URL", "sql": "select * from t where id < 5 order by id"}}
EOF
odbc_run 0 csv
cat >"$T/expected.csv" <<'EOF'
id,name,price,ratio,flag,born,seen,data,note,big
1,plain,12.5,0.25,true,2024-01-31,2024-01-31T13:45:00.25,AP8Q,ok,9007199254740993
2,"comma, ""quote""",,-1.5,false,,2024-02-01T00:00:00,,toolongvalue,-5
3,"",0,,,1999-12-31,,"",ünï,0
4,"multi
line ☃",3.14159,1.0e+300,true,2024-01-01,2024-01-01T00:00:00,,,
EOF
cmp "$T/expected.csv" "$T/ws-csv/artifacts/export.csv" || {
  diff "$T/expected.csv" "$T/ws-csv/artifacts/export.csv" >&2
  t_fail "export.csv differs"
}
"$ODBC_PY" - "$T/csv.out" "$T/ws-csv/artifacts/export.csv" <<'PY' || t_fail "csv: result"
import hashlib, json, os, sys
d = json.load(open(sys.argv[1]))
r, a = d["result"], d["artifacts"][0]
assert d["status"] == "succeeded", d
assert r["artifact"] == "export.csv" and r["format"] == "csv" and r["rows"] == 4, r
assert r["bytes"] == os.path.getsize(sys.argv[2]) == a["size"], (r, a)
assert a["sha256"] == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
assert [c["name"] for c in r["columns"]][:3] == ["id", "name", "price"], r["columns"]
assert r["columns"][0]["type"] == "INTEGER" and r["columns"][6]["type"] == "TIMESTAMP"
assert r["dbms"].startswith("SQLite "), r["dbms"]
PY

# Options: another delimiter, a NULL marker, no header, max_rows.
odbc_task csv2 <<EOF
{"type": "odbc.export", "params": {"url": "$URL", "sql": "select id, born, note from t order by id",
 "delimiter": ";", "null_as": "\\\\N", "header": false, "max_rows": 3, "artifact": "part.csv"}}
EOF
odbc_run 0 csv2
printf '1;2024-01-31;ok\n2;\\N;toolongvalue\n3;1999-12-31;ünï\n' >"$T/expected2.csv"
cmp "$T/expected2.csv" "$T/ws-csv2/artifacts/part.csv" || t_fail "part.csv differs"
t_expect_eq "3 true" "$(odbc_json "$T/csv2.out" .result.rows) $(odbc_json "$T/csv2.out" .result.truncated)"

# ---- JSON Lines: numbers as numbers, exact big integers, unicode, NULLs ---------------------
odbc_task jsonl <<EOF
{"type": "odbc.export", "params": {"url": "$URL", "sql": "select * from t order by id", "format": "jsonl"}}
EOF
odbc_run 0 jsonl
t_expect_contains "$T/ws-jsonl/artifacts/export.jsonl" '"big":"9007199254740993"}'
"$ODBC_PY" - "$T/ws-jsonl/artifacts/export.jsonl" <<'PY' || t_fail "jsonl content"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert len(rows) == 5, len(rows)
assert rows[0] == {"id": 1, "name": "plain", "price": 12.5, "ratio": 0.25, "flag": True,
                   "born": "2024-01-31", "seen": "2024-01-31T13:45:00.25", "data": "AP8Q",
                   "note": "ok", "big": "9007199254740993"}, rows[0]
assert rows[1]["name"] == 'comma, "quote"' and rows[1]["price"] is None and rows[1]["born"] is None
assert rows[2]["name"] == "" and rows[2]["data"] == "" and rows[2]["note"] == "ünï"
assert rows[3]["name"] == "multi\nline ☃" and rows[3]["ratio"] == 1e300
assert rows[4]["name"] == "x" * 6000, len(rows[4]["name"])
PY

# ---- odbc.query: every bound type in, the same values out ---------------------------------
odbc_sqlite "$DB" "create table b(s text, i bigint, n double, d decimal(10,3), f boolean, dt date,
                                 tm time, ts timestamp, bin blob, nul text)"
odbc_task bind <<EOF
{"type": "odbc.query", "params": {"url": "$URL",
 "sql": "insert into b values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
 "params": ["héllo ☃ 'quoted'", 1234567890123, 2.5,
            {"type": "decimal", "value": "-123.456"}, true,
            {"type": "date", "value": "2024-02-29"}, {"type": "time", "value": "13:45:30"},
            {"type": "timestamp", "value": "2024-02-29T13:45:30.125"},
            {"type": "binary", "value": "AP8Q"}, null]}}
EOF
odbc_run 0 bind
t_expect_eq 1 "$(odbc_json "$T/bind.out" .result.rows_affected)" "rows_affected"
odbc_task bind2 <<EOF
{"type": "odbc.query", "params": {"url": "$URL", "sql": "select * from b where i = ? and f = ?",
 "params": [{"type": "integer", "value": "1234567890123"}, {"type": "boolean", "value": true}]}}
EOF
odbc_run 0 bind2
"$ODBC_PY" - "$T/bind2.out" <<'PY' || t_fail "bound values did not come back"
import json, sys
r = json.load(open(sys.argv[1]))["result"]
assert r["row_count"] == 1 and r["truncated"] is False, r
row = r["rows"][0]
want = {"s": "héllo ☃ 'quoted'", "i": 1234567890123, "n": 2.5, "d": "-123.456", "f": True,
        "dt": "2024-02-29", "tm": "13:45:30", "ts": "2024-02-29T13:45:30.125", "bin": "AP8Q",
        "nul": None}
for k, v in want.items():
    assert row[k] == v, (k, row[k], v)
PY

# Integers of more than 15 digits go in as strings of digits (JSON numbers that long lose digits
# on the way through the agent's JSON) and come out as strings; shorter ones are numbers.
odbc_sqlite "$DB" "create table bigs(v bigint)"
odbc_task big <<EOF
{"type": "odbc.script", "params": {"url": "$URL", "statements": ["insert into bigs values (9007199254740993)",
 "insert into bigs values (-9223372036854775808)", "insert into bigs values (9007199254740991)",
 "insert into bigs values (999999999999999)"]}}
EOF
odbc_run 0 big
odbc_task big2 <<EOF
{"type": "odbc.query", "params": {"url": "$URL", "sql": "select v from bigs where v <> ? order by rowid",
 "params": [{"type": "integer", "value": "9223372036854775807"}], "rows_as": "arrays"}}
EOF
odbc_run 0 big2
t_expect_eq '[["9007199254740993"], ["-9223372036854775808"], ["9007199254740991"], [999999999999999]]' \
  "$(odbc_json "$T/big2.out" .result.rows)"

# Arrays, duplicate column names, max_rows.
odbc_task arrays <<EOF
{"type": "odbc.query", "params": {"url": "$URL", "sql": "select id, id, name as x from t order by id",
 "rows_as": "arrays", "max_rows": 2}}
EOF
odbc_run 0 arrays
t_expect_eq '[[1, 1, "plain"], [2, 2, "comma, \"quote\""]]' \
  "$(odbc_json "$T/arrays.out" .result.rows)" "rows"
t_expect_eq '["id","id_2","x"]' \
  "$("$ODBC_PY" -c 'import json,sys; print(json.dumps([c["name"] for c in json.load(open(sys.argv[1]))["result"]["columns"]]).replace(" ",""))' "$T/arrays.out")"
t_expect_eq true "$(odbc_json "$T/arrays.out" .result.truncated)"
t_expect_contains "$T/arrays.err" "the result holds the first 2 rows only (params.max_rows 2, at most 4 MiB); odbc.export streams any number of rows to an artifact"

# ---- odbc.script: one transaction, rolled back on error ------------------------------------
odbc_task tx <<EOF
{"type": "odbc.script", "params": {"url": "$URL", "statements": [
  "create table tx(a text)", "insert into tx values ('one')", "insert into missing values (1)"]}}
EOF
odbc_run 1 tx
odbc_expect tx failed $'statement 3 of 3 failed: [HY000] [SQLite]no such table: missing (1) (native 1)\nthe transaction was rolled back: nothing was changed'
t_expect_eq '{"executed": 2, "failed_statement": 3, "committed": false, "transaction": true}' \
  "$(odbc_json "$T/tx.out" .result)"
"$ODBC_PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); assert not c.execute("select name from sqlite_master where name=?", ("tx",)).fetchall()' "$DB" ||
  t_fail "the failed script's table was not rolled back"

# Autocommit: what ran before the failure stays.
odbc_task auto <<EOF
{"type": "odbc.script", "params": {"url": "$URL", "transaction": false, "statements": [
  "create table au(a text)", "insert into au values ('one')", "insert into missing values (1)"]}}
EOF
odbc_run 1 auto
odbc_expect auto failed $'statement 3 of 3 failed: [HY000] [SQLite]no such table: missing (1) (native 1)\nstatements 1-2 were committed (autocommit); the rest did not run'
t_expect_eq one "$("$ODBC_PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select a from au").fetchone()[0])' "$DB")"

# A script text split at top-level semicolons only.
odbc_task split <<EOF
{"type": "odbc.script", "params": {"url": "$URL", "script":
 "create table sp(a text); -- a comment; with a semicolon\ninsert into sp values ('a;b'); /* c; */ insert into sp values ('it''s; fine');\n;\n"}}
EOF
odbc_run 0 split
t_expect_eq 3 "$(odbc_json "$T/split.out" .result.executed)"
t_expect_eq 'a;b|it'"'"'s; fine' "$("$ODBC_PY" -c 'import sqlite3,sys; print("|".join(r[0] for r in sqlite3.connect(sys.argv[1]).execute("select a from sp order by rowid")))' "$DB")"
t_expect_eq '[{"index": 1, "rows_affected": 0}, {"index": 2, "rows_affected": 1}, {"index": 3, "rows_affected": 1}]' \
  "$(odbc_json "$T/split.out" .result.statements)"

odbc_task blank <<EOF
{"type": "odbc.script", "params": {"url": "$URL", "script": " -- nothing here;\n ; "}}
EOF
odbc_run 2 blank
odbc_expect blank invalid 'params.script: no statements (only blanks and comments)'

# ---- failures -----------------------------------------------------------------------------
odbc_task syntax <<EOF
{"type": "odbc.query", "params": {"url": "$URL", "sql": "selec 1"}}
EOF
odbc_run 1 syntax
odbc_expect syntax failed 'query failed: [HY000] [SQLite]near "selec": syntax error (1) (native 1)'

odbc_task nofile <<EOF
{"type": "odbc.query", "params": {"url": "jdbc:sqlite:$T/no/such/dir/app.db", "sql": "select 1"}}
EOF
odbc_run 1 nofile
odbc_expect nofile failed "cannot connect to SQLite database $T/no/such/dir/app.db: [HY000] [SQLite]connect failed (native 14)
hint: check that the file exists and that the agent's user may read it (and write it, for changes)"

odbc_task nors <<EOF
{"type": "odbc.export", "params": {"url": "$URL", "sql": "update t set note = note where id = 0"}}
EOF
odbc_run 1 nors
odbc_expect nors failed 'the statement returned no result set to export (use odbc.query or odbc.script for statements that change data)'

# An artifact name taken already (a second export into the same workspace).
odbc_run 1 csv
odbc_expect csv failed "cannot create artifact export.csv in the workspace ($T/ws-csv): an artifact of that name exists already, or the workspace is not writable"

# A full disk: the export stops with the reason and the partial artifact is emptied.
if [ "$(id -u)" = 0 ] && mkdir -p "$T/small" && mount -t tmpfs -o size=256k tmpfs "$T/small" 2>/dev/null; then
  t_on_exit "umount '$T/small'"
  odbc_sqlite "$DB" "create table fill as with recursive n(i) as (select 1 union all select i + 1 from n where i < 20000) select i, printf('%.100c', 'x') as pad from n"
  odbc_task full <<EOF
{"type": "odbc.export", "params": {"url": "$URL", "sql": "select * from fill"}}
EOF
  rc=0
  "$OUTPOST_AGENT" plugin run --task "$T/full.json" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
    --config "$T/agent.yaml" --workspace "$T/small/ws" >"$T/full.out" 2>"$T/full.err" || rc=$?
  t_expect_eq 1 "$rc" "full disk: exit code"
  err=$(odbc_error full)
  case "$err" in
    "cannot write artifact export.csv after "*" rows: No space left on device") ;;
    *) t_fail "full disk: error [$err]" ;;
  esac
  t_expect_eq 0 "$(stat -c %s "$T/small/ws/artifacts/export.csv")" "size of the emptied artifact"
  t_expect_contains "$T/full.err" "artifact export.csv was emptied: the export stopped after"
else
  t_log "not root or no tmpfs: the full-disk case is skipped"
fi

# A driver the table names but the host lacks.
printf 'plugins:\n  enabled: [odbc]\n  config:\n    odbc:\n      drivers:\n        nodrv: {driver: %s/libnothere.so, template: "Server={host};Port={port}", port: 7000, label: NoDrv}\n' \
  "$ODBC_DRIVERS" >"$T/agent-nodrv.yaml"
odbc_task nodrv <<EOF
{"type": "odbc.query", "params": {"url": "jdbc:nodrv://127.0.0.1/x", "sql": "select 1"}}
EOF
odbc_run 1 nodrv --config "$T/agent-nodrv.yaml"
odbc_expect nodrv failed "cannot connect to NoDrv server 127.0.0.1:7000 (database x): [01000] [unixODBC][Driver Manager]Can't open lib '$ODBC_DRIVERS/libnothere.so' : file not found
hint: the driver library is missing: install the driver's package (scripts/deps.sh names Debian's) or point plugins.config.odbc.drivers.nodrv.driver at it"

# A driver path the connection string names directly, and a DSN through ODBCINI (env_allow).
odbc_task cs <<EOF
{"type": "odbc.query", "params": {"connection_string": "Driver=$ODBC_DRIVERS/libsqlite3odbc.so;Database=$DB", "sql": "select count(*) as n from t"}}
EOF
odbc_run 0 cs
t_expect_eq '[{"n": 5}]' "$(odbc_json "$T/cs.out" .result.rows)"
printf '[appdb]\nDriver=%s/libsqlite3odbc.so\nDatabase=%s\n' "$ODBC_DRIVERS" "$DB" >"$T/odbc.ini"
odbc_task dsn <<EOF
{"type": "odbc.query", "params": {"dsn": "appdb", "sql": "select count(*) as n from t"}}
EOF
ODBCINI=$T/odbc.ini ODBCSYSINI=$T odbc_run 0 dsn
t_expect_eq '[{"n": 5}]' "$(odbc_json "$T/dsn.out" .result.rows)"
t_expect_contains "$T/dsn.err" "connecting to data source appdb"
# Without env_allow the worker does not see ODBCINI: the DSN is unknown.
printf 'plugins:\n  enabled: [odbc]\n' >"$T/agent-noenv.yaml"
ODBCINI=$T/odbc.ini ODBCSYSINI=$T odbc_run 1 dsn --config "$T/agent-noenv.yaml"
odbc_expect dsn failed "cannot connect to data source appdb: [IM002] [unixODBC][Driver Manager]Data source name not found and no default driver specified
hint: check that the data source appdb is defined in the odbc.ini the agent reads (ODBCINI and ODBCSYSINI reach the worker only through plugins.config.odbc.env_allow)"
echo ok
