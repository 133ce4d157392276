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
# "seconds peak_rss_MiB cpu_seconds": wall time, the peak RSS of the largest process of its tree
# (for outpost, the worker) and the CPU time of the whole tree (user + system; the database
# server's is not counted, for any method).
measure() {
  "$ODBC_PY" - "$@" <<'PY'
import resource, subprocess, sys, time
inp, out = open(sys.argv[1], "rb"), open(sys.argv[2], "wb")
t0 = time.monotonic()
rc = subprocess.run(sys.argv[3:], stdin=inp, stdout=out, stderr=subprocess.DEVNULL).returncode
t1 = time.monotonic()
if rc != 0:
    sys.exit("failed (exit %d): %s" % (rc, " ".join(sys.argv[3:])))
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.3f %.0f %.3f" % (t1 - t0, ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime))
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
declare -A W M C # wall times, peak MiB, cpu times per method: space-separated lists
for ((r = 0; r < ROUNDS; r++)); do
  echo "--- round $((r + 1)) of $ROUNDS" >&2
  for m in outpost ceiling isql psql; do
    case $m in
      outpost) x=$(run_outpost outpost) ;;
      ceiling) x=$(run_ceiling "$CONN") ;;
      isql) x=$(run_isql) ;;
      psql) x=$(run_psql) ;;
    esac
    W[$m]+="$(field "$x" 1) "; M[$m]=$(field "$x" 2); C[$m]+="$(field "$x" 3) "
  done
done
for f in ceiling isql psql; do
  lines=$(wc -l <"$T/$f.csv")
  [ "$lines" = $((ROWS + 1)) ] || t_fail "$f wrote $lines lines, expected $((ROWS + 1))"
done
[ "$(wc -l <"$T/ws/artifacts/export.csv")" = $((ROWS + 1)) ] || t_fail "outpost's CSV is short"

rate() { awk -v n="$ROWS" -v s="$1" 'BEGIN { printf "%.0f", n / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
declare -A what=(
  [outpost]="odbc.export task via plugin run, worker included"
  [ceiling]="minimal psqlODBC client, text binding, 2000-row arrays"
  [isql]="unixODBC isql, same DSN"
  [psql]="psql --csv (libpq)")
printf '\n%s rows x 5 columns, PostgreSQL 15 -> CSV, %s rounds\n' "$ROWS" "$ROUNDS"
printf '%-8s %8s %7s %9s %8s %9s  %s\n' method median best rows/s cpu-s peak-MiB what
for m in outpost ceiling isql psql; do
  # shellcheck disable=SC2086
  med=$(median ${W[$m]}); printf '%-8s %8s %7s %9s %8s %9s  %s\n' "$m" "$med" "$(best ${W[$m]})" \
    "$(rate "$med")" "$(median ${C[$m]})" "${M[$m]}" "${what[$m]}"
done
# shellcheck disable=SC2086
{ o=$(median ${W[outpost]}); c=$(median ${W[ceiling]}); i=$(median ${W[isql]}); p=$(median ${W[psql]}); }
printf '\nrows/s, outpost vs ceiling %s (target >= 0.9), vs isql %s (>= 2), vs psql %s (>= 0.5), medians\n' \
  "$(ratio "$o" "$c")" "$(ratio "$o" "$i")" "$(ratio "$o" "$p")"

# Driver settings: the same export with psqlODBC's cursor off and with other Fetch sizes,
# interleaved, ROUNDS runs each.
settings=("UseDeclareFetch=0" "UseDeclareFetch=1;Fetch=1000" "UseDeclareFetch=1;Fetch=10000"
          "UseDeclareFetch=1;Fetch=100000")
declare -A SW SM SC
for ((r = 0; r < ROUNDS; r++)); do
  echo "--- settings, round $((r + 1)) of $ROUNDS" >&2
  for s in "${settings[@]}"; do
    task drv "\"connection_string\": \"DSN=bench;$s\""
    x=$(run_outpost drv); SW[o$s]+="$(field "$x" 1) "; SM[o$s]=$(field "$x" 2); SC[o$s]+="$(field "$x" 3) "
    x=$(run_ceiling "$CONN;$s"); SW[c$s]+="$(field "$x" 1) "; SM[c$s]=$(field "$x" 2); SC[c$s]+="$(field "$x" 3) "
  done
done
printf '\npsqlODBC settings (medians of %s): seconds, cpu seconds, peak MiB\n' "$ROUNDS"
printf '%-31s %26s %26s\n' setting outpost ceiling
for s in "${settings[@]}"; do
  # shellcheck disable=SC2086
  printf '%-31s %8s s %6s cpu %4s MiB %8s s %6s cpu %4s MiB\n' "$s" \
    "$(median ${SW[o$s]})" "$(median ${SC[o$s]})" "${SM[o$s]}" \
    "$(median ${SW[c$s]})" "$(median ${SC[c$s]})" "${SM[c$s]}"
done
