#!/usr/bin/env python3
"""A small PyPI-compatible index for relua's tests (no PyPI server is packaged here).

Speaks what uploaders and installers use:
  POST /legacy/                 legacy upload API (multipart, `:action=file_upload`, Basic auth)
  GET  /simple/, /simple/NAME/  PEP 503 HTML, or PEP 691 JSON when the Accept header asks
                                for application/vnd.pypi.simple.v1+json (or ?format=)
  GET  /pypi/NAME/json, /pypi/NAME/VERSION/json
  GET  /files/FILENAME          downloads (HEAD too)
Project names are normalised per PEP 503; a non-normalised /simple/ URL redirects.
A read of /simple/ or /pypi/ is answered from a cache the next time (as pypi.org's CDN
does: X-Cache: HIT, else MISS) until an upload changes the index; injected faults and
/_stats see every request.

A duplicate filename is refused: by default with 409 Conflict (pypiserver's answer); with
--warehouse as pypi.org does (an identical file: 200, different bytes: 400 "File already
exists"). Uploads stream to disk (runs of zero bytes become holes), so a 1 GB upload costs
neither memory nor disk.

For the tests:
  GET  /_stats                  {"requests": n, "connections": n, "uploads": n (upload attempts), "stored": n,
                                 "log": ["METHOD PATH STATUS", ...]}
  POST /_fail                   JSON {"status": 503, "count": 1, "prefix": "/simple/",
                                 "retry_after": 0}: the next `count` requests whose path
                                 starts with prefix get that status (after "skip" of
                                 them went through); with "action":
                                 "reset_before" an upload's connection is reset unread,
                                 with "reset_after" the upload is stored, then the
                                 connection is reset instead of answering, with
                                 "exit" the index goes down: the process exits at once,
                                 answering nothing (connections are then refused); with
                                 "echo_auth": true the answer's body quotes the request's
                                 Authorization header, as some servers and proxies do
Files and their records live in --storage: an index restarted on the same storage (and
--port) serves what it held.
Prints "listening on http://127.0.0.1:PORT" once bound (and writes PORT to --port-file).
Exits when its parent dies or after --lifetime seconds.
"""
import argparse
import base64
import email.utils
import hashlib
import html
import http.server
import json
import os
import re
import socket
import socketserver
import struct
import sys
import tempfile
import threading
import time
import urllib.parse

import serverlib

CHUNK = 1 << 20
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"


def normalize(name):
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(v):
    """A PEP 440-ish sort key: release numbers, then dev < pre < final < post."""
    m = re.match(r"^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|rc|alpha|beta|c)[-_.]?(\d*))?"
                 r"(?:[-_.]?(post|rev|r)[-_.]?(\d*))?(?:[-_.]?(dev)[-_.]?(\d*))?", v.lower())
    if not m:
        return ((), 0, 0, 0, 0, v)
    rel = tuple(int(x) for x in m.group(1).split("."))
    while rel and rel[-1] == 0:
        rel = rel[:-1]
    pre = {"a": 1, "alpha": 1, "b": 2, "beta": 2, "c": 3, "rc": 3}.get(m.group(2) or "", 4)
    pren = int(m.group(3) or 0)
    post = int(m.group(5) or 0) if m.group(4) else -1
    dev = 0 if m.group(6) else 1
    if m.group(6) and not m.group(2) and not m.group(4):
        pre = 0
    return (rel, pre, pren, post, dev, v)


