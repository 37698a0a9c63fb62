"""What the Python test servers share (pypi_server.py, forge_server.py, httpd.py,
faultproxy.py): telling the suite their port, and living no longer than the process that
started them (or a bounded time)."""
import os
import threading
import time


def write_port(port_file, port):
    """Writes PORT to port_file whole (a temp file renamed), for the suite to poll."""
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, port_file)


def watchdog(seconds, parent=None):
    """Exits the process after `seconds`, or when its parent is gone: the process `parent`
    (a pid) when given, else the one that started it."""
    deadline = time.monotonic() + seconds
    ppid = os.getppid()

    def watch():
        while time.monotonic() < deadline:
            if parent and not os.path.exists("/proc/%d" % parent):
                break
            if not parent and os.getppid() != ppid:
                break
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def serve(srv, port_file, lifetime):
    """Announces srv's port (port_file, and "listening on http://127.0.0.1:PORT" on stdout),
    then serves until the watchdog ends the process."""
    port = srv.server_address[1]
    if port_file:
        write_port(port_file, port)
    print("listening on http://127.0.0.1:%d" % port, flush=True)
    watchdog(lifetime)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
