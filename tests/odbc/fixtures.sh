# SPDX-License-Identifier: Apache-2.0
# Fixtures for the odbc plugin's tests: a PostgreSQL 15 server on 127.0.0.1 (initdb + pg_ctl
# on a temp data dir), SQLite files, and a helper that runs one task through
# `outpost-agent plugin run`. Source after tests/lib.sh.

if [ -z "${OUTPOST_AGENT:-}" ] || [ ! -x "$OUTPOST_AGENT" ]; then
  echo "SKIP: outpost-agent is not built in this tree" >&2
  exit 77
fi
ODBC_DIR="$OUTPOST_SOURCE_DIR/tests/odbc"
ODBC_PY=/usr/bin/python3
[ -x "$ODBC_PY" ] || ODBC_PY=python3
ODBC_DRIVERS=/usr/lib/x86_64-linux-gnu/odbc
# A password with the characters connection strings must escape, and a token to grep for.
ODBC_PG_PASSWORD='Pw;d}{x=7f3a9c-secret'
ODBC_PG_USER=outpost

# Every run gets these secrets and this agent config (tests append to them).
cat >"$T/secrets.yaml" <<EOF
secrets:
  pg_password: "file:$T/pg.secret"
  wrong_password: "file:$T/wrong.secret"
  fenced_password:
    from: "file:$T/pg.secret"
    allow:
      types: [odbc.query]
      hosts: ["db.example.com"]
EOF
printf '%s\n' "$ODBC_PG_PASSWORD" >"$T/pg.secret"
printf '%s\n' 'not-the-password-5e2b' >"$T/wrong.secret"
chmod 600 "$T/pg.secret" "$T/wrong.secret"
cat >"$T/agent.yaml" <<EOF
plugins:
  enabled: [odbc]
  config:
    odbc:
      env_allow: [ODBCSYSINI, ODBCINI]
EOF

_odbc_as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

odbc_pg_bindir() {
  local d
  for d in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/15/bin; do
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then
      echo "$d"
      return 0
    fi
  done
  t_fail "PostgreSQL's initdb is not installed (scripts/deps.sh installs postgresql)"
}

# odbc_pg_start: a PostgreSQL server on 127.0.0.1:$ODBC_PG_PORT, superuser $ODBC_PG_USER with
# $ODBC_PG_PASSWORD (scram-sha-256), stopped at exit. Sets ODBC_PG_PORT and ODBC_PG_URL.
odbc_pg_start() {
  local bin dir=$T/pg pid
  bin=$(odbc_pg_bindir)
  mkdir -p "$dir"
  printf '%s\n' "$ODBC_PG_PASSWORD" >"$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
  _odbc_as_pg "$bin/initdb" -D "$dir/data" -U "$ODBC_PG_USER" --pwfile="$dir/pwfile" \
    -A scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; t_fail "initdb failed"; }
  rm -f "$dir/pwfile"
  ODBC_PG_PORT=$(t_free_port)
  _odbc_as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $ODBC_PG_PORT -k $dir -c fsync=off -c full_page_writes=off" \
    start >"$dir/pg_ctl.log" 2>&1 || { cat "$dir/server.log" >&2; t_fail "pg_ctl start failed"; }
  pid=$(head -n 1 "$dir/data/postmaster.pid")
  t_on_exit "_odbc_as_pg '$bin/pg_ctl' -D '$dir/data' -m immediate -w stop"
  t_track "$pid"
  ODBC_PG_URL="jdbc:postgresql://127.0.0.1:$ODBC_PG_PORT/postgres?user=$ODBC_PG_USER"
}

# odbc_psql SQL...: runs SQL on the test server with psql (no ODBC involved); prints rows.
odbc_psql() {
  PGPASSWORD=$ODBC_PG_PASSWORD psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$ODBC_PG_PORT" \
    -U "$ODBC_PG_USER" -d postgres -At "$@"
}

# odbc_sqlite FILE SQL: runs SQL (a script) on a SQLite file with python's sqlite3 module.
odbc_sqlite() {
  "$ODBC_PY" - "$1" "$2" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.executescript(sys.argv[2])
con.commit()
PY
}

# odbc_task NAME: writes the task file $T/NAME.json from stdin.
odbc_task() {
  cat >"$T/$1.json"
}

# odbc_run RC NAME [args...]: runs task $T/NAME.json through plugin run with the fixtures'
# secrets and config; stdout (the outcome JSON) to $T/NAME.out, stderr to $T/NAME.err,
# workspace $T/ws-NAME. Fails unless the exit code is RC.
odbc_run() {
  local want=$1 name=$2 rc=0
  shift 2
  "$OUTPOST_AGENT" plugin run --task "$T/$name.json" --plugins-dir "$OUTPOST_PLUGIN_DIR" \
    --secrets "$T/secrets.yaml" --config "$T/agent.yaml" --workspace "$T/ws-$name" "$@" \
    >"$T/$name.out" 2>"$T/$name.err" || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "--- $name: stderr" >&2
    tail -n 30 "$T/$name.err" >&2
    echo "--- $name: stdout" >&2
    head -c 3000 "$T/$name.out" >&2
    t_fail "$name: exit code: expected $want, got $rc"
  fi
}

# odbc_json FILE PATH: as t_json, with the system python (a pyenv shim costs ~0.3 s a call).
odbc_json() {
  "$ODBC_PY" - "$1" "$2" <<'PY'
import json, sys
src, path = sys.argv[1], sys.argv[2]
data = json.load(sys.stdin if src == "-" else open(src))
for part in [p for p in path.replace("]", "").replace("[", ".").split(".") if p]:
    data = data[int(part)] if isinstance(data, list) else data[part]
print(json.dumps(data, ensure_ascii=False) if isinstance(data, (dict, list)) else ("" if data is None else str(data).lower() if isinstance(data, bool) else data))
PY
}
# odbc_error NAME: the outcome's error message.
odbc_error() { odbc_json "$T/$1.out" .error; }
# odbc_expect_error NAME MESSAGE: the error is exactly MESSAGE.
odbc_expect_error() {
  local got
  got=$(odbc_error "$1")
  [ "$got" = "$2" ] || t_fail "$1: error: expected [$2], got [$got]"
}
# odbc_expect NAME STATUS [ERROR]: the outcome's status, and its error when given (one python
# call for both).
odbc_expect() {
  "$ODBC_PY" - "$T/$1.out" "$2" "${3-}" "$#" <<'PY' || t_fail "$1: unexpected outcome"
import json, sys
out, status, error, argc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
d = json.load(open(out))
ok = d.get("status") == status
if not ok:
    print("status: expected [%s], got [%s]" % (status, d.get("status")), file=sys.stderr)
if argc >= 3 and d.get("error") != error:
    print("error: expected [%s]\n          got [%s]" % (error, d.get("error")), file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)
PY
}
# odbc_expect_status NAME STATUS
odbc_expect_status() {
  t_expect_eq "$2" "$(odbc_json "$T/$1.out" .status)" "$1: status"
}
# odbc_no_secret NAME: neither output of the run holds the PostgreSQL password.
odbc_no_secret() {
  t_expect_not_contains "$T/$1.out" "7f3a9c-secret"
  t_expect_not_contains "$T/$1.err" "7f3a9c-secret"
}
