# Persistence figures for bench/run.py: the CPython port's restart with 100,000 retained messages and
# 10,000 sessions in its store, the MicroPython port's heap cost of persistence when idle, and
# (bench_persist_mp.py) bytes and erases per 1,000 QoS 1 messages on littlefs.
import os
import re
import subprocess
import tempfile
import time

RETAINED, SESSIONS = 100000, 10000
LOADED = re.compile(r"persistence: .*: (\d+) retained message\(s\), (\d+) session\(s\), (\d+) queued .* in ([\d.]+)s")


def build_store(folder, n_ret=RETAINED, n_sess=SESSIONS):
    # The records the broker itself would have written: retained dev/<i>/status, and sessions
    # (a day's expiry) with one subscription and one queued QoS 1 message each.
    from gatemq import persist as P
    from gatemq.cpython.store import SqliteStore, DB_NAME
    os.makedirs(folder, exist_ok=True)
    st = SqliteStore(os.path.join(folder, DB_NAME), "none")
    wall = time.time()
    ops = []
    for i in range(n_ret):
        t = "dev/%d/status" % i
        ops.append([P.PUT, "r", "", t, [t, b"online %d" % i, 1, True, None, None, "dev-%d" % i]])
    for i in range(n_sess):
        cid = "client-%d" % i
        ops.append([P.PUT, "s", cid, "", [86400, wall + 86400, None, None, None]])
        ops.append([P.PUT, "u", cid, "cmd/%d/#" % i, [1, None]])
        ops.append([P.PUT, "q", cid, i + 1, [["cmd/%d/x" % i, b"queued", 1, False, None, None, "p"], 1, False, None]])
    st.write(ops)
    st.close()


def restart(gatemq, workdir):
    # -> ({"restart_100k": s to the first CONNACK from the process start, "restart_load": s the log
    # gives for the load}, note)
    data = tempfile.mkdtemp(prefix="store-", dir=workdir)
    build_store(data)
    extra = ["persistence.enable = true", 'node.data_dir = "%s"' % data,
             "retainer.max_retained_messages = 200000", "mqtt.max_subscriptions = infinity"]
    t0 = time.monotonic()
    run = gatemq.start(workdir, extra=extra)
    secs = time.monotonic() - t0
    try:
        with open(run.logpath, errors="replace") as f:
            m = None
            for line in f:
                m = LOADED.search(line) or m
        if m is None:
            return {"restart_100k": None}, "no persistence line on the log: %s" % run.log_tail()
        if (int(m.group(1)), int(m.group(2))) != (RETAINED, SESSIONS):
            return {"restart_100k": None}, "loaded %s retained, %s sessions" % (m.group(1), m.group(2))
        return {"restart_100k": secs, "restart_load": float(m.group(4))}, None
    finally:
        run.stop()


def mp_idle_heap(mp, workdir):
    # -> (used heap bytes after start without persistence, with it (an empty store), note)
    used = []
    for extra in (None, ["persistence.enable = true", "persistence.sync = interval",
                         'node.data_dir = "%s"' % tempfile.mkdtemp(prefix="mpstore-", dir=workdir)]):
        run = mp.start(workdir, heap=True, extra=extra)
        try:
            time.sleep(1.0)
            h = run.heap()
        finally:
            run.stop()
        if h is None:
            return None, None, "no heap lines from the MicroPython port"
        used.append(h[0])
    return used[0], used[1], None


def mp_flash(mp, here, root):
    # bench_persist_mp.py's lines under MicroPython
    try:
        p = subprocess.run([mp.mp, "-X", "heapsize=16M", os.path.join(here, "bench_persist_mp.py")],
                           capture_output=True, text=True, timeout=600, env=mp.env(), cwd=root)
    except (subprocess.SubprocessError, OSError) as e:
        return ["bench_persist_mp.py failed: %s" % e]
    if p.returncode:
        return ["bench_persist_mp.py failed: %s" % p.stderr.strip()[-300:]]
    return [l for l in p.stdout.splitlines() if l and not l.startswith("RESULT")]
