#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# odbc: every bad param, bad setting and refused secret gives the exact message a user sees,
# before anything connects.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/odbc/fixtures.sh"

n=0
# bad TYPE PARAMS_JSON MESSAGE: the task is refused as invalid (exit 2) with MESSAGE.
bad() {
  local type=$1 params=$2 msg=$3
  n=$((n + 1))
  printf '{"type": "%s", "params": %s}\n' "$type" "$params" | odbc_task "bad$n"
  odbc_run 2 "bad$n"
  odbc_expect "bad$n" invalid "$msg"
}
PG='"url": "jdbc:postgresql://127.0.0.1:1/app"'

# ---- the schema: structure, types, enums, ranges ------------------------------------------
bad odbc.query '{"url": "jdbc:sqlite:/tmp/x.db"}' 'params.sql: required'
bad odbc.query "{$PG, \"sql\": \"select 1\", \"sqll\": 1}" 'params.sqll: unknown field'
bad odbc.query "{$PG, \"sql\": \"\"}" 'params.sql: must be at least 1 characters long'
bad odbc.query "{$PG, \"sql\": \"select 1\", \"max_rows\": 0}" 'params.max_rows: must be >= 1, got 0'
bad odbc.query "{$PG, \"sql\": \"select 1\", \"rows_as\": \"table\"}" \
  'params.rows_as: must be one of ["objects","arrays"]'
bad odbc.query '{"url": "postgres://db/app", "sql": "select 1"}' \
  'params.url: does not match pattern ^jdbc:[A-Za-z0-9]+:'
bad odbc.query '{"dsn": "a;b", "sql": "select 1"}' 'params.dsn: does not match pattern ^[^;{}=]+$'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [[1]]}" \
  'params.params[0]: expected string or number or boolean or null or object, got array'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"money\", \"value\": 1}]}" \
  'params.params[0].type: must be one of ["string","integer","number","decimal","boolean","date","time","timestamp","binary"]'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"value\": 1}]}" \
  'params.params[0].type: required'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"date\", \"val\": 1}]}" \
  'params.params[0].val: unknown field'
bad odbc.script "{$PG, \"statements\": []}" 'params.statements: must have at least 1 items'
bad odbc.script "{$PG, \"script\": \"select 1\", \"transaction\": \"yes\"}" \
  'params.transaction: expected boolean, got string'
bad odbc.export "{$PG, \"sql\": \"select 1\", \"format\": \"xml\"}" \
  'params.format: must be one of ["csv","jsonl"]'
bad odbc.export "{$PG, \"sql\": \"select 1\", \"artifact\": \"../etc/passwd\"}" \
  'params.artifact: does not match pattern ^[A-Za-z0-9_][A-Za-z0-9._-]*$'
bad odbc.export "{$PG, \"sql\": \"select 1\", \"delimiter\": \"::\"}" \
  'params.delimiter: must be one of [",",";","|","\t"]'
bad odbc.export "{$PG, \"sql\": \"select 1\", \"fetch_rows\": 0}" 'params.fetch_rows: must be >= 1, got 0'

# ---- where to connect ---------------------------------------------------------------------
bad odbc.query '{"sql": "select 1"}' 'params: name the database with one of url, connection_string or dsn'
bad odbc.query "{$PG, \"dsn\": \"warehouse\", \"sql\": \"select 1\"}" \
  'params: give only one of url, connection_string and dsn (got url and dsn)'
bad odbc.query '{"url": "jdbc:oracle:thin:@db:1521/orcl", "sql": "select 1"}' \
  'params.url: no driver for jdbc:oracle (known: postgresql, sqlite, mysql, mariadb, sqlserver); add one under plugins.config.odbc.drivers'
bad odbc.query '{"url": "jdbc:postgresql://db.example.com/app?user=a&password=hunter2", "sql": "select 1"}' \
  'params.url: a password in the URL is refused; name a secret in params.password_secret'
bad odbc.query '{"url": "jdbc:mysql://app:hunter2@db.example.com/app", "sql": "select 1"}' \
  'params.url: a password in the URL is refused; name a secret in params.password_secret'
