#!/usr/bin/env python3
"""A plain HTTP origin for relua's specs (127.0.0.1, a free port, HTTP/1.0: one request per
connection). Started by tests/support/http_servers.lua.

usage: httpd.py --port-file FILE [--parent PID] [--max-seconds N] [--cert PEM --key PEM]
With --cert and --key it speaks HTTPS.

Endpoints (any method unless said):
  /echo                 JSON: method, path, query, headers (lower-cased), body_size,
                        body_sha256, body (latin-1, when at most 64 KiB)
  /bytes/N[?chunk_delay=S]    N bytes ("0123456789abcdef" repeated), with Content-Length,
                        waiting S seconds after each 64 KiB
  /status/N[?retry_after=S]   status N, body "status N"
  /slow?seconds=S       waits S seconds, then 200 "slow"
  /redirect/N           302 to /redirect/N-1; /redirect/0 goes to /echo
  /redirect-to?url=U    302 to U
  /basic?user=U&password=P    200 JSON when Basic auth matches, else 401
  /bearer?token=T       200 when "Authorization: Bearer T", else 401 (the body never
                        repeats the token)
  /truncate?size=N&send=M     declares Content-Length N, sends M bytes, closes
  /headers              repeated headers: two Set-Cookie, two X-Multi; blank-padded, empty,
                        with colons, folded (obs-fold)
  /concurrent?delay=S   counts requests in flight (see /stats), holds each for S seconds
  /flaky?key=K&fail=N&status=C[&retry_after=S]   the first N requests for K get status C
  /upload               multipart/form-data parsed as a stream; JSON: parts with name,
                        filename, type, size, sha256 (value when small)
  /refuse/...           GET/HEAD: 404; any other method: 401 with an empty body (a registry
                        that refuses a token without saying why)
  /stats                JSON: max_concurrent, in_flight, counts per path
  /stats/reset          clears the counters
"""
import argparse
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import serverlib

PATTERN = b"0123456789abcdef" * 4096  # 64 KiB
LOCK = threading.Lock()
STATE = {"in_flight": 0, "max_concurrent": 0, "counts": {}, "flaky": {}}


def stream_body(rfile, length, chunk=65536):
    while length > 0:
        data = rfile.read(min(chunk, length))
        if not data:
            break
        length -= len(data)
        yield data


class Part:
    def __init__(self, headers):
        self.name = self.filename = None
        self.type = headers.get("content-type")
        disp = headers.get("content-disposition", "")
        for item in disp.split(";")[1:]:
            k, _, v = item.strip().partition("=")
            v = v.strip().strip('"')
            if k == "name":
                self.name = v
            elif k == "filename":
                self.filename = v
        self.size = 0
        self.sha = hashlib.sha256()
        self.small = bytearray()

    def feed(self, data):
        self.size += len(data)
        self.sha.update(data)
        if len(self.small) <= 4096:
            self.small += data[: 4097 - len(self.small)]

    def result(self):
        r = {"name": self.name, "filename": self.filename, "type": self.type,
             "size": self.size, "sha256": self.sha.hexdigest()}
        if self.size <= 4096:
            r["value"] = self.small.decode("latin-1")
        return r


