#!/usr/bin/env python3
"""Drives a program through a pseudo-terminal, the way a person at a keyboard does.

usage: pty_driver.py SCRIPT.json
SCRIPT: {"argv": [...], "env": {...}, "cwd": "...", "timeout": seconds per step,
         "steps": [{"send": "text"}, {"expect": "regex"}, {"sleep": 0.2},
                   {"wait_exit": true}]}
"expect" waits until the regex (Python syntax, DOTALL) matches the output that arrived
since the end of the previous match, with terminal escape sequences and carriage returns
removed. Prints one JSON object: {"ok", "failed" (step number or null), "reason",
"transcript", "exit" (exit status, -signal, or null)}. The child is always killed and
reaped before this returns.
"""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time

ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def clean(raw):
    return ESCAPES.sub(b"", raw).replace(b"\r", b"").replace(b"\x07", b"").decode("utf-8", "replace")


def main():
    with open(sys.argv[1]) as f:
        script = json.load(f)
    timeout = float(script.get("timeout", 10))
    env = dict(os.environ)
    env.update({"TERM": "xterm", "INPUTRC": "/dev/null", "COLUMNS": "100", "LINES": "30"})
    env.update(script.get("env", {}))
    for k, v in list(env.items()):
        if v is None or v is False:
            del env[k]

    pid, fd = pty.fork()
    if pid == 0:
        try:
            if script.get("cwd"):
                os.chdir(script["cwd"])
            os.execvpe(script["argv"][0], script["argv"], env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))

    raw = bytearray()
    pos = 0          # in the cleaned transcript: where the next expect starts looking
    status = None
    result = {"ok": True, "failed": None, "reason": None}

    def pump(wait):
        nonlocal status
        r, _, _ = select.select([fd], [], [], wait)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if data:
                raw.extend(data)
                return True
        if status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
        return False

    try:
        for i, step in enumerate(script["steps"], 1):
            if "send" in step:
                os.write(fd, step["send"].encode("utf-8"))
            elif "sleep" in step:
                end = time.monotonic() + float(step["sleep"])
                while time.monotonic() < end:
                    pump(0.02)
            elif "expect" in step:
                rx = re.compile(step["expect"], re.S)
                end = time.monotonic() + float(step.get("timeout", timeout))
                while True:
                    text = clean(bytes(raw))
                    m = rx.search(text, pos)
                    if m:
                        pos = m.end()
                        break
                    if time.monotonic() > end or (status is not None and not pump(0)):
                        result.update(ok=False, failed=i,
                                      reason="expected %r; got since the last match: %r"
                                      % (step["expect"], text[pos:]))
                        break
                    pump(0.05)
            elif "wait_exit" in step:
                end = time.monotonic() + float(step.get("timeout", timeout))
                while status is None and time.monotonic() < end:
                    pump(0.05)
                while pump(0):   # what is left in the terminal
                    pass
                if status is None:
                    result.update(ok=False, failed=i, reason="the program did not exit")
            if not result["ok"]:
                break
    finally:
        if status is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                os.kill(pid, signal.SIGKILL)
            _, st = os.waitpid(pid, 0)
            status = os.waitstatus_to_exitcode(st)
        os.close(fd)
    result["exit"] = status
    result["transcript"] = clean(bytes(raw))
    result["raw"] = bytes(raw).decode("utf-8", "replace")  # escapes kept: colour checks
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
