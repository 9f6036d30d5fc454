# Persistence (issue 13): what the broker acknowledged, it still has after SIGKILL. Real broker
# processes, killed with SIGKILL while messages are in flight, restarted on the same data folder;
# publishers and subscribers on raw sockets, so every packet id, resend and duplicate is visible.
# Runs on both runtimes (the Makefile's PORT_SUITE picks up test_mqtt_*.py).
import os
import random
import signal
import threading
import time
from collections import OrderedDict

import pytest

from brokers import BrokerProcess, free_port, DEFAULT_RUNTIME
import rawmqtt as R

pytestmark = pytest.mark.skipif(DEFAULT_RUNTIME == "mosquitto", reason="gatemq persistence")

BASE = 'sys_topics.sys_msg_interval = disabled\nmqtt.max_mqueue_len = 100000\n'


def conf(port, extra=""):
    return 'listeners.tcp.default.bind = "127.0.0.1:%d"\n%s%s' % (port, BASE, extra)


def start(folder, port, extra="persistence.enable = true\n"):
    return BrokerProcess(conf(port, extra), tmp_path=folder)


def kill(b):
    os.kill(b.pid, signal.SIGKILL)
    b.stop()


class Publisher:
    # A QoS 1 or 2 publisher with a persistent session that outlives broker restarts: on each
    # connection it resends what was not acknowledged (PUBLISH with DUP, or PUBREL after PUBREC),
    # as the spec asks, then publishes new numbered messages with a window of `window`.
    def __init__(self, cid, version, qos, topic, window=8):
        self.cid, self.version, self.qos, self.topic, self.window = cid, version, qos, topic, window
        self.unacked = OrderedDict()   # pid -> [n, phase]  (phase 1: PUBREC seen, PUBREL sent)
        self.acked = set()             # numbers the broker acknowledged (PUBACK, or PUBREC at QoS 2)
        self.n = 0
        self.pid = 0
        self.cond = threading.Condition()
        self.stop_new = False
        self.error = None

    def payload(self, n):
        return b"%s-%d" % (self.cid.encode(), n)

    def _pid(self):
        while True:
            self.pid = self.pid % 65535 + 1
            if self.pid not in self.unacked:
                return self.pid

    def session(self, port, timeout=60):
        # One connection, until the broker goes away (or, with stop_new, until all is acknowledged).
        props = {"session_expiry": 3600} if self.version == 5 else None
        try:
            c = R.RawClient(port, self.version, timeout=5)
        except OSError:
            return
        try:
            ack = c.connect(self.cid, clean=False, props=props)
            assert ack.rc == 0, ack
            for pid, (n, phase) in list(self.unacked.items()):
                if phase:
                    c.send(R.ack(R.PUBREL, pid, version=self.version))
                else:
                    c.send(R.publish(self.topic, self.payload(n), self.qos, dup=True, pid=pid, version=self.version))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                while not self.stop_new and len(self.unacked) < self.window:
                    # the number is taken before the send: a send the broker's death cuts short
                    # leaves it unacknowledged under this pid, resent as such, never reused
                    pid, n = self._pid(), self.n
                    self.n = n + 1
                    self.unacked[pid] = [n, 0]
                    c.send(R.publish(self.topic, self.payload(n), self.qos, pid=pid, version=self.version))
                if self.stop_new and not self.unacked:
                    c.send(R.disconnect())
                    return
                p = c.recv(10)
                e = self.unacked.get(p.pid)
                if e is None:
                    continue
                if p.type == R.PUBACK or p.type == R.PUBCOMP:
                    # 0x92 on a PUBCOMP: the broker had completed it before it died (the PUBREL's
                    # effect was stored, its PUBCOMP lost with the process); done all the same
                    assert p.rc in (None, 0, 0x10) or (p.type == R.PUBCOMP and p.rc == 0x92), p
                    del self.unacked[p.pid]
                    self._acked(e[0])
                elif p.type == R.PUBREC:
                    assert p.rc in (None, 0, 0x10), p
                    e[1] = 1
                    self._acked(e[0])
                    c.send(R.ack(R.PUBREL, p.pid, version=self.version))
        except (R.Closed, OSError, TimeoutError):
            return
        except AssertionError as e:
            self.error = e
        finally:
            c.close()

    def _acked(self, n):
        with self.cond:
            self.acked.add(n)
            self.cond.notify_all()

    def wait_acked(self, count, timeout=20):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.acked) >= count, timeout)