def parse_multipart(rfile, length, boundary):
    """Streams a multipart body: memory stays flat whatever the part sizes."""
    delim = b"\r\n--" + boundary
    src = stream_body(rfile, length)
    buf = b"\r\n"  # the body starts with "--boundary": make it look like every other one
    parts, cur = [], None

    def more():
        nonlocal buf
        try:
            buf += next(src)
            return True
        except StopIteration:
            return False

    while True:
        idx = buf.find(delim)
        if idx < 0:
            keep = len(delim)
            if len(buf) > keep:
                if cur:
                    cur.feed(buf[:-keep])
                buf = buf[-keep:]
            if not more():
                raise ValueError("multipart body ended without a closing boundary")
            continue
        if cur:
            cur.feed(buf[:idx])
            parts.append(cur.result())
            cur = None
        buf = buf[idx + len(delim):]
        while len(buf) < 2:
            if not more():
                raise ValueError("multipart body ended inside a boundary")
        if buf[:2] == b"--":
            for _ in src:  # drain the epilogue
                pass
            return parts
        buf = buf[2:]
        while b"\r\n\r\n" not in buf:
            if not more():
                raise ValueError("multipart body ended inside part headers")
        head, buf = buf.split(b"\r\n\r\n", 1)
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        cur = Part(headers)


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # else every response stalls ~40 ms
    protocol_version = "HTTP/1.0"
    server_version = "relua-test-httpd"

    def log_message(self, fmt, *args):  # quiet
        pass

    def send(self, status, body=b"", ctype="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, headers=()):
        self.send(status, json.dumps(obj, sort_keys=True), "application/json", headers)

    def body_length(self):
        return int(self.headers.get("Content-Length") or 0)

    def read_body(self, keep=65536):
        sha, size, kept = hashlib.sha256(), 0, bytearray()
        for data in stream_body(self.rfile, self.body_length()):
            sha.update(data)
            size += len(data)
            if len(kept) <= keep:
                kept += data
        return size, sha.hexdigest(), (bytes(kept) if size <= keep else None)

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        with LOCK:
            STATE["counts"][path] = STATE["counts"].get(path, 0) + 1
        if path == "/echo":
            size, digest, body = self.read_body()
            self.send_json(200, {
                "method": self.command, "path": path, "query": q,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "header_lines": [[k.lower(), v] for k, v in self.headers.items()],
                "body_size": size, "body_sha256": digest,
                "body": body.decode("latin-1") if body is not None else None,
            })
        elif path.startswith("/bytes/"):
            n = int(path[len("/bytes/"):])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            delay = float(q.get("chunk_delay", "0"))
            if self.command != "HEAD":
                while n > 0:
                    chunk = PATTERN[: min(n, len(PATTERN))]
                    self.wfile.write(chunk)
                    n -= len(chunk)
                    if delay:
                        self.wfile.flush()
                        time.sleep(delay)
        elif path.startswith("/status/"):
            self.read_body()
            code = int(path[len("/status/"):])
            hdrs = [("Retry-After", q["retry_after"])] if "retry_after" in q else []
            self.send(code, "status %d" % code, headers=hdrs)
        elif path.startswith("/refuse/"):
            self.read_body()
            if self.command in ("GET", "HEAD"):
                self.send(404, "not found")
            else:
                self.send(401, "")
        elif path == "/slow":
            time.sleep(float(q.get("seconds", "1")))
            self.send(200, "slow")
        elif path.startswith("/redirect/"):
            n = int(path[len("/redirect/"):])
            self.send(302, "", headers=[("Location", "/echo" if n <= 0 else "/redirect/%d" % (n - 1))])
        elif path == "/redirect-to":
            self.send(302, "", headers=[("Location", q["url"])])
        elif path == "/basic":
            import base64
            want = "Basic " + base64.b64encode(("%s:%s" % (q.get("user"), q.get("password"))).encode()).decode()
            if self.headers.get("Authorization") == want:
                self.send_json(200, {"user": q.get("user")})
            else:
                self.send(401, "unauthorized", headers=[("WWW-Authenticate", 'Basic realm="test"')])
        elif path == "/bearer":
            if self.headers.get("Authorization") == "Bearer " + q.get("token", ""):
                self.send(200, "welcome")
            else:
                self.send(401, "bad token")
        elif path == "/truncate":
            size, send = int(q.get("size", "100")), int(q.get("send", "50"))
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(PATTERN[:send])
            self.wfile.flush()
            self.close_connection = True
        elif path == "/headers":
            self.send(200, "h", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                          ("X-Multi", "one"), ("X-Multi", "two"),
                                          ("X-Padded", " \t padded value \t "), ("X-Empty", ""),
                                          ("X-Colon", "a: b:c"), ("X-Folded", "first\r\n \t second ")])
        elif path == "/concurrent":
            with LOCK:
                STATE["in_flight"] += 1
                STATE["max_concurrent"] = max(STATE["max_concurrent"], STATE["in_flight"])
            try:
                time.sleep(float(q.get("delay", "0.2")))
            finally:
                with LOCK:
                    STATE["in_flight"] -= 1
            self.send(200, "ok " + q.get("i", ""))
        elif path == "/flaky":
            self.read_body()
            key = q.get("key", "")
            with LOCK:
                seen = STATE["flaky"].get(key, 0)
                STATE["flaky"][key] = seen + 1
            if seen < int(q.get("fail", "1")):
                hdrs = [("Retry-After", q["retry_after"])] if "retry_after" in q else []
                self.send(int(q.get("status", "503")), "try again", headers=hdrs)
            else:
                self.send(200, "ok after %d" % seen)
        elif path == "/upload":
            ctype = self.headers.get("Content-Type", "")
            if not ctype.startswith("multipart/form-data") or "boundary=" not in ctype:
                self.read_body()
                self.send(400, "not multipart")
                return
            boundary = ctype.split("boundary=", 1)[1].strip().strip('"').encode()
            try:
                parts = parse_multipart(self.rfile, self.body_length(), boundary)
            except ValueError as e:
                self.send(400, str(e))
                return
            self.send_json(200, {"parts": parts})
        elif path == "/stats":
            with LOCK:
                self.send_json(200, {"max_concurrent": STATE["max_concurrent"],
                                     "in_flight": STATE["in_flight"], "counts": STATE["counts"]})
        elif path == "/stats/reset":
            with LOCK:
                STATE.update(in_flight=0, max_concurrent=0, counts={}, flaky={})
            self.send(200, "reset")
        else:
            self.send(404, "not found: " + path)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--parent", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--log", help="send stdout and stderr to this file")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args()
    if a.log:
        fd = os.open(a.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    srv = Server(("127.0.0.1", 0), Handler)
    if a.cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port = srv.server_address[1]
    serverlib.write_port(a.port_file, port)
    print(port, flush=True)
    serverlib.watchdog(a.max_seconds, a.parent)
    srv.serve_forever()


if __name__ == "__main__":
    main()
