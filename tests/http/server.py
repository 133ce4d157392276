#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A test fixture for the http plugin: a small HTTP/1.1 server on 127.0.0.1, optionally TLS
# (and requiring a client certificate), with endpoints for statuses, redirects, slow and
# chunked responses, retries, auth and echoing the request. Not a product part.
#
#   server.py --port N [--cert F --key F [--client-ca F] [--tls-max 1.2]] [--log FILE]
import argparse
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

COUNTERS = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "outpost-test"

    def setup(self):
        super().setup()
        if self.server.logfile:
            with LOCK, open(self.server.logfile, "a") as f:
                f.write("CONN %d\n" % self.client_address[1])

    def log_message(self, fmt, *args):
        if self.server.logfile:
            with LOCK, open(self.server.logfile, "a") as f:
                f.write("%s %s\n" % (self.command, self.path))

    def reply(self, code, body=b"", ctype="text/plain", headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [p for p in url.path.split("/") if p]
        body = self.read_body()
        what = parts[0] if parts else ""
        if what == "status":
            code = int(parts[1])
            self.reply(code, "status %d\n" % code)
        elif what == "json":
            self.reply(200, json.dumps({"ok": True, "count": 2, "name": "outpost",
                                        "items": [{"id": 1, "tags": ["a", "b"]}, {"id": 2}],
                                        "odd key": "yes"}), "application/json")
        elif what == "echo":
            self.reply(200, json.dumps({
                "method": self.command, "path": url.path, "query": parse_qs(url.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"), "body_len": len(body)}),
                "application/json")
        elif what == "redirect":
            n = int(parts[1])
            if n > 0:
                self.reply(302, "", headers={"Location": "/redirect/%d" % (n - 1)})
            else:
                self.reply(200, "redirects done\n")
        elif what == "redirect-to":
            self.reply(int(q.get("code", "302")), "", headers={"Location": q["url"]})
        elif what == "slow":
            time.sleep(float(q.get("delay", "1")))
            self.reply(200, "slow done\n")
        elif what == "trickle":
            n, delay = int(q.get("n", "10")), float(q.get("delay", "0.2"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            for _ in range(n):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(delay)
        elif what == "chunked":
            size, chunk = int(q.get("size", "100000")), int(q.get("chunk", "4096"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sent = 0
            while sent < size:
                n = min(chunk, size - sent)
                self.wfile.write(b"%x\r\n" % n + b"c" * n + b"\r\n")
                sent += n
            self.wfile.write(b"0\r\n\r\n")
        elif what == "bytes":
            n = int(q.get("n", "1024"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = b"b" * 65536
            while n > 0:
                k = min(n, len(block))
                self.wfile.write(block[:k])
                n -= k
        elif what == "binary":
            self.reply(200, bytes(range(256)), "application/octet-stream")
        elif what == "flaky":
            key, fail = q.get("key", "k"), int(q.get("fail", "1"))
            with LOCK:
                COUNTERS[key] = COUNTERS.get(key, 0) + 1
                count = COUNTERS[key]
            if count <= fail:
                if q.get("mode") == "reset":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                hdr = {"Retry-After": q["retry_after"]} if "retry_after" in q else {}
                self.reply(int(q.get("code", "503")), "try again\n", headers=hdr)
            else:
                self.reply(200, "ok after %d\n" % count)
        elif what == "count":
            with LOCK:
                self.reply(200, str(COUNTERS.get(q.get("key", "k"), 0)))
        elif what == "auth":
            got = self.headers.get(q.get("header", "Authorization"), "")
            if got == q.get("expect", ""):
                self.reply(200, "welcome\n")
            else:
                self.reply(401, "unauthorized\n", headers={"WWW-Authenticate": "Basic realm=t"})
        elif what == "headers":
            self.reply(200, "headers set\n", headers=q)
        elif what == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.reply(200, "hello from outpost-test\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
        super().finish_request(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca")
    ap.add_argument("--log")
    ap.add_argument("--tls-max", choices=["1.2", "1.3"])
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.logfile = a.log
    srv.tls = None
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        if a.tls_max == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if a.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(a.client_ca)
        srv.tls = ctx
    sys.stdout.write("listening on %d\n" % a.port)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