class Subscriber:
    # A raw subscriber that acknowledges what it gets and records payloads: a QoS 2 message once
    # per packet id until its PUBREL (a DUP resend of it is the same message).
    def __init__(self, port, cid, version):
        self.c = R.RawClient(port, version, timeout=5)
        self.version = version
        props = {"session_expiry": 3600} if version == 5 else None
        self.ack = self.c.connect(cid, clean=False, props=props)
        self.got = []
        self.pending = set()

    def read(self, want, timeout=30):
        # Reads until every payload in want arrived (or timeout); returns the payloads seen.
        deadline = time.monotonic() + timeout
        seen = set(self.got)
        while not want <= seen and time.monotonic() < deadline:
            try:
                p = self.c.recv(max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                break
            self._handle(p, seen)
        return seen

    def quiet(self, timeout=0.5):
        seen = set(self.got)
        while True:
            try:
                p = self.c.recv(timeout)
            except TimeoutError:
                return
            self._handle(p, seen)

    def _handle(self, p, seen):
        if p.type == R.PUBLISH:
            qos = (p.flags >> 1) & 3
            if qos == 1:
                self.got.append(p.payload)
                self.c.send(R.ack(R.PUBACK, p.pid, version=self.version))
            elif qos == 2:
                if p.pid not in self.pending:
                    self.pending.add(p.pid)
                    self.got.append(p.payload)
                self.c.send(R.ack(R.PUBREC, p.pid, version=self.version))
            else:
                self.got.append(p.payload)
            seen.add(p.payload)
        elif p.type == R.PUBREL:
            self.pending.discard(p.pid)
            self.c.send(R.ack(R.PUBCOMP, p.pid, version=self.version))


def subscribe(port, cid, version, flt, qos):
    c = R.RawClient(port, version)
    props = {"session_expiry": 3600} if version == 5 else None
    assert c.connect(cid, clean=False, props=props).rc == 0
    ack = c.subscribe(1, [(flt, qos)], version=version)
    c.send(R.disconnect())
    c.close()
    return ack


def test_crash_loop_loses_nothing_acknowledged(tmp_path, uid):
    # Publishers at QoS 1 (MQTT 3.1.1) and QoS 2 (5.0) with persistent sessions, two offline
    # persistent subscribers (3.1.1 at QoS 1, 5.0 at QoS 2) and a retained message; the broker is
    # SIGKILLed 20 times at random points while messages are in flight. Afterwards every message a
    # publisher saw acknowledged is delivered, the QoS 2 ones exactly once.
    port = free_port()
    rnd = random.Random(13)
    flt = uid + "/#"
    b = start(tmp_path, port)
    assert subscribe(port, uid + "-s1", 4, flt, 1)
    assert subscribe(port, uid + "-s2", 5, flt, 2)
    c = R.RawClient(port, 4)
    c.connect(uid + "-r")
    c.send(R.publish(uid + "/state", b"retained-1", 1, retain=True, pid=7))
    assert c.expect(R.PUBACK).pid == 7
    c.close()
    pubs = [Publisher(uid + "-p1", 4, 1, uid + "/q1"), Publisher(uid + "-p2", 5, 2, uid + "/q2")]
    for cycle in range(20):
        if cycle:
            b = start(tmp_path, port)
            b.wait_log("persistence:")
        threads = [threading.Thread(target=p.session, args=(port,), daemon=True) for p in pubs]
        for t in threads:
            t.start()
        # a random point: after some more acknowledgements, with messages in flight
        for p in pubs:
            assert p.wait_acked(len(p.acked) + rnd.randint(1, 40)), b.log()
        kill(b)
        for t in threads:
            t.join(15)
            assert not t.is_alive()
        for p in pubs:
            assert p.error is None, p.error
    b = start(tmp_path, port)
    line = b.wait_log("persistence:")
    assert "session" in line, line
    # the publishers finish what was in flight when the broker died (resends)
    for p in pubs:
        p.stop_new = True
        p.session(port)
        assert p.error is None and not p.unacked, (p.error, p.unacked)
    s1 = Subscriber(port, uid + "-s1", 4)
    s2 = Subscriber(port, uid + "-s2", 5)
    assert s1.ack.session_present and s2.ack.session_present, b.log()
    want = set()
    for p in pubs:
        want |= {p.payload(n) for n in p.acked}
    assert len(want) > 100
    seen1 = s1.read(want)
    seen2 = s2.read(want)
    assert not want - seen1, "3.1.1 subscriber misses %d acknowledged messages" % len(want - seen1)
    assert not want - seen2, "5.0 subscriber misses %d acknowledged messages" % len(want - seen2)
    s2.quiet()
    q2 = [x for x in s2.got if x.startswith(pubs[1].cid.encode())]
    assert len(q2) == len(set(q2)), "QoS 2 messages delivered twice: %r" % sorted(
        x for x in set(q2) if q2.count(x) > 1)[:5]
    # the retained message is there for a new subscriber
    r = R.RawClient(port, 4)
    r.connect(uid + "-late")
    r.subscribe(1, [(uid + "/state", 1)])
    m = r.expect(R.PUBLISH)
    assert m.payload == b"retained-1" and m.flags & 1
    r.close()
    b.stop()


def test_without_persistence_a_restart_forgets(tmp_path, uid):
    # The fence of the test above: the same steps with persistence off lose the session.
    port = free_port()
    b = start(tmp_path, port, "")
    subscribe(port, uid + "-s1", 4, uid + "/#", 1)
    kill(b)
    b = start(tmp_path, port, "")
    s = Subscriber(port, uid + "-s1", 4)
    assert not s.ack.session_present
    b.stop()


# ---- damage: a torn tail, a corrupt store, a newer version ----

def _store(folder):
    d = os.path.join(str(folder), "data")
    return os.path.join(d, "gatemq.db" if DEFAULT_RUNTIME == "cpython" else "gatemq.log")


def _made(tmp_path, uid, clean=False):
    # a store with a persistent session in it, left by SIGKILL (or a clean stop, after which
    # SQLite has moved its WAL into the database file)
    port = free_port()
    b = start(tmp_path, port)
    subscribe(port, uid + "-s", 4, uid + "/#", 1)
    if clean:
        b.stop()
    else:
        kill(b)
    return port


def _serves(port):
    c = R.RawClient(port, 4)
    assert c.connect("probe").rc == 0
    c.close()


def test_a_torn_tail_is_dropped_named_and_the_broker_serves(tmp_path, uid):
    if DEFAULT_RUNTIME != "micropython":
        pytest.skip("the append-only log is the MicroPython port's (SQLite's WAL checks its own frames)")
    from gatemq import persist as P
    port = _made(tmp_path, uid)
    last = P.frame([[P.PUT, "u", uid + "-s", uid + "/torn", [1, None]]])
    path = _store(tmp_path)
    size = os.path.getsize(path)
    for cut in (1, 7, 8, len(last) // 2, len(last) - 1):
        with open(path, "r+b") as f:
            f.truncate(size)
            f.seek(size)
            f.write(last[:cut])
        b = start(tmp_path, port)
        line = b.wait_log("dropped")
        assert "a write cut short" in line and "torn" in line, line
        assert "1 session(s)" in b.wait_log("persistence:", start=0) or "session" in b.log()
        s = Subscriber(port, uid + "-s", 4)
        assert s.ack.session_present, b.log()
        s.c.close()
        b.stop()
        size = os.path.getsize(path)      # compacted at start, without the tail


@pytest.mark.parametrize("on_corrupt", ["rename", "stop"])
def test_a_corrupt_store_is_set_aside_or_stops_the_start(tmp_path, uid, on_corrupt):
    port = _made(tmp_path, uid, clean=True)
    path = _store(tmp_path)
    assert os.path.getsize(path) > 64
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        mid = 16 if DEFAULT_RUNTIME == "micropython" else 0
        for i in range(mid, mid + 24):
            data[i] ^= 0x5A
        f.seek(0)
        f.write(data)
        if DEFAULT_RUNTIME == "micropython":
            # damage in the middle: a good frame after the bad one
            from gatemq import persist as P
            f.write(P.frame([[P.PUT, "r", "", "x", ["x", b"y", 0, True, None, None, None]]]))
    extra = "persistence.enable = true\npersistence.on_corrupt = %s\n" % on_corrupt
    if on_corrupt == "stop":
        with pytest.raises(RuntimeError) as e:
            start(tmp_path, port, extra)
        assert "on_corrupt = stop" in str(e.value) and "exited with 1" in str(e.value)
        return
    b = start(tmp_path, port, extra)
    line = b.wait_log("renamed to")
    assert path in line and "starts empty" in line, line
    aside = line.split("renamed to ")[1].split(" and")[0]
    assert os.path.exists(aside)
    _serves(port)
    s = Subscriber(port, uid + "-s", 4)
    assert not s.ack.session_present
    b.stop()


def test_a_store_written_by_a_newer_version_stops_the_start(tmp_path, uid):
    port = _made(tmp_path, uid)
    path = _store(tmp_path)
    if DEFAULT_RUNTIME == "micropython":
        from gatemq import persist as P
        with open(path, "r+b") as f:
            f.seek(len(P.MAGIC))
            f.write(bytes((P.VERSION + 1,)))
    else:
        import sqlite3
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version=99")
        db.commit()
        db.close()
    with pytest.raises(RuntimeError) as e:
        start(tmp_path, port)
    assert "written by a newer gatemq" in str(e.value), str(e.value)
    # the same store, version put back, loads: the refusal was the version alone
    if DEFAULT_RUNTIME == "micropython":
        with open(path, "r+b") as f:
            f.seek(len(P.MAGIC))
            f.write(bytes((P.VERSION,)))
    else:
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version=1")
        db.commit()
        db.close()
    b = start(tmp_path, port)
    s = Subscriber(port, uid + "-s", 4)
    assert s.ack.session_present, b.log()
    b.stop()


def test_gatemq_data_info_dump_compact(tmp_path, uid):
    # On this runtime's store (SQLite, or the MicroPython log as copied off a board).
    import json
    import subprocess
    from brokers import PYTHON
    _made(tmp_path, uid)
    data = os.path.join(str(tmp_path), "data")

    def run(*args):
        r = subprocess.run([PYTHON, "-m", "gatemq.cpython", "data"] + list(args) + [data],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    info = json.loads(run("info"))
    assert info["version"] == 1 and info["counts"]["session"] == 1 and info["counts"]["subscription"] == 1, info
    dump = [json.loads(x) for x in run("dump").splitlines()]
    assert {"kind": "subscription", "client": uid + "-s", "key": uid + "/#", "value": [1, None]} in dump, dump
    json.loads(run("compact"))
    assert json.loads(run("info"))["counts"] == info["counts"]


# ---- a full disk: a small filesystem of its own ----

@pytest.fixture
def small_fs(tmp_path):
    # A 4 MB filesystem at tmp_path/fs: a size-limited tmpfs, else a loop-mounted ext4 image; the
    # test fills it with a file of its own (filler) and frees it by removing that file.
    import shutil
    import subprocess
    mnt = os.path.join(str(tmp_path), "fs")
    os.makedirs(mnt)
    why = []
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "gatemq-test", mnt], capture_output=True, text=True)
    if r.returncode:
        why.append("tmpfs: " + (r.stderr.strip() or "mount failed"))
        img = os.path.join(str(tmp_path), "fs.img")
        with open(img, "wb") as f:
            f.truncate(4 << 20)
        mk = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
        r = subprocess.run([mk, "-q", "-F", img], capture_output=True, text=True) if os.path.exists(mk) else None
        if r is None or r.returncode or subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True).returncode:
            why.append("loop-mounted ext4: cannot make or mount an image (not root, or no loop devices)")
            pytest.skip("no small filesystem to fill: " + "; ".join(why))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def _fill(folder, leave):
    # A file that takes all but `leave` bytes of the filesystem's free space.
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    path = os.path.join(folder, "filler")
    with open(path, "wb") as f:
        left = max(0, free - leave)
        while left:
            n = min(left, 1 << 20)
            f.write(b"\0" * n)
            left -= n
    return path