class Index:
    """Projects, their files and the counters, behind one lock; files live on disk."""

    def __init__(self, storage):
        self.storage = storage
        self.files_dir = os.path.join(storage, "files")
        self.tmp_dir = os.path.join(storage, "tmp")
        os.makedirs(self.files_dir, exist_ok=True)
        os.makedirs(self.tmp_dir, exist_ok=True)
        self.lock = threading.RLock()
        self.projects = {}   # normalized -> {"name": display, "files": {filename: record}}
        self.by_filename = {}
        self.requests = 0
        self.connections = 0
        self.uploads = 0
        self.stored = 0
        self.log = []
        self.faults = []     # [{"status", "count", "prefix", "retry_after"}]
        # The answers to reads, whole, as a CDN keeps pypi.org's pages: (target, Accept) ->
        # (status, status line and Server, the other header lines, body); the Date is added
        # when sent. Emptied by every change (the generation moves on).
        self.cache = {}
        self.generation = 0
        # The records of the files stored, one JSON line each: a restart on the same
        # storage serves what the index held when it went down.
        self.records = os.path.join(storage, "records.jsonl")
        if os.path.exists(self.records):
            with open(self.records) as f:
                for line in f:
                    if line.strip():
                        self.add(json.loads(line))

    def add(self, record):
        self.generation += 1
        self.cache.clear()
        key = normalize(record["name"])
        proj = self.projects.setdefault(key, {"name": record["name"], "files": {}})
        proj["files"][record["filename"]] = record
        self.by_filename[record["filename"]] = record
        self.stored += 1

    def keep(self, key, generation, answer):
        """Keeps a read's answer unless the index changed since the read began."""
        with self.lock:
            if generation == self.generation and not self.faults_pending():
                if len(self.cache) >= 10000:
                    self.cache.clear()
                self.cache[key] = answer

    def faults_pending(self):
        return any(f["count"] > 0 for f in self.faults)

    def versions(self, key):
        proj = self.projects[key]
        return sorted({f["version"] for f in proj["files"].values()}, key=version_key)


_date = [0, b""]


def http_date():
    """The Date header line, made once a second."""
    now = int(time.time())
    if now != _date[0]:
        _date[1] = ("Date: %s\r\n" % email.utils.formatdate(now, usegmt=True)).encode("latin-1")
        _date[0] = now
    return _date[1]


