"""Heap cost of the MicroPython management API (ports/micropython/dashboard.py) when idle.

Runs the MicroPython unix port from build/mpy/lib (the .mpy files a board gets; `make
firmware-files` first) with a broker on loopback, and reports, after gc.collect():

  import   the modules the API needs (gatemq.admin and the config schema, which the port
           otherwise drops after start-up)
  start    Api, the admin hash, the listening socket and its accept task
  served   still idle after a login and a few calls (what stays allocated between requests)

and the wall time of a login (PBKDF2-SHA256 in pure Python, the board port's 1024 rounds).

    .venv/bin/python bench/bench_dashboard_heap.py [--requests N]
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MP = os.path.join(ROOT, ".venv", "bin", "micropython")
LIB = os.path.join(ROOT, "build", "mpy", "lib")

DRIVER = """
import gc, sys, asyncio
from gatemq import config
from gatemq.micropython import server, cli
cfg = config.load(open(sys.argv[1]).read(), sys.argv[1])
log = server.make_log("info")
srv = server.Server(cfg, log, cli.file_reader("."), cli.file_reader(".", True))
srv.start()
# The port forgets the config reader after start-up; so do we, to count it as the API's.
import gatemq
for m in ("gatemq.config", "gatemq.schema", "gatemq.hocon"):
    sys.modules.pop(m, None)
    try:
        delattr(gatemq, m.split(".")[1])
    except AttributeError:
        pass
del config

def free():
    gc.collect()
    gc.collect()
    return gc.mem_free()

async def main():
    f0 = free()
    from gatemq import config
    fc = free()
    from gatemq.micropython import dashboard
    f1 = free()
    d = dashboard.Dashboard(srv, cfg, ".", cfg["mqtt"])
    d.start()
    await asyncio.sleep_ms(50)
    f2 = free()
    print("HEAP config=%d import=%d start=%d" % (f0 - fc, fc - f1, f1 - f2))
    while True:
        await asyncio.sleep_ms(300)
        print("HEAP served=%d" % (f0 - free()))
asyncio.run(main())
"""

CONF = """
listeners.tcp.default.bind = "127.0.0.1:0"
dashboard.listeners.http.bind = "127.0.0.1:0"
"""


def call(port, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Authorization": "Bearer " + token} if token else {}
    c.request(method, path, None if body is None else json.dumps(body), h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20, help="API calls after the login")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(LIB, "gatemq", "micropython", "dashboard.mpy")):
        sys.exit("build/mpy/lib has no dashboard.mpy: run `make firmware-files` first")
    tmp = tempfile.mkdtemp(prefix="gatemq-dash-heap-")
    with open(os.path.join(tmp, "g.conf"), "w") as f:
        f.write(CONF)
    with open(os.path.join(tmp, "driver.py"), "w") as f:
        f.write(DRIVER)
    env = dict(os.environ, MICROPYPATH=".frozen:" + LIB)
    p = subprocess.Popen([MP, "-X", "heapsize=2M", "driver.py", "g.conf"], cwd=tmp, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        idle = None
        while idle is None or port is None:
            line = p.stdout.readline()
            if not line:
                sys.exit("micropython exited early")
            m = re.search(r"http:dashboard listening on [\d.]+:(\d+)", line)
            if m:
                port = int(m.group(1))
            m = re.match(r"HEAP config=(\d+) import=(\d+) start=(\d+)", line)
            if m:
                idle = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        t = time.monotonic()
        status, body = call(port, "POST", "/api/v5/login", {"username": "admin", "password": "public"})
        login_s = time.monotonic() - t
        assert status == 200, body
        tok = body["token"]
        paths = ["/api/v5/stats", "/api/v5/clients", "/api/v5/configs/mqtt", "/api/v5/listeners"]
        t = time.monotonic()
        for i in range(args.requests):
            status, _ = call(port, "GET", paths[i % len(paths)], token=tok)
            assert status == 200
        per_call = (time.monotonic() - t) / max(1, args.requests)
        served = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            m = re.match(r"HEAP served=(-?\d+)", line)
            if m:
                served = int(m.group(1))
                break
        print("MicroPython %s unix port, heap after gc.collect():" % "1.29")
        print("  the config schema (gatemq.config)   : %6d bytes" % idle[0])
        print("  gatemq.admin + the port's dashboard : %6d bytes" % idle[1])
        print("  Api + listening socket + accept task: %6d bytes" % idle[2])
        print("  idle total before any request       : %6d bytes" % sum(idle))
        print("  idle total after login + %d calls   : %6d bytes" % (args.requests, served))
        print("  login (PBKDF2-SHA256, 1024 rounds)  : %6.1f ms" % (login_s * 1000))
        print("  GET call, average                   : %6.1f ms" % (per_call * 1000))
    finally:
        p.terminate()
        p.wait(5)


if __name__ == "__main__":
    main()
