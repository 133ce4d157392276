#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# odbc (slow): 1,000,000 rows x 5 mixed columns from PostgreSQL exported to CSV through the
# plugin, equal to psql --csv's output, with the worker's memory bounded (the result set is
# streamed, never held).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/odbc/fixtures.sh"

ROWS=1000000
odbc_pg_start
odbc_psql -c "create table big(id bigint primary key, name text not null, amount numeric(12,2),
  created timestamp, ratio float8)" \
  -c "insert into big select i, 'name-' || i || case when i % 7 = 0 then ', with \"quotes\"' else '' end,
  (i % 100000) / 100.0, timestamp '2024-01-01' + i * interval '1 second', i / 3.0
  from generate_series(1, $ROWS) i"

odbc_task export <<EOF
{"type": "odbc.export", "params": {"url": "$ODBC_PG_URL", "password_secret": "pg_password",
 "sql": "select * from big order by id"}, "timeout": "240s"}
EOF
# The peak RSS of the largest process of the run (the worker), as the kernel counts it.
peak=$("$ODBC_PY" - "$OUTPOST_AGENT" "$OUTPOST_PLUGIN_DIR" "$T" <<'PY'
import resource, subprocess, sys
agent, plugins, t = sys.argv[1:4]
with open(t + "/export.out", "wb") as out, open(t + "/export.err", "wb") as err:
    rc = subprocess.run([agent, "plugin", "run", "--task", t + "/export.json", "--plugins-dir",
                         plugins, "--secrets", t + "/secrets.yaml", "--config", t + "/agent.yaml",
                         "--workspace", t + "/ws-export"], stdout=out, stderr=err).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
PY
)
t_expect_eq 0 "${peak%% *}" "plugin run exit code ($(tail -n 3 "$T/export.err"))"
peak=${peak##* }
t_log "peak RSS ${peak} MiB; $(grep -o 'exported .*' "$T/export.err" | tail -n 1)"
[ "$peak" -lt 80 ] || t_fail "the export held ${peak} MiB: the result set is not streamed"
t_expect_eq $ROWS "$(odbc_json "$T/export.out" .result.rows)" "rows"

PGPASSWORD=$ODBC_PG_PASSWORD psql -X -h 127.0.0.1 -p "$ODBC_PG_PORT" -U "$ODBC_PG_USER" \
  -d postgres --csv -c "select * from big order by id" |
  sed -E 's/^([0-9]+,("([^"]|"")*"|[^,]*),[^,]*,[0-9-]+) /\1T/' >"$T/psql.csv"
cmp "$T/psql.csv" "$T/ws-export/artifacts/export.csv" || t_fail "export.csv differs from psql --csv"
t_expect_eq "$(sha256sum <"$T/ws-export/artifacts/export.csv" | cut -d' ' -f1)" \
  "$(odbc_json "$T/export.out" .artifacts[0].sha256)" "artifact sha256"
echo ok
