#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The odbc benchmark: ROWS rows x 5 mixed columns (bigint, text, numeric(12,2), timestamp,
# float8) from PostgreSQL 15 to CSV, four ways, side by side in one run, interleaved:
#   outpost   an odbc.export task through `outpost-agent plugin run` (agent, a fresh worker,
#             the plugin, connecting and writing the artifact included)
#   ceiling   a minimal C client of the same driver: every column bound as text, 2,000-row
#             arrays, CSV out (bench/odbc/odbc_ceiling.c)
#   isql      unixODBC's isql on the same DSN (-b -d, -c)
#   psql      psql --csv (libpq, no ODBC)
# The three ODBC clients use one DSN (psqlODBC, UseDeclareFetch=1, Fetch=10000). Then the
# driver settings that move the figures: UseDeclareFetch=0 and Fetch=1000/10000/100000, with
# the peak memory of each.
# Usage: bench.sh [ROWS] [ROUNDS]   (environment: OUTPOST_SOURCE_DIR, OUTPOST_AGENT,
#                                    OUTPOST_PLUGIN_DIR, ODBC_CEILING)
# Targets (issue 12): outpost >= 0.9x the ceiling's rows/s, >= 2x isql's, >= 0.5x psql's.
ROWS=${1:-1000000}
ROUNDS=${2:-3}
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/odbc/fixtures.sh"
command -v isql >/dev/null || t_fail "isql is not installed (unixodbc)"

odbc_pg_start
echo "--- loading $ROWS rows into PostgreSQL on 127.0.0.1:$ODBC_PG_PORT" >&2
odbc_psql -c "create table bench(id bigint primary key, name text not null, amount numeric(12,2),
  created timestamp, ratio float8)" \
  -c "insert into bench select i, 'name-' || i || case when i % 7 = 0 then ', with \"quotes\"' else '' end,
  (i % 100000) / 100.0, timestamp '2024-01-01' + i * interval '1 second', i / 3.0
  from generate_series(1, $ROWS) i" -c "vacuum analyze bench"

SQL="select id, name, amount, created, ratio from bench"
export ODBCSYSINI=$T ODBCINI=$T/odbc.ini
cat >"$ODBCINI" <<EOF
[bench]
Driver=$ODBC_DRIVERS/psqlodbcw.so
Servername=127.0.0.1
Port=$ODBC_PG_PORT
Database=postgres
UseDeclareFetch=1
Fetch=10000
EOF
CONN="DSN=bench;UID=$ODBC_PG_USER;PWD={${ODBC_PG_PASSWORD//\}/\}\}}}"

