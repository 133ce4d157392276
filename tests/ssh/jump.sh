#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ssh plugin jump hosts (ProxyJump semantics): real sshd bastions on loopback, each hop with
# its own authentication and host key check.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/ssh/fixture.sh"
ssh_fixture_init
sshd_start a
PA=$SSHD_PORT
sshd_start j1 "LogLevel DEBUG1"
PJ1=$SSHD_PORT
sshd_start j2 "LogLevel DEBUG1"
PJ2=$SSHD_PORT
sshd_start nofwd "AllowTcpForwarding no"
PN=$SSHD_PORT
hop() { # hop PORT [KEY_SECRET] [EXTRA]
  printf '{"host": "127.0.0.1", "port": %s, "user": "%s", "auth": {"key_secret": "%s"}%s}' \
    "$1" "$SSH_USER" "${2:-key}" "${3:-}"
}
C=$(ssh_conn "$PA")

t_log "one jump host"
ssh_task "$T/t1.json" ssh.exec "$C, \"jump\": [$(hop "$PJ1")], \"command\": \"echo through\""
ssh_run 0 "$T/o1" "$T/t1.json"
t_expect_eq through "$(t_json "$T/o1" .result.stdout)"
t_expect_contains "$T/o1.log" "connected to jump host $SSH_USER@127.0.0.1:$PJ1"
t_wait_for 5 grep -q "target 127.0.0.1 port $PA" "$T/sshd-j1/log"

t_log "two jump hosts, first to last"
ssh_task "$T/t2.json" ssh.exec "$C, \"jump\": [$(hop "$PJ1"), $(hop "$PJ2")], \"commands\": [\"echo a\", \"echo b\"]"
ssh_run 0 "$T/o2" "$T/t2.json"
t_expect_eq b "$(t_json "$T/o2" .result.commands[1].stdout)"
t_wait_for 5 grep -q "target 127.0.0.1 port $PJ2" "$T/sshd-j1/log"
t_wait_for 5 grep -q "target 127.0.0.1 port $PA" "$T/sshd-j2/log"

t_log "files through a jump host"
ssh_task "$T/t3.json" ssh.upload "$C, \"jump\": [$(hop "$PJ1")], \"path\": \"$T/remote/via-jump.txt\", \"content\": \"hello\""
ssh_run 0 "$T/o3" "$T/t3.json"
t_expect_eq hello "$(cat "$T/remote/via-jump.txt")"
ssh_task "$T/t3b.json" ssh.download "$C, \"jump\": [$(hop "$PJ1")], \"path\": \"$T/remote/via-jump.txt\""
ssh_run 0 "$T/o3b" "$T/t3b.json"
t_expect_eq hello "$(cat "$T/ws/artifacts/via-jump.txt")"

t_log "the jump host refuses our key: the error names that hop"
ssh_task "$T/t4.json" ssh.exec "$C, \"jump\": [$(hop "$PJ1" other_key)], \"command\": \"true\""
ssh_run 1 "$T/o4" "$T/t4.json"
t_expect_eq "authentication failed for $SSH_USER@127.0.0.1:$PJ1: the server refused the key from secret \"other_key\" (it accepts: publickey). Check params.jump[0].user, and that the key is in the user's authorized_keys on the host" "$(t_json "$T/o4" .error)"

t_log "each hop checks its own host key: the target behind the jump is unknown"
grep -v "^\[127.0.0.1\]:$PA " "$T/known_hosts" > "$T/kh" && cp "$T/kh" "$T/known_hosts"
ssh_run 1 "$T/o5" "$T/t1.json"
t_expect_contains "$(t_json "$T/o5" .error)" "host key verification failed for 127.0.0.1:$PA: the host is unknown"
FP=$(sshd_fingerprint a)
ssh_task "$T/t5.json" ssh.exec "$C, \"host_key\": \"$FP\", \"jump\": [$(hop "$PJ1")], \"command\": \"echo pinned\""
ssh_run 0 "$T/o5b" "$T/t5.json"

t_log "a pinned key on the jump host that does not match"
ssh_task "$T/t6.json" ssh.exec "$C, \"host_key\": \"$FP\", \"jump\": [$(hop "$PJ1" key ", \"host_key\": \"$FP\"")], \"command\": \"true\""
ssh_run 1 "$T/o6" "$T/t6.json"
t_expect_eq "host key verification failed for 127.0.0.1:$PJ1: it presented ssh-ed25519 key $(sshd_fingerprint j1), but params.jump[0].host_key pins $FP. If the host's key was changed on purpose, update the pin; otherwise someone may be intercepting the connection" "$(t_json "$T/o6" .error)"

t_log "the jump host does not allow forwarding"
ssh_task "$T/t7.json" ssh.exec "$C, \"host_key\": \"$FP\", \"jump\": [$(hop "$PN")], \"command\": \"true\""
ssh_run 1 "$T/o7" "$T/t7.json"
t_expect_contains "$(t_json "$T/o7" .error)" "jump host 127.0.0.1:$PN could not connect to 127.0.0.1:$PA: "
t_expect_contains "$(t_json "$T/o7" .error)" "The jump host makes this connection, so the target's firewall or allowlist must admit the jump host's address, and the jump host's sshd must allow TCP forwarding (AllowTcpForwarding)"

t_log "nothing listens behind the jump host"
DEAD=$(t_free_port)
ssh_task "$T/t8.json" ssh.exec "\"host\": \"127.0.0.1\", \"port\": $DEAD, \"user\": \"$SSH_USER\", \"auth\": {\"key_secret\": \"key\"}, \"jump\": [$(hop "$PJ1")], \"command\": \"true\""
ssh_run 1 "$T/o8" "$T/t8.json"
t_expect_contains "$(t_json "$T/o8" .error)" "jump host 127.0.0.1:$PJ1 could not connect to 127.0.0.1:$DEAD: "

t_log "a jump hop without auth"
ssh_task "$T/t9.json" ssh.exec "$C, \"jump\": [{\"host\": \"127.0.0.1\", \"user\": \"x\"}], \"command\": \"true\""
ssh_run 2 "$T/o9" "$T/t9.json"
t_expect_eq "params.jump[0].auth: required" "$(t_json "$T/o9" .error)"

t_log "too many jump hosts"
nine=$(hop "$PJ1"); for _ in 1 2 3 4 5 6 7 8; do nine="$nine, $(hop "$PJ1")"; done
ssh_task "$T/t10.json" ssh.exec "$C, \"jump\": [$nine], \"command\": \"true\""
ssh_run 2 "$T/o10" "$T/t10.json"
t_expect_eq "params.jump: must have at most 8 items" "$(t_json "$T/o10" .error)"
