#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bundled sql-migration change type on SQLite through the odbc plugin (steps run
# odbc.query and odbc.script through the host): a migration that verifies; one whose verify
# query finds nothing (rollback script runs); one that fails half-way (its transaction is
# rolled back, then the rollback script); a dry run; an unreachable database.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/change/lib.sh"
if [ ! -f "$OUTPOST_PLUGIN_DIR/odbc.so" ]; then
  echo "SKIP: the odbc plugin is not built" >&2
  exit 77
fi
[ -e /usr/lib/x86_64-linux-gnu/odbc/libsqlite3odbc.so ] || t_fail "libsqliteodbc is not installed (scripts/deps.sh)"
t_plugin_dir "$CH_P" odbc
DB=$T/app.db
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("create table schema_version(version integer)"); c.execute("insert into schema_version values (1)"); c.commit()' "$DB"
sql() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchall())' "$DB" "$1"; }
mig() { # MIGRATION VERIFY_SQL [EXTRA_JSON]
  python3 -c 'import json,sys; p={"url": "jdbc:sqlite:" + sys.argv[1], "migration": sys.argv[2], "verify_sql": sys.argv[3],
    "rollback_script": "drop table if exists orders_archive; delete from schema_version where version = 2"}
p.update(json.loads(sys.argv[4])); print(json.dumps(p))' "$DB" "$1" "$2" "${3:-{\}}"
}
M2="create table orders_archive(id integer primary key, total real); insert into schema_version values (2);"

# --- a migration that verifies: committed, three steps through odbc, each recorded.
ch_apply 0 ok sql-migration "$(mig "$M2" "select 1 from schema_version where version = 2")"
t_expect_eq succeeded "$(t_json "$R" .result.outcome)"
t_expect_eq "1 precheck database reachable ok
2 apply migrate ok
3 verify verify query ok" "$(ch_steps "$R")"
t_expect_eq "[(1,), (2,)]" "$(sql 'select version from schema_version order by version')"
t_expect_eq "[('orders_archive',)]" "$(sql "select name from sqlite_master where name = 'orders_archive'")"
t_expect_eq succeeded "$(t_json "$R" .result.steps[1].step_status)"
t_expect_eq true "$(t_json "$R" .result.steps[1].result.committed)"
t_expect_eq odbc.script "$(t_json "$R" .records[2].kind)"
t_expect_contains "$T/ok.err" "INFO task: [odbc.script] running 2 statements in one transaction"

# --- the verify query finds nothing: the rollback script undoes the migration.
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("drop table orders_archive"); c.execute("delete from schema_version where version = 2"); c.commit()' "$DB"
ch_apply 1 verify sql-migration "$(mig "$M2" "select 1 from schema_version where version = 99")"
t_expect_eq rolled_back "$(t_json "$R" .result.outcome)"
t_expect_eq "verify step 3 (verify query) failed: expect: result.row_count is 0, expected at least 1; rolled back (1 rollback step ran)" "$(t_json "$R" .error)"
t_expect_eq "[(1,)]" "$(sql 'select version from schema_version order by version')"
t_expect_eq "[]" "$(sql "select name from sqlite_master where name = 'orders_archive'")"

# --- the migration fails half-way: its transaction leaves nothing; the rollback script runs.
ch_apply 1 half sql-migration "$(mig "create table orders_archive(id integer); insert into nosuch values (1);" "select 1")"
t_expect_contains "$(t_json "$R" .error)" "apply step 2 (migrate) failed: odbc.script failed: statement 2 of 2 failed:"
t_expect_contains "$(t_json "$R" .error)" "rolled back (1 rollback step ran)"
t_expect_eq "[]" "$(sql "select name from sqlite_master where name = 'orders_archive'")"

# --- a dry run renders the odbc steps' params and runs none of them.
ch_apply 0 dry sql-migration "$(mig "$M2" "select 1" '{"dry_run": true}')"
t_expect_eq dry_run "$(t_json "$R" .result.outcome)"
t_expect_eq "$M2" "$(t_json "$R" .result.steps[1].would_run.params.script)"
t_expect_eq "jdbc:sqlite:$DB" "$(t_json "$R" .result.steps[1].would_run.params.url)"
# optional connection params that were not given (dsn, user, ...) are left out of the step
t_expect_eq '["query_timeout", "script", "transaction", "url"]' \
  "$(python3 -c 'import json,sys; print(json.dumps(sorted(json.load(open(sys.argv[1]))["result"]["steps"][1]["would_run"]["params"])))' "$R")"
t_expect_eq "[]" "$(sql "select name from sqlite_master where name = 'orders_archive'")"
t_expect_not_contains "$T/dry.err" "[odbc."

# --- an unreachable database fails the precheck: nothing is changed, nothing rolled back.
ch_apply 1 unreachable sql-migration "$(mig "$M2" "select 1" "{\"url\": \"jdbc:sqlite:$T/no/such/dir/app.db\"}")"
t_expect_eq precheck_failed "$(t_json "$R" .result.outcome)"
t_expect_contains "$(t_json "$R" .error)" "precheck step 1 (database reachable) failed: odbc.query failed: "
t_expect_contains "$(t_json "$R" .error)" ": nothing was changed"
echo ok
