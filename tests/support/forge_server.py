#!/usr/bin/env python3
"""A small forge for relua's tests: the subset of GitHub's REST API that relua.forge uses,
with the paths, status codes, JSON fields and error shapes GitHub documents
(docs.github.com/en/rest), and a Gitea mode (--gitea) for where Gitea differs.

GitHub (API root /):
  GET    /user                                         the token's user (401 Bad credentials)
  GET    /repos/O/R/releases                           list (drafts included for writers)
  GET    /repos/O/R/releases/tags/TAG                  published releases only (404 for drafts)
  POST   /repos/O/R/releases                           201; 422 Validation Failed
                                                       {resource: Release, code: already_exists, field: tag_name}
  PATCH  /repos/O/R/releases/ID                        200 (e.g. {"draft": false})
  GET    /repos/O/R/releases/ID/assets                 list of assets (digest "sha256:HEX")
  POST   /repos/O/R/releases/ID/assets?name=N          the upload (upload_url's path), raw body;
                                                       201; 422 {resource: ReleaseAsset, code: already_exists, field: name}
  GET    /repos/O/R/releases/assets/ID                 JSON, or with Accept: application/octet-stream
                                                       a 302 to /download/O/R/TAG/NAME
  DELETE /repos/O/R/releases/assets/ID                 204
  GET    /repos/O/R/pulls?head=O:BRANCH&base=B&state=open
  POST   /repos/O/R/pulls                              201; 422 {resource: PullRequest, code: custom,
                                                       message: "A pull request already exists for O:BRANCH."}
  PATCH  /repos/O/R/pulls/N                            {"state": "closed"}
  GET    /repos/O/R/commits/REF/status                 combined status
  GET    /repos/O/R/commits/REF/check-runs             check runs
  DELETE /repos/O/R/git/refs/REF                       204; 422 "Reference does not exist"
Gitea (--gitea, API root /api/v1): a duplicate release is 409 Conflict; assets are uploaded as
multipart/form-data (field "attachment") and carry no digest; an existing pull request is 409;
there are no check runs (404); the token comes as "token T" or "Bearer T".

For the tests:
  POST /_setup   {"repo": "o/r", "statuses": {SHA: [...]}, "check_runs": {SHA: [...]}, "refs": [...]}
  POST /_fail    {"prefix": "/repos/", "method": "POST", "count": 1, "query": "state=all" (a text the
                  query string must hold; optional), and one of:
                  "status": 503 (+ "retry_after"; "echo_auth": true quotes the request's
                  Authorization header in the message, as some servers and proxies do),
                  "kind": "primary_rate" | "secondary_rate",
                  "action": "reset_mid_upload" (read part of an upload, drop the connection; with
                  "starter": true an incomplete asset is left behind, as GitHub can)}
  GET  /_stats   {"requests": n, "uploads": n, "log": ["METHOD PATH STATUS", ...]}
Prints "listening on http://127.0.0.1:PORT"; exits when its parent dies or after --lifetime.
"""
import argparse
import hashlib
import http.server
import json
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

import serverlib