# measure IN OUT CMD...: runs CMD with stdin from IN and stdout to OUT; prints
# "seconds peak_rss_MiB" (the largest process of its tree: for outpost, the worker).
measure() {
  "$ODBC_PY" - "$@" <<'PY'
import resource, subprocess, sys, time
inp, out = open(sys.argv[1], "rb"), open(sys.argv[2], "wb")
t0 = time.monotonic()
rc = subprocess.run(sys.argv[3:], stdin=inp, stdout=out, stderr=subprocess.DEVNULL).returncode
t1 = time.monotonic()
if rc != 0:
    sys.exit("failed (exit %d): %s" % (rc, " ".join(sys.argv[3:])))
print("%.3f %.0f" % (t1 - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
PY
}

task() { # task NAME CONNECTION_JSON
  printf '{"type": "odbc.export", "params": {%s, "user": "%s", "password_secret": "pg_password", "sql": "%s"}, "timeout": "600s"}\n' \
    "$2" "$ODBC_PG_USER" "$SQL" >"$T/$1.json"
}
task outpost '"dsn": "bench"'
run_outpost() { # run_outpost TASK
  rm -rf "$T/ws"
  measure /dev/null "$T/outpost.out" "$OUTPOST_AGENT" plugin run --task "$T/$1.json" \
    --plugins-dir "$OUTPOST_PLUGIN_DIR" --secrets "$T/secrets.yaml" --config "$T/agent.yaml" \
    --workspace "$T/ws" || t_fail "outpost run failed: $(head -c 2000 "$T/outpost.out")"
  [ "$("$ODBC_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"]["rows"])' "$T/outpost.out")" = "$ROWS" ] ||
    t_fail "outpost exported a different row count"
}
run_ceiling() { measure /dev/null /dev/null "$ODBC_CEILING" "$1" "$SQL" "$T/ceiling.csv" 2000; }
echo "$SQL" >"$T/query.sql"
run_isql() { measure "$T/query.sql" "$T/isql.csv" isql -k "$CONN" -b -d, -q -c; }
run_psql() {
  PGPASSWORD=$ODBC_PG_PASSWORD measure /dev/null "$T/psql.csv" psql -X -h 127.0.0.1 -p "$ODBC_PG_PORT" \
    -U "$ODBC_PG_USER" -d postgres --csv -c "$SQL"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END { print a[int((NR + 1) / 2)] }'; }
best() { printf '%s\n' "$@" | sort -g | head -n 1; }
field() { echo "$1" | awk -v f="$2" '{print $f}'; }

# Warm up (page cache, the server's buffers), then the four methods round by round.
run_psql >/dev/null
o=(); c=(); i=(); p=()
for ((r = 0; r < ROUNDS; r++)); do
  echo "--- round $((r + 1)) of $ROUNDS" >&2
  x=$(run_outpost outpost); o+=("$(field "$x" 1)"); om=$(field "$x" 2)
  x=$(run_ceiling "$CONN"); c+=("$(field "$x" 1)"); cm=$(field "$x" 2)
  x=$(run_isql); i+=("$(field "$x" 1)"); im=$(field "$x" 2)
  x=$(run_psql); p+=("$(field "$x" 1)"); pm=$(field "$x" 2)
done
for f in ceiling isql psql; do
  lines=$(wc -l <"$T/$f.csv")
  [ "$lines" = $((ROWS + 1)) ] || t_fail "$f wrote $lines lines, expected $((ROWS + 1))"
done
[ "$(wc -l <"$T/ws/artifacts/export.csv")" = $((ROWS + 1)) ] || t_fail "outpost's CSV is short"

om_=$(median "${o[@]}"); cm_=$(median "${c[@]}"); im_=$(median "${i[@]}"); pm_=$(median "${p[@]}")
rate() { awk -v n="$ROWS" -v s="$1" 'BEGIN { printf "%.0f", n / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
printf '\n%s rows x 5 columns, PostgreSQL 15 -> CSV, %s rounds (median, best)\n' "$ROWS" "$ROUNDS"
printf '%-9s %8s %8s %10s %9s  %s\n' method median best rows/s peak-MiB what
printf '%-9s %8s %8s %10s %9s  %s\n' outpost "$om_" "$(best "${o[@]}")" "$(rate "$om_")" "$om" "odbc.export task via plugin run, worker included"
printf '%-9s %8s %8s %10s %9s  %s\n' ceiling "$cm_" "$(best "${c[@]}")" "$(rate "$cm_")" "$cm" "minimal psqlODBC client, text binding, 2000-row arrays"
printf '%-9s %8s %8s %10s %9s  %s\n' isql "$im_" "$(best "${i[@]}")" "$(rate "$im_")" "$im" "unixODBC isql, same DSN"
printf '%-9s %8s %8s %10s %9s  %s\n' psql "$pm_" "$(best "${p[@]}")" "$(rate "$pm_")" "$pm" "psql --csv (libpq)"
printf '\noutpost vs ceiling %s (target >= 0.9), vs isql %s (>= 2), vs psql %s (>= 0.5), medians\n' \
  "$(ratio "$om_" "$cm_")" "$(ratio "$om_" "$im_")" "$(ratio "$om_" "$pm_")"

# Driver settings: the same export with psqlODBC's cursor off and with other Fetch sizes.
printf '\npsqlODBC settings (one run each): seconds and peak MiB\n'
printf '%-24s %16s %16s\n' setting outpost ceiling
for s in "UseDeclareFetch=0" "UseDeclareFetch=1;Fetch=1000" "UseDeclareFetch=1;Fetch=10000" \
         "UseDeclareFetch=1;Fetch=100000"; do
  task drv "\"connection_string\": \"DSN=bench;$s\""
  x=$(run_outpost drv)
  y=$(run_ceiling "$CONN;$s")
  printf '%-24s %8s s %4s MiB %8s s %4s MiB\n' "$s" "$(field "$x" 1)" "$(field "$x" 2)" \
    "$(field "$y" 1)" "$(field "$y" 2)"
done