def test_a_full_disk_refuses_new_messages_keeps_what_was_acknowledged_and_serves(tmp_path, uid, small_fs):
    # The store on a 4 MB filesystem filled to within 160 KB by another file; a 5.0 publisher at
    # QoS 1 and 2 with 8 KB payloads queued for an offline persistent subscriber. Once the disk is
    # full: 0x97 on PUBACK and PUBREC, no PUBACK to a 3.1.1 publisher (its connection stays), a
    # line on the log, QoS 0 still flows; with the filler removed the broker accepts again by
    # itself; after SIGKILL every acknowledged message is delivered.
    port = free_port()
    data = os.path.join(small_fs, "data")
    extra = 'persistence.enable = true\nnode.data_dir = "%s"\nmqtt.max_packet_size = 1MB\n' % data
    b = start(tmp_path, port, extra)
    assert subscribe(port, uid + "-s", 5, uid + "/q/#", 1)
    filler = _fill(small_fs, 160 * 1024)
    p = R.RawClient(port, 5)
    assert p.connect(uid + "-p").rc == 0
    acked, refused = [], []
    body = b"x" * 8192
    for n in range(1, 2000):
        qos = 2 if n % 3 == 0 else 1
        p.send(R.publish(uid + "/q/m", b"%d-" % n + body, qos, pid=n, version=5))
        a = p.recv(10)
        assert a.type == (R.PUBREC if qos == 2 else R.PUBACK) and a.pid == n, a
        if a.rc in (None, 0, 0x10):
            assert not refused, "acknowledged after a refusal, with the disk still full: %d" % n
            acked.append(n)
            if qos == 2:
                p.send(R.ack(R.PUBREL, n, version=5))
                assert p.expect(R.PUBCOMP).pid == n
        else:
            assert a.rc == 0x97, a
            refused.append(n)
            if len(refused) == 6:     # QoS 1 and QoS 2 refused
                break
    assert len(acked) >= 5 and len(refused) == 6, (len(acked), refused, b.log())
    line = b.wait_log("new QoS 1/2 messages are refused")
    assert "disk" in line or "cannot be written" in line, line
    b.wait_log("refused: ")
    # a 3.1.1 publisher gets no PUBACK, and its connection stays
    q = R.RawClient(port, 4)
    assert q.connect(uid + "-p4").rc == 0
    q.send(R.publish(uid + "/q/m", b"v4-refused", 1, pid=1))
    with pytest.raises(TimeoutError):
        q.recv(1.0)
    q.send(R.pingreq())
    assert q.expect(R.PINGRESP)
    # the broker serves: a new connection, QoS 0 to a live subscriber
    live = R.RawClient(port, 4)
    assert live.connect(uid + "-live").rc == 0
    live.subscribe(1, [(uid + "/live", 0)])
    q.send(R.publish(uid + "/live", b"still-here", 0))
    assert live.expect(R.PUBLISH).payload == b"still-here"
    # room again (the filler removed): accepted within a maintenance round (5 s)
    os.remove(filler)
    b.wait_log("room again", timeout=12)
    p.send(R.publish(uid + "/q/m", b"after", 1, pid=5000, version=5))
    a = p.expect(R.PUBACK)
    assert a.pid == 5000 and a.rc in (None, 0), a
    kill(b)
    for c in (p, q, live):
        c.close()
    b = start(tmp_path, port, extra)
    s = Subscriber(port, uid + "-s", 5)
    assert s.ack.session_present, b.log()
    want = {b"%d-" % n + body for n in acked} | {b"after"}
    seen = s.read(want)
    assert not want - seen, "%d acknowledged messages lost" % len(want - seen)
    assert not {b"%d-" % n + body for n in refused} & seen
    b.stop()