bad odbc.query '{"url": "jdbc:postgresql://db1:5432,db2:5432/app", "sql": "select 1"}' \
  'params.url: several hosts are not supported; name one'
bad odbc.query '{"url": "jdbc:postgresql://db.example.com:99999/app", "sql": "select 1"}' \
  'params.url: the port must be a number 1-65535, got "99999"'
bad odbc.query '{"url": "jdbc:postgresql:app", "sql": "select 1"}' \
  'params.url: jdbc:postgresql needs a host, e.g. jdbc:postgresql://db.example.com:5432/app'
bad odbc.query '{"url": "jdbc:sqlite:", "sql": "select 1"}' \
  'params.url: jdbc:sqlite needs a file path, e.g. jdbc:sqlite:/var/lib/app/app.db'
bad odbc.query '{"url": "jdbc:postgresql://db/app?sslmode", "sql": "select 1"}' \
  'params.url: property "sslmode" has no value (expected KEY=VALUE)'
bad odbc.query '{"url": "jdbc:postgresql://db/app?Driver=/tmp/x.so", "sql": "select 1"}' \
  'params.url: property Driver is refused in a URL'
bad odbc.query '{"connection_string": "Driver={PostgreSQL Unicode};Server=db;PWD=hunter2", "sql": "select 1"}' \
  'params.connection_string: a password is refused here (PWD=); name a secret in params.password_secret'
bad odbc.query '{"connection_string": "FILEDSN=/tmp/x.dsn", "sql": "select 1"}' \
  'params.connection_string: FILEDSN is refused; use params.dsn or the driver'"'"'s own keywords'
bad odbc.query '{"connection_string": "Driver=/tmp/evil.so;Database=x", "sql": "select 1"}' \
  'params.connection_string: driver /tmp/evil.so is not under an allowed driver directory (plugins.config.odbc.driver_dirs: /usr/lib/x86_64-linux-gnu/odbc, /usr/lib/x86_64-linux-gnu, /usr/lib/odbc, /usr/local/lib, /opt)'
bad odbc.query '{"connection_string": "Driver=odbc/x.so;Database=x", "sql": "select 1"}' \
  'params.connection_string: driver odbc/x.so must be an absolute path or a driver name from odbcinst.ini'
bad odbc.query '{"connection_string": "Server=db;Port=5432", "sql": "select 1"}' \
  'params.connection_string: name a Driver= or a DSN= (e.g. Driver=/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so;Server=...)'
bad odbc.query '{"connection_string": "Driver={PostgreSQL;Server=db", "sql": "select 1"}' \
  'params.connection_string: a value opened with { is not closed'

# ---- credentials, timeouts, bound values --------------------------------------------------
bad odbc.query "{$PG, \"sql\": \"select 1\", \"user\": \"a\", \"user_secret\": \"b\"}" \
  'params: give user or user_secret, not both'
bad odbc.query "{$PG, \"sql\": \"select 1\", \"login_timeout\": \"soon\"}" \
  'params.login_timeout: "soon" is not a duration (use e.g. "500ms", "30s", "5m")'
