#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The ssh plugin within a worker memory limit (RLIMIT_AS, so plain builds only): two jump
# hosts and a transfer fit in 32 MiB of address space.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/ssh/fixture.sh"
ssh_fixture_init
sshd_start a
PA=$SSHD_PORT
sshd_start j
PJ=$SSHD_PORT
printf 'workers:\n  memory_limit: 32MiB\n' >> "$T/agent.yaml"
hop="{\"host\": \"127.0.0.1\", \"port\": $PJ, \"user\": \"$SSH_USER\", \"auth\": {\"key_secret\": \"key\"}}"
C="$(ssh_conn "$PA"), \"jump\": [$hop, $hop]"

ssh_task "$T/t1.json" ssh.exec "$C, \"commands\": [\"echo one\", \"echo two\"]"
ssh_run 0 "$T/o1" "$T/t1.json"
t_expect_eq two "$(t_json "$T/o1" .result.commands[1].stdout)"

head -c 5000000 /dev/urandom > "$T/remote/f.bin"
ssh_task "$T/t2.json" ssh.download "$C, \"path\": \"$T/remote/f.bin\""
ssh_run 0 "$T/o2" "$T/t2.json"
t_expect_eq "$(sha256sum "$T/remote/f.bin" | awk '{print $1}')" "$(t_json "$T/o2" .result.sha256)"