# ---- sync = interval: at most the last window ----

def test_sync_interval_loses_at_most_the_last_window_and_never_corrupts(tmp_path, uid):
    # A 3.1.1 publisher at QoS 1, numbered messages for an offline persistent subscriber, for some
    # 3 s with sync_interval = 500ms, then SIGKILL. The store loads without damage, and what it
    # holds is a prefix of the acknowledged messages that takes in every one acknowledged more
    # than a window (the interval plus a timer round of the broker, 1 s) before the kill.
    port = free_port()
    extra = "persistence.enable = true\npersistence.sync = interval\npersistence.sync_interval = 500ms\n"
    b = start(tmp_path, port, extra)
    assert subscribe(port, uid + "-s", 4, uid + "/#", 1)
    c = R.RawClient(port, 4)
    assert c.connect(uid + "-p").rc == 0
    at = {}
    end = time.monotonic() + 3
    n = 0
    while time.monotonic() < end:
        n += 1
        c.send(R.publish(uid + "/m", b"%d" % n, 1, pid=n % 65535 + 1))
        c.expect(R.PUBACK)
        at[n] = time.monotonic()
        time.sleep(0.002)
    t_kill = time.monotonic()
    kill(b)
    c.close()
    b = start(tmp_path, port, extra)
    line = b.wait_log("persistence:")
    assert "loaded" in line, line
    assert "renamed" not in b.log() and "damaged" not in b.log(), b.log()
    s = Subscriber(port, uid + "-s", 4)
    assert s.ack.session_present, b.log()
    old = {b"%d" % k for k, t in at.items() if t < t_kill - 2.0}
    assert len(old) > 50, len(old)
    s.read(old, timeout=20)
    s.quiet(1.0)
    got = [int(x) for x in s.got]
    assert old <= {b"%d" % k for k in got}, "lost more than the last window: %d of %d" % (
        len(old - {b"%d" % k for k in got}), len(old))
    assert sorted(set(got)) == list(range(1, max(got) + 1)), "not a prefix of what was acknowledged"
    b.stop()


