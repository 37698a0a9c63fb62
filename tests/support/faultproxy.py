#!/usr/bin/env python3
"""A fault-injecting TCP proxy for relua's specs. It binds 127.0.0.1 on a free port, writes
the port to --port-file (and prints it), and forwards every connection to --target, except
that the next connections can be given a fault.

usage: faultproxy.py --target HOST:PORT --port-file FILE --control DIR
                     [--parent PID] [--max-seconds N]

Faults are JSON objects, one per line, appended to DIR/faults (the proxy reads new lines at
each new connection). Each applies to the next `count` connections (default 1), in order:
  {"fault": "reset"}       read the request (head, then up to `after` bytes more, default
                           all that arrives within 0.3 s), then close with a TCP RST
  {"fault": "hang", "seconds": 30}   read and never answer; close after `seconds`
  {"fault": "delay", "seconds": 1}   wait, then forward normally
  {"fault": "status", "status": 503, "retry_after": "1"}   answer this status itself
                           (Connection: close); the origin never sees the request
  {"fault": "truncate"}    forward, but pass only the response head and half the body
                           (`bytes`: pass exactly that many response bytes, head included)
                           then close cleanly
  {"fault": "pass"}        forward normally (to skip connections)
Plus "count": N on any of them.

Request-aware faults (the publish fault matrix, tests/publish_faults_spec.lua):
  "match": "POST /legacy/"   the fault applies only to connections whose request line starts
                             with this (others pass it by); "skip": N lets the first N
                             matching connections through first
  "stage": where the fault strikes, for reset / hang / status / truncate:
    "connect"  as the connection opens: nothing is read (the request head is only peeked at)
    "upload"   in the middle of the request body (`after` bytes of it, default half)
    "answer"   after the origin received the whole request and answered: the answer is
               reset, held back (hang), replaced (status, default 502) or cut (truncate)
  A staged hang notes who ended it in "applied": "ended": "client" (relua's timeout closed
  the connection) or "proxy" (the hang ran its `seconds`).
  Without "stage" the faults keep their meanings above.
A line {"clear": true} drops the faults still pending.
With --close, every forwarded request carries "Connection: close", so each connection holds
exactly one request and "match" sees every request of a client that reuses connections.

DIR/stats.json (replaced atomically after every change):
  {"connections": N, "faults": {"reset": N, ...}, "requests": ["POST /upload HTTP/1.1", ...],
   "applied": [{"fault": "reset", "stage": "answer", "request": "POST /legacy/ HTTP/1.1"}, ...],
   "answers": [["PUT /pkg HTTP/1.1", 201], ...]}
"requests" lists the first request line seen on each connection, in order; "applied" the
faults other than "pass", in the order they struck; "answers" the origin's status for each
request it answered (forwarded, or read at the "answer" stage).
"""
import argparse
import json
import os
import re
import select
import socket
import struct
import threading
import time

import serverlib

LOCK = threading.Lock()
STATS = {"connections": 0, "faults": {}, "requests": [], "applied": [], "answers": []}
QUEUE = []          # pending faults: dicts with a remaining "count"
CONTROL = {"dir": None, "offset": 0, "close": False}
PASS = {"fault": "pass"}
TARGET = ("127.0.0.1", 0)


def write_stats():
    path = os.path.join(CONTROL["dir"], "stats.json")
    tmp = path + ".tmp.%d" % threading.get_ident()
    with open(tmp, "w") as f:
        json.dump(STATS, f, sort_keys=True)
    os.rename(tmp, path)


def read_faults():
    path = os.path.join(CONTROL["dir"], "faults")
    try:
        with open(path, "rb") as f:
            f.seek(CONTROL["offset"])
            data = f.read()
    except FileNotFoundError:
        return
    end = data.rfind(b"\n")
    if end < 0:
        return
    CONTROL["offset"] += end + 1
    for line in data[: end + 1].decode().splitlines():
        line = line.strip()
        if line:
            fault = json.loads(line)
            if fault.get("clear"):
                QUEUE.clear()
                continue
            fault["count"] = int(fault.get("count", 1))
            if fault["count"] > 0:
                QUEUE.append(fault)


def next_fault(line):
    """The fault for a connection whose request line is `line` (PASS when none applies)."""
    read_faults()
    for i, fault in enumerate(QUEUE):
        if "match" in fault and not line.startswith(fault["match"]):
            continue
        if fault.get("skip", 0) > 0:
            fault["skip"] -= 1
            return PASS
        fault["count"] -= 1
        if fault["count"] <= 0:
            QUEUE.pop(i)
        return fault
    return PASS