def wheel_or_sdist_name(filename):
    """(name, version) encoded in a distribution's filename, or None."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        if len(parts) in (5, 6):
            return parts[0], parts[1]
        return None
    for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.endswith(ext):
            stem = filename[: -len(ext)]
            if "-" in stem:
                name, version = stem.rsplit("-", 1)
                return name, version
    return None


class FileSink:
    """Writes an uploaded file to a temp file, hashing as it goes; zero runs become holes."""

    def __init__(self, directory):
        fd, self.path = tempfile.mkstemp(dir=directory, prefix="upload-")
        self.f = os.fdopen(fd, "wb")
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.size = 0

    def write(self, data):
        if not data:
            return
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)
        if data.count(0) == len(data):
            self.f.seek(len(data), os.SEEK_CUR)
        else:
            self.f.write(data)

    def finish(self):
        self.f.truncate(self.size)
        self.f.close()

    def discard(self):
        try:
            self.f.close()
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass


class BodyReader:
    """The request body, from Content-Length or chunked transfer encoding."""

    def __init__(self, rfile, headers):
        self.rfile = rfile
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        self.left = int(headers.get("Content-Length") or 0)
        self.chunk_left = 0
        self.done = False

    def read(self, n):
        if self.done:
            return b""
        if not self.chunked:
            if self.left <= 0:
                self.done = True
                return b""
            data = self.rfile.read(min(n, self.left))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            self.left -= len(data)
            return data
        if self.chunk_left == 0:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers
                    t = self.rfile.readline(1024)
                    if t in (b"\r\n", b"\n", b""):
                        break
                self.done = True
                return b""
            self.chunk_left = size
        data = self.rfile.read(min(n, self.chunk_left))
        if not data:
            raise ConnectionError("client closed the connection mid-body")
        self.chunk_left -= len(data)
        if self.chunk_left == 0:
            self.rfile.readline(16)  # CRLF after the chunk
        return data

    def drain(self):
        while self.read(CHUNK):
            pass


class BadRequest(Exception):
    pass


def parse_multipart(reader, boundary, tmp_dir, max_field=1 << 20):
    """Streams a multipart/form-data body: fields -> {name: [str]}, files -> {name: sink}."""
    delim = b"--" + boundary
    sep = b"\r\n" + delim
    buf = b""
    fields, files = {}, {}

    def fill():
        nonlocal buf
        data = reader.read(CHUNK)
        if not data:
            return False
        buf += data
        return True

    # Preamble, then the first delimiter.
    while True:
        i = buf.find(delim)
        if i >= 0:
            buf = buf[i + len(delim):]
            break
        if len(buf) > len(delim):
            buf = buf[-len(delim):]
        if not fill():
            raise BadRequest("multipart body without its first boundary")
    try:
        while True:
            while len(buf) < 2 and fill():
                pass
            if buf.startswith(b"--"):
                break  # the closing delimiter
            if not buf.startswith(b"\r\n"):
                raise BadRequest("malformed multipart boundary line")
            buf = buf[2:]
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    break
                if len(buf) > 16384 or not fill():
                    raise BadRequest("multipart part headers too long or truncated")
            head, buf = buf[:end].decode("utf-8", "replace"), buf[end + 4:]
            disp = ""
            for line in head.split("\r\n"):
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-disposition":
                    disp = v
            m = re.search(r'(?:^|;)\s*name="([^"]*)"', disp)
            if not m:
                raise BadRequest("multipart part without a name")
            name = m.group(1)
            fm = re.search(r'(?:^|;)\s*filename="([^"]*)"', disp)
            sink = None
            value = bytearray()
            if fm:
                sink = FileSink(tmp_dir)
                sink.filename = os.path.basename(fm.group(1))
                files[name] = sink
            while True:
                i = buf.find(sep)
                if i >= 0:
                    data, buf = buf[:i], buf[i + len(sep):]
                    if sink:
                        sink.write(data)
                    else:
                        value += data
                    break
                keep = len(sep)
                if len(buf) > keep:
                    data, buf = buf[:-keep], buf[-keep:]
                    if sink:
                        sink.write(data)
                    else:
                        value += data
                        if len(value) > max_field:
                            raise BadRequest("form field %r too large" % name)
                if not fill():
                    raise BadRequest("multipart body truncated")
            if sink:
                sink.finish()
            else:
                fields.setdefault(name, []).append(value.decode("utf-8", "replace"))
        reader.drain()
    except BaseException:
        for s in files.values():
            s.discard()
        raise
    return fields, files


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "relua-test-pypi/1"

    # -- plumbing --------------------------------------------------------------------
    @property
    def index(self):
        return self.server.index

    def log_message(self, fmt, *args):  # quiet: the log is in /_stats
        pass

    def reset(self):
        """Drops the connection with a TCP reset (SO_LINGER 0), answering nothing."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # it holds a reference that would keep the socket open
            self.connection.close()
        except OSError:
            pass

    def setup(self):
        super().setup()
        with self.index.lock:
            self.index.connections += 1

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def send(self, status, body=b"", ctype="text/plain; charset=utf-8", headers=None,
             reason=None):
        if getattr(self, "reset_instead", False):
            self.reset_instead = False
            self.record(-status)
            return self.reset()
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.record(status)  # before answering: a client that reads /_stats next sees it
        lines = ["Content-Type: %s" % ctype, "Content-Length: %d" % len(body)]
        lines += ["%s: %s" % kv for kv in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("%s %d %s\r\nServer: %s\r\n" % (self.protocol_version, status,
                reason or self.responses.get(status, ("",))[0], self.version_string())).encode("latin-1")
        key = getattr(self, "cache_key", None)
        if key is not None:
            lines.append("X-Cache: MISS")  # as pypi.org's CDN says
        rest = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if key is not None and not self.close_connection:
            hit = rest.replace(b"X-Cache: MISS\r\n", b"X-Cache: HIT\r\n")
            self.index.keep(key, self.cache_generation, (status, head, hit, body))
        self.answer(head, rest, b"" if self.command == "HEAD" else body)

    def answer(self, head, rest, body):
        """Writes an answer in one piece (one packet for a small one), with the Date."""
        self.wfile.write(b"".join((head, http_date(), rest, body)))

    # -- the fast read path ------------------------------------------------------------
    def parse_request(self):
        self.cache_key = None
        if self.cached_get():
            return False  # answered: handle() goes on to the connection's next request
        return super().parse_request()

    def cached_get(self):
        """Answers a GET from the cache when its whole head is already read and the index
        holds its answer; else reads nothing and lets the usual path parse the request."""
        line = self.raw_requestline
        if not (line.startswith(b"GET /") and line.endswith(b" HTTP/1.1\r\n")):
            return False
        index = self.index
        if not index.cache or index.faults_pending():
            return False
        buf = self.rfile.peek(16384)
        if buf.startswith(b"\r\n"):
            fields, size = b"", 2
        else:
            end = buf.find(b"\r\n\r\n")
            if end == -1:
                return False
            fields, size = buf[:end], end + 4
        accept = b""
        for h in fields.split(b"\r\n") if fields else ():
            name, sep, value = h.partition(b":")
            name = name.lower()
            if not sep or name in (b"connection", b"expect", b"content-length", b"transfer-encoding"):
                return False
            if name == b"accept" and not accept:
                accept = value.strip()
        target = line[4:-11]
        hit = index.cache.get((target, accept))
        if hit is None:
            return False
        self.rfile.read(size)
        status, head, rest, body = hit
        self.command, self.path, self.request_version = "GET", target.decode("latin-1"), "HTTP/1.1"
        self.close_connection = False
        with index.lock:
            index.requests += 1
            index.log.append("GET %s %d" % (self.path, status))
        self.answer(head, rest, body)
        return True

    def send_json(self, status, obj, ctype="application/json"):
        self.send(status, json.dumps(obj, indent=None), ctype)

    def record(self, status):
        with self.index.lock:
            self.index.log.append("%s %s %d" % (self.command, self.path, status))

    def authorized(self):
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except Exception:
            return False
        return user == self.server.user and password == self.server.password

    def fault(self):
        with self.index.lock:
            self.index.requests += 1
            for f in self.index.faults:
                if f["count"] > 0 and self.path.startswith(f.get("prefix", "/")):
                    if f.get("skip", 0) > 0:  # let this many matching requests through first
                        f["skip"] -= 1
                        continue
                    f["count"] -= 1
                    return f
        return None

    def handle_expect_100(self):
        # Refuse a bad upload before its body is sent.
        if self.command == "POST" and self.path.split("?")[0] in ("/legacy/", "/legacy"):
            if not self.authorized():
                self.close_connection = True
                with self.index.lock:
                    self.index.requests += 1
                    self.index.uploads += 1
                self.send(403, "Invalid or non-existent authentication information.",
                          reason="Invalid or non-existent authentication information.")
                return False
        return super().handle_expect_100()

    # -- dispatch --------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        generation = self.index.generation
        f = self.fault()
        if f:
            return self.fail(f)
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query)
        if self.command == "GET" and (path.startswith("/simple") or path.startswith("/pypi/")):
            self.cache_key = (self.path.encode("latin-1"), (self.headers.get("Accept") or "").strip().encode("latin-1"))
            self.cache_generation = generation
        if path == "/_stats":
            with self.index.lock:
                obj = {"requests": self.index.requests, "connections": self.index.connections,
                       "uploads": self.index.uploads,
                       "stored": self.index.stored, "log": list(self.index.log)}
            return self.send_json(200, obj)
        if self.server.no_simple and path.startswith("/simple"):
            return self.send(404, "Not Found")
        if path in ("/simple", "/simple/"):
            return self.simple_root(query)
        m = re.match(r"^/simple/([^/]+)/?$", path)
        if m:
            return self.simple_project(m.group(1), path.endswith("/"), query)
        m = re.match(r"^/pypi/([^/]+)/json/?$", path)
        if m:
            return self.pypi_json(m.group(1), None)
        m = re.match(r"^/pypi/([^/]+)/([^/]+)/json/?$", path)
        if m:
            return self.pypi_json(m.group(1), m.group(2))
        m = re.match(r"^/files/([^/]+)$", path)
        if m:
            return self.download(urllib.parse.unquote(m.group(1)))
        return self.send(404, "Not Found")

    def do_POST(self):
        reader = BodyReader(self.rfile, self.headers)
        f = self.fault()
        is_upload = urllib.parse.urlsplit(self.path).path in ("/legacy/", "/legacy")
        if f and is_upload and f.get("action") != "reset_after":
            with self.index.lock:
                self.index.uploads += 1  # an attempt, answered by the injected fault
        if f and f.get("action") == "reset_before":
            self.record(0)
            return self.reset()
        if f and f.get("action") == "exit":
            sys.stdout.flush()
            os._exit(0)
        if f and f.get("action") == "reset_after":
            self.reset_instead = True
        elif f:
            self.close_connection = True
            return self.fail(f)
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_fail":
            spec = json.loads(reader.read(1 << 16) or b"{}")
            reader.drain()
            spec.setdefault("status", 503)
            spec.setdefault("count", 1)
            spec.setdefault("prefix", "/")
            with self.index.lock:
                self.index.faults.append(spec)
            return self.send_json(200, {"ok": True})
        if path in ("/legacy/", "/legacy"):
            return self.upload(reader)
        self.close_connection = True
        return self.send(404, "Not Found")

    def fail(self, f):
        headers = {}
        if f.get("retry_after") is not None:
            headers["Retry-After"] = str(f["retry_after"])
        text = "injected failure %d" % int(f["status"])
        if f.get("echo_auth"):
            text += ": Authorization: %s" % (self.headers.get("Authorization") or "(none)")
        self.send(int(f["status"]), text, headers=headers)

    # -- simple API ------------------------------------------------------------------
    def wants_json(self, query):
        fmt = (query.get("format") or [""])[0]
        if fmt:
            return fmt in (JSON_V1, "application/vnd.pypi.simple.latest+json")
        best, best_q = "text/html", -1.0
        order = {JSON_V1: 3, "application/vnd.pypi.simple.latest+json": 3, HTML_V1: 2,
                 "application/vnd.pypi.simple.latest+html": 2, "text/html": 1}
        for item in (self.headers.get("Accept") or "text/html").split(","):
            parts = [p.strip() for p in item.split(";")]
            mt, q = parts[0].lower(), 1.0
            for p in parts[1:]:
                if p.startswith("q="):
                    try:
                        q = float(p[2:])
                    except ValueError:
                        q = 0.0
            if mt in order and q > 0 and (q > best_q or (q == best_q and order[mt] > order.get(best, 0))):
                best, best_q = mt, q
        return best in (JSON_V1, "application/vnd.pypi.simple.latest+json")

    def simple_root(self, query):
        with self.index.lock:
            names = sorted((k, p["name"]) for k, p in self.index.projects.items())
        if self.wants_json(query):
            return self.send_json(200, {"meta": {"api-version": "1.1"},
                                        "projects": [{"name": n} for _, n in names]}, JSON_V1)
        links = "\n".join('<a href="/simple/%s/">%s</a><br/>' % (k, html.escape(n)) for k, n in names)
        body = ('<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.1">'
                "<title>Simple index</title></head><body>\n%s\n</body></html>\n" % links)
        self.send(200, body, "text/html; charset=utf-8")

    def file_url(self, filename):
        return "/files/" + urllib.parse.quote(filename)

    def simple_project(self, raw, slash, query):
        key = normalize(urllib.parse.unquote(raw))
        if raw != key or not slash:
            q = ("?" + urllib.parse.urlsplit(self.path).query) if urllib.parse.urlsplit(self.path).query else ""
            return self.send(301, "", headers={"Location": "/simple/%s/%s" % (key, q)})
        with self.index.lock:
            proj = self.index.projects.get(key)
            if proj is None:
                return self.send(404, "Not Found")
            files = sorted(proj["files"].values(), key=lambda r: (version_key(r["version"]), r["filename"]))
            versions = self.index.versions(key)
            name = proj["name"]
        if self.wants_json(query):
            out = []
            for r in files:
                d = {"filename": r["filename"], "url": self.file_url(r["filename"]),
                     "hashes": {} if self.server.no_hashes else {"sha256": r["sha256"]}, "size": r["size"],
                     "upload-time": r["upload_time"], "yanked": False}
                if r.get("requires_python"):
                    d["requires-python"] = r["requires_python"]
                out.append(d)
            return self.send_json(200, {"meta": {"api-version": "1.1"}, "name": key,
                                        "versions": versions, "files": out}, JSON_V1)
        links = []
        for r in files:
            attr = ""
            if r.get("requires_python"):
                attr = ' data-requires-python="%s"' % html.escape(r["requires_python"])
            frag = "" if self.server.no_hashes else "#sha256=" + r["sha256"]
            links.append('<a href="%s%s"%s>%s</a><br/>' % (
                self.file_url(r["filename"]), frag, attr, html.escape(r["filename"])))
        body = ('<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.1">'
                "<title>Links for %s</title></head><body>\n<h1>Links for %s</h1>\n%s\n</body></html>\n"
                % (html.escape(name), html.escape(name), "\n".join(links)))
        self.send(200, body, "text/html; charset=utf-8")

    # -- JSON API --------------------------------------------------------------------
    def release_file(self, r):
        return {"filename": r["filename"], "url": self.file_url(r["filename"]),
                "digests": {} if self.server.no_hashes else {"sha256": r["sha256"], "md5": r["md5"]},
                "md5_digest": r["md5"],
                "packagetype": r["filetype"], "python_version": r["pyversion"],
                "requires_python": r.get("requires_python"), "size": r["size"],
                "upload_time": r["upload_time"], "upload_time_iso_8601": r["upload_time"],
                "yanked": False}

    def pypi_json(self, raw, version):
        key = normalize(urllib.parse.unquote(raw))
        with self.index.lock:
            proj = self.index.projects.get(key)
            if proj is None:
                return self.send_json(404, {"message": "Not Found"})
            versions = self.index.versions(key)
            files = list(proj["files"].values())
            name = proj["name"]
        if version is not None and version not in versions:
            return self.send_json(404, {"message": "Not Found"})
        latest = version or versions[-1]
        first = next(r for r in files if r["version"] == latest)
        info = {"name": name, "version": latest, "summary": first.get("summary") or "",
                "requires_python": first.get("requires_python"),
                "project_url": "/project/%s/" % key}
        urls = [self.release_file(r) for r in sorted(files, key=lambda r: r["filename"])
                if r["version"] == latest]
        obj = {"info": info, "urls": urls, "last_serial": len(self.index.by_filename)}
        if version is None:
            obj["releases"] = {v: [self.release_file(r) for r in sorted(files, key=lambda r: r["filename"])
                                   if r["version"] == v] for v in versions}
        self.send_json(200, obj)

    def download(self, filename):
        with self.index.lock:
            r = self.index.by_filename.get(filename)
        if r is None:
            return self.send(404, "Not Found")
        path = os.path.join(self.index.files_dir, filename)
        self.record(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(r["size"]))
        self.end_headers()
        if self.command != "HEAD":
            with open(path, "rb") as f:
                while True:
                    data = f.read(CHUNK)
                    if not data:
                        break
                    self.wfile.write(data)

    # -- upload ----------------------------------------------------------------------
    def upload(self, reader):
        with self.index.lock:
            self.index.uploads += 1
        if not self.authorized():
            self.close_connection = True
            return self.send(403, "Invalid or non-existent authentication information.",
                             reason="Invalid or non-existent authentication information.")
        ctype = self.headers.get("Content-Type") or ""
        m = re.search(r'boundary="?([^";]+)"?', ctype)
        if not ctype.startswith("multipart/form-data") or not m:
            self.close_connection = True
            return self.send(400, "Expected a multipart/form-data upload")
        try:
            fields, files = parse_multipart(reader, m.group(1).encode(), self.index.tmp_dir)
        except (BadRequest, ValueError) as e:
            self.close_connection = True
            return self.send(400, str(e), reason=str(e))
        except (ConnectionError, OSError):
            self.close_connection = True
            return  # the client went away: nothing stored
        try:
            return self.store(fields, files)
        finally:
            for s in files.values():
                s.discard()

    def bad(self, msg):
        return self.send(400, msg, reason=msg)

    def store(self, fields, files):
        def field(k):
            v = fields.get(k)
            return v[0] if v else None

        if field(":action") != "file_upload":
            return self.bad("Unsupported :action %r" % field(":action"))
        if field("protocol_version") not in (None, "1"):
            return self.bad("Unknown protocol version")
        for req in ("name", "version", "filetype"):
            if not field(req):
                return self.bad("Missing required field %r" % req)
        sink = files.get("content")
        if sink is None:
            return self.bad("Upload payload does not have a file.")
        filename = sink.filename
        if field("filetype") not in ("bdist_wheel", "sdist"):
            return self.bad("Invalid value for filetype %r" % field("filetype"))
        parsed = wheel_or_sdist_name(filename)
        if parsed is None:
            return self.bad("Invalid distribution file %r" % filename)
        fname, fversion = parsed
        if normalize(fname) != normalize(field("name")) or fversion != field("version"):
            return self.bad("Start filename for %r with %r and version %r" %
                            (filename, field("name"), field("version")))
        if (field("filetype") == "bdist_wheel") != filename.endswith(".whl"):
            return self.bad("Invalid filetype %r for %r" % (field("filetype"), filename))
        sha256 = sink.sha256.hexdigest()
        md5 = sink.md5.hexdigest()
        if field("sha256_digest") and field("sha256_digest").lower() != sha256:
            return self.bad("The digest supplied does not match a digest calculated from the uploaded file.")
        if field("md5_digest") and field("md5_digest").lower() != md5:
            return self.bad("The digest supplied does not match a digest calculated from the uploaded file.")
        with self.index.lock:
            existing = self.index.by_filename.get(filename)
            if existing is None:
                record = {"name": field("name"), "version": field("version"), "filename": filename,
                          "filetype": field("filetype"), "pyversion": field("pyversion") or "",
                          "summary": field("summary"), "requires_python": field("requires_python"),
                          "metadata_version": field("metadata_version"),
                          "sha256": sha256, "md5": md5, "size": sink.size,
                          "upload_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())}
                os.rename(sink.path, os.path.join(self.index.files_dir, filename))
                self.index.add(record)
                with open(self.index.records, "a") as f:
                    f.write(json.dumps(record) + "\n")
        if existing is not None:
            if self.server.warehouse:
                if existing["sha256"] == sha256:
                    return self.send(200, "OK")
                msg = ("File already exists ('%s', with blake2_256 hash ...). "
                       "See https://pypi.org/help/#file-name-reuse for more information." % filename)
                return self.bad(msg)
            return self.send(409, "File already exists: %s" % filename, reason="Conflict")
        return self.send(200, "OK")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--storage", help="folder for the files (default: a new temp folder)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--user", default="relua")
    ap.add_argument("--password", default="relua-test-password")
    ap.add_argument("--warehouse", action="store_true",
                    help="answer duplicates as pypi.org does (200 identical, 400 different)")
    ap.add_argument("--no-simple", action="store_true",
                    help="offer no simple API (404), only the JSON API")
    ap.add_argument("--no-hashes", action="store_true",
                    help="show no digests (a client must download a file to compare it)")
    ap.add_argument("--backlog", type=int, default=128,
                    help="listen backlog (socketserver's default is 5: a small index)")
    ap.add_argument("--lifetime", type=float, default=3600, help="exit after this many seconds")
    args = ap.parse_args()

    storage = args.storage or tempfile.mkdtemp(prefix="relua-pypi-")
    Server.request_queue_size = args.backlog
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.index = Index(storage)
    srv.user, srv.password, srv.warehouse = args.user, args.password, args.warehouse
    srv.no_simple = args.no_simple
    srv.no_hashes = args.no_hashes
    serverlib.serve(srv, args.port_file, args.lifetime)


if __name__ == "__main__":
    main()
