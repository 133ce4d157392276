#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ssh plugin params: every structural and semantic error, with the exact message a user sees;
# and a refused connection. Nothing here reaches an SSH server.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/ssh/fixture.sh"
ssh_fixture_init
U="\"user\": \"$SSH_USER\", \"auth\": {\"key_secret\": \"key\"}"
H="\"host\": \"127.0.0.1\", $U"
n=0

# bad TYPE PARAMS MESSAGE: the task is refused as invalid with exactly MESSAGE.
bad() {
  n=$((n + 1))
  ssh_task "$T/b$n.json" "$1" "$2"
  ssh_run 2 "$T/b$n" "$T/b$n.json"
  t_expect_eq invalid "$(t_json "$T/b$n" .status)" "status of case $n"
  t_expect_eq "$3" "$(t_json "$T/b$n" .error)" "error of case $n"
}

bad ssh.exec "$U, \"command\": \"true\"" "params.host: required"
bad ssh.exec "\"host\": \"127.0.0.1\", \"auth\": {\"key_secret\": \"key\"}, \"command\": \"true\"" "params.user: required"
bad ssh.exec "\"host\": \"127.0.0.1\", \"user\": \"u\", \"command\": \"true\"" "params.auth: required"
bad ssh.exec "$H, \"port\": 0, \"command\": \"true\"" "params.port: must be >= 1, got 0"
bad ssh.exec "$H, \"port\": 70000, \"command\": \"true\"" "params.port: must be <= 65535, got 70000"
bad ssh.exec "$H, \"port\": \"22\", \"command\": \"true\"" "params.port: expected integer, got string"
bad ssh.exec "\"host\": \"a host\", $U, \"command\": \"true\"" 'params.host: does not match pattern ^[A-Za-z0-9._:%-]+$'
bad ssh.exec "\"host\": \"h\", \"user\": \"a b\", \"auth\": {\"key_secret\": \"key\"}, \"command\": \"true\"" 'params.user: does not match pattern ^[^[:space:]:/@]+$'
bad ssh.exec "$H, \"comand\": \"true\"" "params.comand: unknown field"
bad ssh.exec "$H" "params: give either command (one) or commands (a list), not neither"
bad ssh.exec "$H, \"command\": \"true\", \"commands\": [\"true\"]" "params: give either command (one) or commands (a list), not both"
bad ssh.exec "$H, \"command\": \"\"" "params.command: must be at least 1 characters long"
bad ssh.exec "$H, \"commands\": []" "params.commands: must have at least 1 items"
bad ssh.exec "$H, \"commands\": [\"ok\", 3]" "params.commands[1]: expected string, got number"
bad ssh.exec "$H, \"command\": \"true\", \"env\": {\"1X\": \"a\"}" 'params.env: "1X" is not a variable name (letters, digits and _, not starting with a digit)'
bad ssh.exec "$H, \"command\": \"true\", \"env\": {\"A\": 1}" "params.env.A: expected string, got number"
bad ssh.exec "$H, \"command\": \"true\", \"timeout\": \"5 minutes\"" 'params.timeout: "5 minutes" is not a duration (use e.g. "500ms", "30s", "5m")'
bad ssh.exec "$H, \"command\": \"true\", \"timeout\": true" "params.timeout: expected string or number, got boolean"
bad ssh.exec "$H, \"command\": \"true\", \"accept_exit_codes\": [256]" "params.accept_exit_codes[0]: must be <= 255, got 256"
bad ssh.exec "$H, \"command\": \"true\", \"accept_exit_codes\": []" "params.accept_exit_codes: must have at least 1 items"
bad ssh.exec "$H, \"command\": \"true\", \"capture_limit\": \"1TiB\"" "params.capture_limit: at most 64MiB (the full output still streams to the task log)"
bad ssh.exec "$H, \"command\": \"true\", \"capture_limit\": \"lots\"" 'params.capture_limit: "lots" is not a size (use e.g. "64KiB", "10MB")'
bad ssh.exec "$H, \"command\": \"true\", \"connect_timeout\": 0" "params.connect_timeout: must be more than 0s"
bad ssh.exec "$H, \"command\": \"true\", \"pty\": \"yes\"" "params.pty: expected boolean, got string"
bad ssh.exec "\"host\": \"h\", \"user\": \"u\", \"auth\": {\"keyfile\": \"/k\"}, \"command\": \"true\"" "params.auth.keyfile: unknown field"
bad ssh.exec "\"host\": \"h\", \"user\": \"u\", \"auth\": {\"agent\": \"yes\"}, \"command\": \"true\"" "params.auth.agent: expected boolean, got string"
bad ssh.exec "$H, \"command\": \"true\", \"jump\": [{\"host\": \"j\", \"user\": \"u\", \"auth\": {}}]" "params.jump[0].auth: give key_secret, password_secret or agent: true"
bad ssh.exec "$H, \"command\": \"true\", \"jump\": [{\"host\": \"j\", \"user\": \"u\", \"auth\": {\"key_secret\": \"k\"}, \"proxy\": 1}]" "params.jump[0].proxy: unknown field"
bad ssh.exec "$H, \"command\": \"true\", \"jump\": {\"host\": \"j\"}" "params.jump: expected array, got object"
bad ssh.upload "$H, \"content\": \"x\"" "params.path: required"
bad ssh.download "$H" "params.path: required"

t_log "nothing listens on the port: the message names the agent's address and the allowlist"
DEAD=$(t_free_port)
ssh_task "$T/c1.json" ssh.exec "\"host\": \"127.0.0.1\", \"port\": $DEAD, $U, \"command\": \"true\""
ssh_run 1 "$T/c1" "$T/c1.json"
t_expect_eq "cannot connect to 127.0.0.1:$DEAD (127.0.0.1): connection refused; the agent connects from 127.0.0.1: nothing listens on that port, or a firewall rejects the agent's address: check the port and the target's allowlist" "$(t_json "$T/c1" .error)"