def peek_head(sock, timeout=5.0):
    """The request head as it arrives, without consuming it (MSG_PEEK)."""
    sock.settimeout(timeout)
    end, data = time.time() + timeout, b""
    while time.time() < end:
        try:
            got = sock.recv(65536, socket.MSG_PEEK)
        except (socket.timeout, OSError):
            break
        if not got or b"\r\n\r\n" in got:
            return got
        if len(got) == len(data):
            time.sleep(0.01)
        data = got
    return data


def content_length(head):
    for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            try:
                return int(v.strip())
            except ValueError:
                return None
    return None


def closing(head):
    """The request head with "Connection: close" (when --close), body bytes kept."""
    if not CONTROL["close"] or b"\r\n\r\n" not in head:
        return head
    hdr, _, rest = head.partition(b"\r\n\r\n")
    lines = [l for l in hdr.split(b"\r\n") if not l.lower().startswith(b"connection:")]
    return b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + rest


def read_head(sock, timeout=5.0):
    """Reads until the end of the request head; returns all bytes read."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, OSError):
        pass
    return data


def drain(sock, seconds, limit=None):
    """Reads what arrives for up to `seconds` (or until `limit` bytes); returns the count."""
    sock.settimeout(0.05)
    end, n = time.time() + seconds, 0
    while time.time() < end and (limit is None or n < limit):
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        n += len(chunk)
    return n


def pipe(src, dst, first=b"", on_first=None):
    try:
        if first:
            dst.sendall(first)
        while True:
            data = src.recv(65536)
            if not data:
                break
            if on_first:
                on_first(data)
                on_first = None
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def note_answer(line, data):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    if m:
        with LOCK:
            STATS["answers"].append([line, int(m.group(1))])
            write_stats()


def forward(client, first=b"", line=""):
    first = closing(first)
    up = socket.create_connection(TARGET, timeout=10)
    up.settimeout(None)
    client.settimeout(None)
    t = threading.Thread(target=pipe, args=(client, up, first), daemon=True)
    t.start()
    pipe(up, client, on_first=lambda data: note_answer(line, data))
    t.join(30)
    up.close()


def truncate(client, head, fault):
    up = socket.create_connection(TARGET, timeout=10)
    client.settimeout(None)
    t = threading.Thread(target=pipe, args=(client, up, closing(head)), daemon=True)
    t.start()
    up.settimeout(10)
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = up.recv(65536)
        if not chunk:
            break
        resp += chunk
    hdr, _, rest = resp.partition(b"\r\n\r\n")
    if "bytes" in fault:
        limit = int(fault["bytes"])
    else:
        length = 0
        for line in hdr.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        limit = len(hdr) + 4 + length // 2
    out = resp
    while len(out) < limit:
        try:
            chunk = up.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    client.sendall(out[:limit])
    up.close()
    client.shutdown(socket.SHUT_RDWR)


def rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def fault_answer(status):
    body = b"fault %d\n" % status
    return ("HTTP/1.1 %d Fault\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, len(body))).encode() + body


def finish(client, data=b""):
    """Sends data (if any), then closes cleanly: what the client sent meanwhile is drained
    first, so the close is a FIN, not a RST."""
    if data:
        client.sendall(data)
    try:
        client.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    drain(client, 1)


def hold(client, seconds, entry):
    """Holds a connection without answering for up to `seconds`; notes in entry["ended"] who
    ended the hang: "client" (it closed the connection: its timeout) or "proxy"."""
    poller = select.poll()
    poller.register(client, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    end = time.time() + seconds
    ended = "proxy"
    while time.time() < end:
        if poller.poll(100):
            ended = "client"
            break
    with LOCK:
        entry["ended"] = ended
        write_stats()


def strike(client, kind, fault, entry, answer=None):
    """A staged fault's effect on the client's connection; `answer` is the origin's whole
    answer at the "answer" stage (None before)."""
    if kind == "reset":
        rst(client)
    elif kind == "hang":
        hold(client, float(fault.get("seconds", 30)), entry)
    elif kind == "status":
        finish(client, fault_answer(int(fault.get("status", 502 if answer is not None else 503))))
    elif kind == "truncate":
        if answer is None:  # nothing came from the origin: a success answer, cut short
            cut = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"ok\": tr"
        elif "bytes" in fault:
            cut = answer[:int(fault["bytes"])]
        else:
            hdr, _, body = answer.partition(b"\r\n\r\n")
            cut = hdr + b"\r\n\r\n" + body[:len(body) // 2]
        finish(client, cut)


def origin_answer(client, head):
    """Sends the whole request (its Content-Length) to the origin and reads its whole answer;
    returns the answer's bytes. No thread reads the client meanwhile: a reset that follows
    must not wait for one (a close is deferred while another thread is in recv)."""
    up = socket.create_connection(TARGET, timeout=10)
    resp = b""
    try:
        up.sendall(closing(head))
        left = (content_length(head) or 0) - len(head.partition(b"\r\n\r\n")[2])
        client.settimeout(10)
        while left > 0:
            chunk = client.recv(min(left, 65536))
            if not chunk:
                break
            up.sendall(chunk)
            left -= len(chunk)
        up.settimeout(30)
        while b"\r\n\r\n" not in resp:
            chunk = up.recv(65536)
            if not chunk:
                break
            resp += chunk
        n = content_length(resp)
        body = len(resp.partition(b"\r\n\r\n")[2])
        while n is None or body < n:
            chunk = up.recv(65536)
            if not chunk:
                break
            resp += chunk
            body += len(chunk)
    except OSError:
        pass
    up.close()
    return resp


def staged(client, kind, stage, fault, entry):
    if stage == "connect":
        return strike(client, kind, fault, entry)
    head = read_head(client)
    if stage == "upload":
        length = content_length(head) or 0
        have = len(head.partition(b"\r\n\r\n")[2])
        want = int(fault.get("after", length // 2))
        if want > have:
            drain(client, 2, want - have)
        return strike(client, kind, fault, entry)
    if stage == "answer":
        answer = origin_answer(client, head)
        note_answer(head.split(b"\r\n", 1)[0].decode("latin-1"), answer)
        return strike(client, kind, fault, entry, answer)
    raise ValueError("unknown stage %r" % stage)


def handle(client):
    line = peek_head(client).split(b"\r\n", 1)[0].decode("latin-1")
    with LOCK:
        fault = next_fault(line)
        kind = fault.get("fault", "pass")
        STATS["connections"] += 1
        STATS["faults"][kind] = STATS["faults"].get(kind, 0) + 1
        STATS["requests"].append(line)
        entry = {"fault": kind, "stage": fault.get("stage"), "request": line}
        if kind != "pass":
            STATS["applied"].append(entry)
        write_stats()
    try:
        if "stage" in fault and kind != "pass":
            staged(client, kind, fault["stage"], fault, entry)
        elif kind == "pass":
            forward(client, read_head(client), line)
        elif kind == "delay":
            time.sleep(float(fault.get("seconds", 1)))
            forward(client, read_head(client), line)
        elif kind == "reset":
            read_head(client)
            drain(client, float(fault.get("seconds", 0.3)), fault.get("after"))
            rst(client)
        elif kind == "hang":
            read_head(client)
            drain(client, float(fault.get("seconds", 30)))
        elif kind == "status":
            head = read_head(client)
            length = content_length(head) or 0
            already = len(head.split(b"\r\n\r\n", 1)[1]) if b"\r\n\r\n" in head else 0
            if length > already:
                drain(client, 5, length - already)
            status = int(fault.get("status", 503))
            body = b"fault %d\n" % status
            extra = ""
            if "retry_after" in fault:
                extra = "Retry-After: %s\r\n" % fault["retry_after"]
            client.sendall(("HTTP/1.1 %d Fault\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n"
                            % (status, len(body), extra)).encode() + body)
            client.shutdown(socket.SHUT_WR)
            drain(client, 1)
        elif kind == "truncate":
            truncate(client, read_head(client), fault)
        else:
            read_head(client)
    except OSError:
        pass
    finally:
        client.close()


def main():
    global TARGET
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--parent", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--log", help="send stdout and stderr to this file")
    ap.add_argument("--close", action="store_true", help='forward every request with "Connection: close"')
    a = ap.parse_args()
    if a.log:
        fd = os.open(a.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    host, _, port = a.target.rpartition(":")
    TARGET = (host or "127.0.0.1", int(port))
    CONTROL["dir"] = a.control
    CONTROL["close"] = a.close
    os.makedirs(a.control, exist_ok=True)
    write_stats()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    p = srv.getsockname()[1]
    serverlib.write_port(a.port_file, p)
    print(p, flush=True)
    serverlib.watchdog(a.max_seconds, a.parent)
    while True:
        client, _ = srv.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
