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

DIR/stats.json (replaced atomically after every change):
  {"connections": N, "faults": {"reset": N, ...}, "requests": ["POST /upload HTTP/1.1", ...]}
"requests" lists the first request line seen on each connection, in order.
"""
import argparse
import json
import os
import socket
import struct
import threading
import time

LOCK = threading.Lock()
STATS = {"connections": 0, "faults": {}, "requests": []}
QUEUE = []          # pending faults: dicts with a remaining "count"
CONTROL = {"dir": None, "offset": 0}
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
            fault["count"] = int(fault.get("count", 1))
            if fault["count"] > 0:
                QUEUE.append(fault)


def next_fault():
    read_faults()
    if not QUEUE:
        return {"fault": "pass"}
    fault = QUEUE[0]
    fault["count"] -= 1
    if fault["count"] <= 0:
        QUEUE.pop(0)
    return fault


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


def note_request(data):
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    with LOCK:
        STATS["requests"].append(line)
        write_stats()


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


def pipe(src, dst, first=b""):
    try:
        if first:
            dst.sendall(first)
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def forward(client, first=b""):
    up = socket.create_connection(TARGET, timeout=10)
    up.settimeout(None)
    client.settimeout(None)
    t = threading.Thread(target=pipe, args=(client, up, first), daemon=True)
    t.start()
    pipe(up, client)
    t.join(30)
    up.close()


def truncate(client, head, fault):
    up = socket.create_connection(TARGET, timeout=10)
    client.settimeout(None)
    t = threading.Thread(target=pipe, args=(client, up, head), daemon=True)
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


def handle(client):
    with LOCK:
        fault = next_fault()
        kind = fault.get("fault", "pass")
        STATS["connections"] += 1
        STATS["faults"][kind] = STATS["faults"].get(kind, 0) + 1
        write_stats()
    try:
        if kind == "pass":
            head = read_head(client)
            note_request(head)
            forward(client, head)
        elif kind == "delay":
            time.sleep(float(fault.get("seconds", 1)))
            head = read_head(client)
            note_request(head)
            forward(client, head)
        elif kind == "reset":
            head = read_head(client)
            note_request(head)
            drain(client, float(fault.get("seconds", 0.3)), fault.get("after"))
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif kind == "hang":
            head = read_head(client)
            note_request(head)
            drain(client, float(fault.get("seconds", 30)))
        elif kind == "status":
            head = read_head(client)
            note_request(head)
            length = 0
            for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
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
            head = read_head(client)
            note_request(head)
            truncate(client, head, fault)
        else:
            head = read_head(client)
            note_request(head)
    except OSError:
        pass
    finally:
        client.close()


def watchdog(parent, deadline):
    while time.time() < deadline:
        if parent and not os.path.exists("/proc/%d" % parent):
            break
        time.sleep(0.5)
    os._exit(0)


def main():
    global TARGET
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--parent", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--log", help="send stdout and stderr to this file")
    a = ap.parse_args()
    if a.log:
        fd = os.open(a.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    host, _, port = a.target.rpartition(":")
    TARGET = (host or "127.0.0.1", int(port))
    CONTROL["dir"] = a.control
    os.makedirs(a.control, exist_ok=True)
    write_stats()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    p = srv.getsockname()[1]
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % p)
    os.rename(tmp, a.port_file)
    print(p, flush=True)
    threading.Thread(target=watchdog, args=(a.parent, time.time() + a.max_seconds), daemon=True).start()
    while True:
        client, _ = srv.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
