#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ssh.upload and ssh.download of 100 MB against a real sshd, checksums on both sides (slow).
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
. "$OUTPOST_SOURCE_DIR/tests/ssh/fixture.sh"
ssh_fixture_init
sshd_start a
C=$(ssh_conn "$SSHD_PORT")
R=$T/remote
mkdir -p "$T/ws"
head -c 100000000 /dev/urandom > "$T/ws/big.bin"
want=$(sha256sum "$T/ws/big.bin" | awk '{print $1}')

t_log "upload 100 MB"
ssh_task "$T/u.json" ssh.upload "$C, \"path\": \"$R/big.bin\", \"source\": \"big.bin\"" 300s
ssh_run 0 "$T/u" "$T/u.json"
t_expect_eq "$want" "$(t_json "$T/u" .result.sha256)" "sha256 in the result"
t_expect_eq "$want" "$(sha256sum "$R/big.bin" | awk '{print $1}')" "sha256 on the host"
t_log "upload: $(t_json "$T/u" .result.bytes_per_second) bytes/s"

t_log "download 100 MB into an artifact, checked against the expected sha256"
ssh_task "$T/d.json" ssh.download "$C, \"path\": \"$R/big.bin\", \"artifact\": \"copy.bin\", \"sha256\": \"$want\"" 300s
SSH_WORKSPACE=$T/ws2 ssh_run 0 "$T/d" "$T/d.json"
t_expect_eq "$want" "$(sha256sum "$T/ws2/artifacts/copy.bin" | awk '{print $1}')" "sha256 of the artifact"
t_expect_eq 100000000 "$(t_json "$T/d" .artifacts[0].size)"
t_log "download: $(t_json "$T/d" .result.bytes_per_second) bytes/s"