def test_sync_none_stores_at_a_clean_stop_only(tmp_path, uid):
    # sync = none writes at a clean stop (and the start-up compaction) only: what a run acknowledged
    # after its start is in the store if it ended cleanly, and gone if it was SIGKILLed; what the
    # last clean stop stored survives the kill either way.
    port = free_port()
    extra = "persistence.enable = true\npersistence.sync = none\n"

    def publish(first, last):
        c = R.RawClient(port, 4)
        assert c.connect(uid + "-p").rc == 0
        for n in range(first, last + 1):
            c.send(R.publish(uid + "/m", b"%d" % n, 1, pid=n))
            assert c.expect(R.PUBACK).pid == n
        c.close()

    b = start(tmp_path, port, extra)
    assert subscribe(port, uid + "-s", 4, uid + "/#", 1)
    publish(1, 10)
    b.stop()                    # clean: 1..10 and the session are stored now
    b = start(tmp_path, port, extra)
    assert "1 session(s), 10 queued" in b.wait_log("persistence:"), b.log()
    publish(11, 20)
    kill(b)                     # 11..20 were acknowledged, never written
    b = start(tmp_path, port, extra)
    assert "1 session(s), 10 queued" in b.wait_log("persistence:"), b.log()
    s = Subscriber(port, uid + "-s", 4)
    assert s.ack.session_present, b.log()
    first = {b"%d" % n for n in range(1, 11)}
    assert s.read(first) >= first
    s.quiet()
    assert sorted(int(x) for x in s.got) == list(range(1, 11)), s.got
    publish(21, 21)             # the fence: the session still gets what comes now
    assert b"21" in s.read({b"21"})
    b.stop()