bad odbc.query "{$PG, \"sql\": \"select 1\", \"query_timeout\": \"48h\"}" \
  'params.query_timeout: must be between 0 and 24h'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"date\", \"value\": \"2024-02-30\"}]}" \
  'params.params[0].value: expected a date such as "2024-01-31", got "2024-02-30"'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [1, {\"type\": \"integer\", \"value\": \"12x\"}]}" \
  'params.params[1].value: expected an integer (a number, or a string of digits beyond 2^53), got "12x"'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"integer\", \"value\": 1.5}]}" \
  'params.params[0].value: expected an integer (a number, or a string of digits beyond 2^53), got 1.5'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"decimal\", \"value\": \"1e5\"}]}" \
  'params.params[0].value: expected a decimal such as "12.50", got "1e5"'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"boolean\", \"value\": \"yes\"}]}" \
  'params.params[0].value: expected true or false, got "yes"'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"time\", \"value\": \"25:00\"}]}" \
  'params.params[0].value: expected a time such as "13:45:00" or "13:45:00.250", got "25:00"'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"timestamp\", \"value\": \"2024-01-31T13:45:00Z\"}]}" \
  'params.params[0].value: expected a date-time without a time zone, such as "2024-01-31T13:45:00" (convert it to the database'"'"'s zone, or pass a string and cast it in SQL), got "2024-01-31T13:45:00Z"'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"timestamp\", \"value\": \"yesterday\"}]}" \
  'params.params[0].value: expected a date-time such as "2024-01-31T13:45:00.250", got "yesterday"'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"binary\", \"value\": \"not base64!\"}]}" \
  'params.params[0].value: expected base64 bytes such as "AP8=", got "not base64!"'
bad odbc.query "{$PG, \"sql\": \"select ?\", \"params\": [{\"type\": \"string\", \"value\": 5}]}" \
  'params.params[0].value: expected a string, got 5'
bad odbc.script "{$PG}" \
  'params: give the SQL to run as statements (a list) or script (one text, split at semicolons)'
bad odbc.script "{$PG, \"script\": \"select 1\", \"statements\": [\"select 1\"]}" \
  'params: give statements or script, not both'

# ---- secrets: refused before anything is sent ---------------------------------------------
odbc_task secret1 <<EOF
{"type": "odbc.query", "params": {"url": "jdbc:postgresql://127.0.0.1:1/app", "password_secret": "nope", "sql": "select 1"}}
EOF
odbc_run 1 secret1
odbc_expect secret1 failed 'params.password_secret: secret "nope" is not available for 127.0.0.1 (unknown, or refused by its allow list)'
odbc_task secret2 <<EOF
{"type": "odbc.query", "params": {"url": "jdbc:postgresql://127.0.0.1:1/app", "password_secret": "fenced_password", "sql": "select 1"}}
EOF
odbc_run 1 secret2
odbc_expect secret2 failed 'params.password_secret: secret "fenced_password" is not available for 127.0.0.1 (unknown, or refused by its allow list)'
t_expect_not_contains "$T/secret2.err" "connecting to"

# ---- plugin settings: refused when the plugin loads ---------------------------------------
# setting CONFIG_YAML MESSAGE: the plugin refuses to initialise with MESSAGE.
setting() {
  n=$((n + 1))
  printf 'plugins:\n  enabled: [odbc]\n  config:\n    odbc:\n%s\n' "$1" >"$T/agent-bad$n.yaml"
  printf '{"type": "odbc.query", "params": {%s, "sql": "select 1"}}\n' "$PG" | odbc_task "set$n"
  odbc_run 3 "set$n" --config "$T/agent-bad$n.yaml"
  t_expect_contains "$T/set$n.err" "$2"
}
setting '      fetch_row: 10' \
  'plugins.config.odbc.fetch_row: unknown setting (known: drivers, driver_dirs, cancel_drivers, fetch_rows, buffer_memory, env_allow)'
setting '      fetch_rows: 0' 'plugins.config.odbc.fetch_rows: expected an integer 1-100000'
setting '      buffer_memory: lots' \
  'plugins.config.odbc.buffer_memory: expected a size between 64KiB and 4GiB, such as "16MiB"'
setting '      driver_dirs: [lib/odbc]' 'plugins.config.odbc.driver_dirs[0]: expected an absolute path'
setting $'      drivers:\n        oracle: {driver: /opt/oracle/libsqora.so}' \
  'plugins.config.odbc.drivers.oracle: a new driver needs "driver" and "template"'
setting $'      drivers:\n        postgresql: {drvier: x}' \
  'plugins.config.odbc.drivers.postgresql.drvier: unknown key (known: driver, template, port, options, label)'
setting $'      drivers:\n        postgresql: {port: 0}' \
  'plugins.config.odbc.drivers.postgresql.port: expected a port number 1-65535'
setting $'      drivers:\n        Post_gres: {driver: x, template: "Server={host}"}' \
  'plugins.config.odbc.drivers.Post_gres: a URL subprotocol is lower-case letters and digits (jdbc:NAME:...)'
setting $'      drivers:\n        duck: {driver: x, template: "Database=x"}' \
  'plugins.config.odbc.drivers.duck.template: must use {host} (servers) or {path} (files)'
echo "ok: $n cases"
