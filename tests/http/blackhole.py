#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A test fixture: a port on 127.0.0.1 whose accept queue is full, so the kernel drops further
# SYNs and a connect times out, as behind a firewall that drops packets.
#   blackhole.py PORT
import socket
import sys
import time

port = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(0)
held = []
for _ in range(8):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    held.append(c)
time.sleep(0.2)
print("ready", flush=True)
while True:
    time.sleep(3600)
