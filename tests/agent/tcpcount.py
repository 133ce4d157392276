# SPDX-License-Identifier: Apache-2.0
# A TCP forwarder that counts the connections it forwards (each one is a TLS handshake):
#   python3 tcpcount.py LISTEN_PORT TARGET_PORT COUNT_FILE
import socket, sys, threading

listen_port, target_port, count_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
count = 0
lock = threading.Lock()

def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(64)
open(count_file, "w").write("0\n")
while True:
    client, _ = srv.accept()
    upstream = socket.create_connection(("127.0.0.1", target_port))
    with lock:
        count += 1
        open(count_file, "w").write("%d\n" % count)
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