# ---- expiry across a restart, by the wall clock ----

def test_session_and_message_expiry_hold_across_a_restart(tmp_path, uid):
    # Stored deadlines are wall-clock times: 3 s spent with the broker down count. A session with
    # a 2 s expiry is gone at the restart, a 1 h one stays; a queued and a retained message with a
    # 2 s message expiry are gone, their twins without expiry delivered.
    port = free_port()
    b = start(tmp_path, port)
    for cid, exp in (("-short", 2), ("-long", 3600)):
        c = R.RawClient(port, 5)
        assert c.connect(uid + cid, clean=False, props={"session_expiry": exp}).rc == 0
        c.subscribe(1, [(uid + "/q", 1)], version=5)
        c.send(R.disconnect(version=5))
        c.close()
    p = R.RawClient(port, 5)
    assert p.connect(uid + "-p").rc == 0
    for i, (topic, payload, retain, props) in enumerate((
            (uid + "/q", b"q-expires", False, {"message_expiry": 2}),
            (uid + "/q", b"q-stays", False, None),
            (uid + "/r1", b"r-expires", True, {"message_expiry": 2}),
            (uid + "/r2", b"r-stays", True, None))):
        p.send(R.publish(topic, payload, 1, retain=retain, pid=i + 1, props=props, version=5))
        assert p.expect(R.PUBACK).pid == i + 1
    p.close()
    kill(b)
    time.sleep(3)
    b = start(tmp_path, port)
    c = R.RawClient(port, 5)
    ack = c.connect(uid + "-short", clean=False, props={"session_expiry": 60})
    assert not ack.session_present, "a session expired while the broker was down came back"
    c.close()
    s = Subscriber(port, uid + "-long", 5)
    assert s.ack.session_present, b.log()
    s.read({b"q-stays"}, timeout=5)
    s.quiet(0.5)
    assert s.got == [b"q-stays"], s.got
    r = R.RawClient(port, 5)
    assert r.connect(uid + "-late").rc == 0
    r.subscribe(1, [(uid + "/+", 0)], version=5)
    got = []
    try:
        while True:
            got.append(r.recv(0.7).payload)
    except TimeoutError:
        pass
    assert got == [b"r-stays"], got
    r.close()
    b.stop()