DOCS = "https://docs.github.com/rest"


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class State:
    def __init__(self):
        self.lock = threading.RLock()  # send() logs under it, also from inside a locked section
        self.repos = {}
        self.next_id = 1
        self.requests = 0
        self.uploads = 0
        self.log = []
        self.faults = []

    def repo(self, full):
        r = self.repos.get(full.lower())
        if r is None:
            r = {"full": full, "releases": [], "assets": {}, "pulls": [], "statuses": {},
                 "check_runs": {}, "refs": set()}
            self.repos[full.lower()] = r
        return r

    def new_id(self):
        i = self.next_id
        self.next_id += 1
        return i


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    @property
    def st(self):
        return self.server.state

    # -- plumbing -------------------------------------------------------------
    def origin(self):
        """http://HOST:PORT as the client addressed it (its Host header, as a forge behind a
        proxy builds its URLs), else the listening address."""
        host = self.headers.get("Host") or ""
        if not re.match(r"^127\.0\.0\.1:\d+$", host):
            host = "127.0.0.1:%d" % self.server.server_address[1]
        return "http://" + host

    def base(self):
        return self.origin() + self.server.root

    def send(self, status, obj=None, headers=None, raw=None, ctype="application/json; charset=utf-8"):
        body = raw if raw is not None else (b"" if obj is None else json.dumps(obj).encode())
        self.send_response(status)
        if body or status not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        hdrs = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999"}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        with self.st.lock:
            self.st.log.append("%s %s %d" % (self.command, self.path.split("?")[0], status))

    def error(self, status, message, errors=None, headers=None):
        obj = {"message": message, "documentation_url": DOCS}
        if errors is not None:
            obj["errors"] = errors
        if self.server.gitea:
            obj = {"message": message, "url": self.base() + "/swagger"}
        return self.send(status, obj, headers)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_body(self):
        try:
            return json.loads(self.body() or b"{}")
        except ValueError:
            return None

    def authorized(self):
        a = self.headers.get("Authorization") or ""
        m = re.match(r"^(?:Bearer|token)\s+(\S+)$", a)
        return m is not None and m.group(1) == self.server.token

    def fault(self):
        with self.st.lock:
            self.st.requests += 1
            for f in self.st.faults:
                if f["count"] > 0 and self.path.startswith(f.get("prefix", "/")) and \
                        f.get("method", self.command) == self.command and \
                        f.get("query", "") in urllib.parse.urlsplit(self.path).query:
                    f["count"] -= 1
                    return f
        return None

    def reset(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        with self.st.lock:
            self.st.log.append("%s %s reset" % (self.command, self.path.split("?")[0]))

    def do_GET(self): self.dispatch()
    def do_POST(self): self.dispatch()
    def do_PATCH(self): self.dispatch()
    def do_DELETE(self): self.dispatch()

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        if path == "/_stats":
            with self.st.lock:
                obj = {"requests": self.st.requests, "uploads": self.st.uploads, "log": list(self.st.log)}
            return self.send(200, obj)
        if path == "/_fail":
            spec = self.json_body()
            spec.setdefault("count", 1)
            with self.st.lock:
                self.st.faults.append(spec)
            return self.send(200, {"ok": True})
        if path == "/_setup":
            return self.setup_repo(self.json_body())
        if path.startswith("/download/"):
            return self.download(path)
        f = self.fault()
        if f:
            return self.inject(f)
        root = self.server.root
        if not path.startswith(root + "/"):
            return self.error(404, "Not Found")
        path = path[len(root):]
        if not self.authorized():
            return self.error(401, "Bad credentials")
        if path == "/user":
            return self.send(200, {"login": "relua-bot", "id": 1, "type": "User"})
        m = re.match(r"^/repos/([^/]+)/([^/]+)(/.*)$", path)
        if not m:
            return self.error(404, "Not Found")
        with self.st.lock:
            repo = self.st.repo(m.group(1) + "/" + m.group(2))
        return self.route(repo, m.group(3), query)

    def inject(self, f):
        if f.get("action") == "reset_mid_upload":
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(min(n, max(1, n // 2)))
            with self.st.lock:
                self.st.uploads += 1
            if f.get("starter"):
                m = re.search(r"/releases/(\d+)/assets", self.path)
                name = (urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("name") or ["?"])[0]
                with self.st.lock:
                    for repo in self.st.repos.values():
                        for rel in repo["releases"]:
                            if m and rel["id"] == int(m.group(1)):
                                self.store_asset(repo, rel, name, b"", "starter")
            return self.reset()
        kind = f.get("kind")
        if kind == "primary_rate":
            reset = int(time.time()) + int(f.get("reset_in", 1))
            return self.error(403, "API rate limit exceeded for user ID 1.",
                              headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
        if kind == "secondary_rate":
            return self.error(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                              headers={"Retry-After": str(f.get("retry_after", 1))})
        headers = {}
        if f.get("retry_after") is not None:
            headers["Retry-After"] = str(f["retry_after"])
        self.body()
        text = "injected failure"
        if f.get("echo_auth"):
            text += ": Authorization: %s" % (self.headers.get("Authorization") or "(none)")
        return self.error(int(f.get("status", 503)), text, headers=headers)

    def setup_repo(self, spec):
        with self.st.lock:
            repo = self.st.repo(spec["repo"])
            for sha, lst in (spec.get("statuses") or {}).items():
                repo["statuses"][sha] = lst
            for sha, lst in (spec.get("check_runs") or {}).items():
                repo["check_runs"][sha] = lst
            for ref in spec.get("refs") or []:
                repo["refs"].add(ref)
        return self.send(200, {"ok": True})

    # -- objects --------------------------------------------------------------
    def release_json(self, repo, rel):
        full = repo["full"]
        obj = dict(rel)
        obj["url"] = "%s/repos/%s/releases/%d" % (self.base(), full, rel["id"])
        obj["assets_url"] = obj["url"] + "/assets"
        obj["upload_url"] = obj["url"] + "/assets{?name,label}"
        obj["html_url"] = "%s/%s/releases/tag/%s" % (self.base(), full, rel["tag_name"])
        obj["assets"] = [self.asset_json(repo, rel, a) for a in self.assets_of(repo, rel)]
        return obj

    def assets_of(self, repo, rel):
        return [a for a in repo["assets"].values() if a["release_id"] == rel["id"]]

    def asset_json(self, repo, rel, a):
        obj = {"id": a["id"], "name": a["name"], "label": a.get("label") or "", "state": a["state"],
               "content_type": a["content_type"], "size": len(a["data"]), "download_count": 0,
               "created_at": a["created_at"], "updated_at": a["created_at"],
               "url": "%s/repos/%s/releases/assets/%d" % (self.base(), repo["full"], a["id"]),
               "browser_download_url": "%s/download/%s/%s/%s" % (
                   self.origin(), repo["full"], rel["tag_name"], a["name"])}
        if not self.server.gitea and not self.server.no_digest:
            obj["digest"] = None if a["state"] != "uploaded" else "sha256:" + hashlib.sha256(a["data"]).hexdigest()
        return obj

    def find_release(self, repo, rid):
        for rel in repo["releases"]:
            if rel["id"] == rid:
                return rel
        return None

    def store_asset(self, repo, rel, name, data, state="uploaded", ctype="application/octet-stream"):
        a = {"id": self.st.new_id(), "name": name, "data": data, "state": state, "release_id": rel["id"],
             "content_type": ctype, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        repo["assets"][a["id"]] = a
        return a

    # -- routes ---------------------------------------------------------------
    def route(self, repo, rest, query):
        c = self.command
        if rest == "/releases" and c == "GET":
            with self.st.lock:
                out = [self.release_json(repo, r) for r in reversed(repo["releases"])]
            return self.send(200, out)
        if rest == "/releases" and c == "POST":
            return self.create_release(repo, self.json_body() or {})
        m = re.match(r"^/releases/tags/(.+)$", rest)
        if m and c == "GET":
            tag = urllib.parse.unquote(m.group(1))
            with self.st.lock:
                for r in repo["releases"]:
                    if r["tag_name"] == tag and not r["draft"]:
                        return self.send(200, self.release_json(repo, r))
            return self.error(404, "Not Found")
        m = re.match(r"^/releases/(\d+)$", rest)
        if m and c == "PATCH":
            spec = self.json_body() or {}
            with self.st.lock:
                rel = self.find_release(repo, int(m.group(1)))
                if rel is None:
                    return self.error(404, "Not Found")
                for k in ("name", "body", "draft", "prerelease", "tag_name"):
                    if k in spec:
                        rel[k] = spec[k]
                return self.send(200, self.release_json(repo, rel))
        m = re.match(r"^/releases/(\d+)/assets$", rest)
        if m and c == "GET":
            with self.st.lock:
                rel = self.find_release(repo, int(m.group(1)))
                if rel is None:
                    return self.error(404, "Not Found")
                return self.send(200, [self.asset_json(repo, rel, a) for a in self.assets_of(repo, rel)])
        if m and c == "POST":
            return self.upload_asset(repo, int(m.group(1)), query)
        m = re.match(r"^/releases/assets/(\d+)$", rest)
        if m:
            return self.asset(repo, int(m.group(1)))
        if rest == "/pulls" and c == "GET":
            return self.list_pulls(repo, query)
        if rest == "/pulls" and c == "POST":
            return self.create_pull(repo, self.json_body() or {})
        m = re.match(r"^/pulls/(\d+)$", rest)
        if m and c == "PATCH":
            spec = self.json_body() or {}
            with self.st.lock:
                for p in repo["pulls"]:
                    if p["number"] == int(m.group(1)):
                        if spec.get("state") in ("open", "closed"):
                            p["state"] = spec["state"]
                        return self.send(200, p)
            return self.error(404, "Not Found")
        m = re.match(r"^/commits/([^/]+)/status$", rest)
        if m and c == "GET":
            return self.combined_status(repo, m.group(1))
        m = re.match(r"^/commits/([^/]+)/check-runs$", rest)
        if m and c == "GET":
            if self.server.gitea:
                return self.error(404, "Not Found")
            runs = repo["check_runs"].get(m.group(1), [])
            return self.send(200, {"total_count": len(runs), "check_runs": runs})
        m = re.match(r"^/git/refs/(.+)$", rest)
        if m and c == "DELETE":
            ref = urllib.parse.unquote(m.group(1))
            with self.st.lock:
                if ref in repo["refs"]:
                    repo["refs"].discard(ref)
                    return self.send(204)
            return self.error(422, "Reference does not exist")
        return self.error(404, "Not Found")

    def create_release(self, repo, spec):
        tag = spec.get("tag_name")
        if not tag:
            return self.error(422, "Validation Failed",
                              [{"resource": "Release", "code": "missing_field", "field": "tag_name"}])
        with self.st.lock:
            for r in repo["releases"]:
                if r["tag_name"] == tag:
                    if self.server.gitea:
                        return self.error(409, "Release is has no Tag")  # Gitea: 409 Conflict
                    return self.error(422, "Validation Failed",
                                      [{"resource": "Release", "code": "already_exists", "field": "tag_name"}])
            rel = {"id": self.st.new_id(), "tag_name": tag, "target_commitish": spec.get("target_commitish") or "main",
                   "name": spec.get("name") or tag, "body": spec.get("body") or "",
                   "draft": bool(spec.get("draft")), "prerelease": bool(spec.get("prerelease")),
                   "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            repo["releases"].append(rel)
            return self.send(201, self.release_json(repo, rel))

    def upload_asset(self, repo, rid, query):
        name = (query.get("name") or [None])[0]
        with self.st.lock:
            self.st.uploads += 1
        data = self.body()
        ctype = self.headers.get("Content-Type") or ""
        if self.server.gitea:
            m = re.search(r'boundary="?([^";]+)"?', ctype)
            if not m:
                return self.error(400, "expected multipart/form-data")
            parts = data.split(b"--" + m.group(1).encode())
            data = None
            for p in parts:
                head, _, content = p.partition(b"\r\n\r\n")
                if b'name="attachment"' in head:
                    data = content[:-2] if content.endswith(b"\r\n") else content
                    fn = re.search(rb'filename="([^"]*)"', head)
                    name = name or (fn.group(1).decode() if fn else None)
            if data is None:
                return self.error(400, "no attachment")
        if not name:
            return self.error(422, "Validation Failed", [{"resource": "ReleaseAsset", "code": "missing_field", "field": "name"}])
        with self.st.lock:
            rel = self.find_release(repo, rid)
            if rel is None:
                return self.error(404, "Not Found")
            for a in self.assets_of(repo, rel):
                if a["name"] == name:
                    return self.error(422, "Validation Failed",
                                      [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}])
            a = self.store_asset(repo, rel, name, data, ctype=ctype or "application/octet-stream")
            return self.send(201, self.asset_json(repo, rel, a))

    def asset(self, repo, aid):
        with self.st.lock:
            a = repo["assets"].get(aid)
            rel = a and self.find_release(repo, a["release_id"])
            if a is None:
                return self.error(404, "Not Found")
            if self.command == "DELETE":
                del repo["assets"][aid]
                return self.send(204)
            if "application/octet-stream" in (self.headers.get("Accept") or ""):
                loc = "%s/download/%s/%s/%s" % (self.origin(), repo["full"], rel["tag_name"], a["name"])
                return self.send(302, None, {"Location": loc})
            return self.send(200, self.asset_json(repo, rel, a))

    def download(self, path):
        f = self.fault()
        if f:
            return self.inject(f)
        parts = urllib.parse.unquote(path).split("/")  # /download/o/r/tag/name
        if len(parts) < 6:
            return self.send(404, raw=b"Not Found", ctype="text/plain")
        with self.st.lock:
            repo = self.st.repos.get((parts[2] + "/" + parts[3]).lower())
            for a in (repo or {"assets": {}})["assets"].values():
                rel = self.find_release(repo, a["release_id"])
                if rel["tag_name"] == parts[4] and a["name"] == "/".join(parts[5:]):
                    return self.send(200, raw=a["data"], ctype="application/octet-stream")
        return self.send(404, raw=b"Not Found", ctype="text/plain")

    def list_pulls(self, repo, query):
        head = (query.get("head") or [None])[0]
        base = (query.get("base") or [None])[0]
        state = (query.get("state") or ["open"])[0]
        owner = repo["full"].split("/")[0]
        out = []
        with self.st.lock:
            for p in repo["pulls"]:
                if head and (owner + ":" + p["head"]["ref"]) != head and p["head"]["ref"] != head:
                    continue
                if base and p["base"]["ref"] != base:
                    continue
                if state != "all" and p["state"] != state:
                    continue
                out.append(p)
        return self.send(200, out)

    def create_pull(self, repo, spec):
        for k in ("head", "base"):
            if not spec.get(k):
                return self.error(422, "Validation Failed", [{"resource": "PullRequest", "code": "missing_field", "field": k}])
        owner = repo["full"].split("/")[0]
        head = spec["head"].split(":")[-1]
        with self.st.lock:
            for p in repo["pulls"]:
                if p["head"]["ref"] == head and p["base"]["ref"] == spec["base"] and p["state"] == "open":
                    if self.server.gitea:
                        return self.error(409, "pull request already exists for these targets")
                    return self.error(422, "Validation Failed",
                                      [{"resource": "PullRequest", "code": "custom",
                                        "message": "A pull request already exists for %s:%s." % (owner, head)}])
            n = len(repo["pulls"]) + 1
            p = {"number": n, "id": self.st.new_id(), "state": "open", "title": spec.get("title") or "",
                 "body": spec.get("body") or "", "head": {"ref": head, "label": owner + ":" + head},
                 "base": {"ref": spec["base"]},
                 "html_url": "%s/%s/pull/%d" % (self.base(), repo["full"], n)}
            repo["pulls"].append(p)
            return self.send(201, p)

    def combined_status(self, repo, ref):
        sts = repo["statuses"].get(ref, [])
        states = [s["state"] for s in sts]
        if any(s in ("error", "failure") for s in states):
            state = "failure"
        elif not states or any(s == "pending" for s in states):
            state = "pending"
        else:
            state = "success"
        return self.send(200, {"state": state, "statuses": sts, "sha": ref, "total_count": len(sts)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file")
    ap.add_argument("--token", default="relua-forge-token")
    ap.add_argument("--gitea", action="store_true")
    ap.add_argument("--no-digest", action="store_true", help="assets carry no digest (older GitHub Enterprise)")
    ap.add_argument("--lifetime", type=float, default=3600)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = State()
    srv.token = args.token
    srv.gitea = args.gitea
    srv.no_digest = args.no_digest
    srv.root = "/api/v1" if args.gitea else ""
    serverlib.serve(srv, args.port_file, args.lifetime)


if __name__ == "__main__":
    sys.exit(main())
