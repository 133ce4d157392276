#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Out of file descriptors (more connections than ulimit -n): the server neither spins nor
# dies; it says what to raise, and serves again once connections close.
. "$OUTPOST_SOURCE_DIR/tests/lib.sh"
t_srv_init
( ulimit -n 48; exec "$OUTPOST_SERVER" serve --data-dir "$SRV_DIR" >>"$T/server.log" 2>&1 ) &
SRV_PID=$!
t_track "$SRV_PID"
t_wait_port "$SRV_PORT"
python3 - "$SRV_PORT" "$T/hold" <<'PY' &
import os, socket, sys, time
socks = []
for _ in range(100):
    try:
        socks.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        break
open(sys.argv[2], "w").write(str(len(socks)))
time.sleep(3)
PY
hold=$!
t_wait_for 10 test -s "$T/hold"
sleep 1
# CPU used by the server over one second while it cannot accept
t0=$(awk '{print $14 + $15}' "/proc/$SRV_PID/stat")
sleep 1
t1=$(awk '{print $14 + $15}' "/proc/$SRV_PID/stat")
[ $((t1 - t0)) -lt 50 ] || t_fail "the server spun at $((t1 - t0)) ticks per second while out of descriptors"
wait $hold
t_wait_for 10 curl -sf --cacert "$SRV_CA" "$SRV_URL/health"
t_expect_contains "$T/server.log" "cannot accept connections"
t_expect_contains "$T/server.log" "LimitNOFILE"
t_srv_stop
echo PASS