# ---- a store of this version after a config change ----

def test_a_store_loads_after_a_config_change(tmp_path, uid):
    # A persistent session made on a second listener, with messages queued and one retained; the
    # restart's config has that listener removed and other limits changed. The session, its
    # subscription and queue and the retained message are all there on the remaining listener.
    port, port2 = free_port(), free_port()
    two = 'listeners.tcp.second.bind = "127.0.0.1:%d"\npersistence.enable = true\n' % port2
    b = start(tmp_path, port, two)
    assert subscribe(port2, uid + "-s", 5, uid + "/#", 1)
    p = R.RawClient(port2, 4)
    assert p.connect(uid + "-p").rc == 0
    for i in range(1, 11):
        p.send(R.publish(uid + "/m", b"m%d" % i, 1, retain=(i == 10), pid=i))
        assert p.expect(R.PUBACK).pid == i
    p.close()
    kill(b)
    b = start(tmp_path, port, "persistence.enable = true\nmqtt.max_inflight = 4\nmqtt.max_mqueue_len = 500\n"
              "retainer.max_retained_messages = 10\n")
    assert "second" not in b.log()
    s = Subscriber(port, uid + "-s", 5)
    assert s.ack.session_present, b.log()
    want = {b"m%d" % i for i in range(1, 11)}
    assert s.read(want) >= want
    s.c.close()
    r = R.RawClient(port, 4)
    assert r.connect(uid + "-late").rc == 0
    r.subscribe(1, [(uid + "/m", 0)])
    assert r.expect(R.PUBLISH).payload == b"m10"
    r.close()
    b.stop()
