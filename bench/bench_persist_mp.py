# Persistence on flash (MicroPython): bytes written and blocks erased per 1,000 QoS 1 messages, the
# store (gatemq.micropython.store.LogStore) on littlefs (vfs.VfsLfs2) over a block device in RAM
# that counts what littlefs asks of it. The broker is gatemq's, driven sans-IO: a publisher sends
# QoS 1 messages at RATE per second to a persistent-session subscriber that is online and
# acknowledges them (each message is stored in flight, then removed), as on a gateway; the port's
# cycle runs alongside (sync = interval: one commit every SYNC_INTERVAL; compaction when due).
#     MICROPYPATH=build/mpy/lib .venv/bin/micropython bench/bench_persist_mp.py
import os
import vfs

from gatemq import codec, config
from gatemq import persist as P
from gatemq.broker import Broker
from gatemq.micropython.store import LogStore, mkdirs

N = 1000
RATE = 50               # messages per second
SYNC_INTERVAL = 1.0
BLOCK, BLOCKS = 4096, 256   # 1 MB of flash in 4 KB erase blocks (an ESP32's or a Pico's sector)


class CountingBlockDev:
    def __init__(self):
        self.data = bytearray(BLOCK * BLOCKS)
        self.erases = self.written = self.read = 0

    def readblocks(self, n, buf, off=0):
        a = n * BLOCK + off
        buf[:] = self.data[a:a + len(buf)]
        self.read += len(buf)

    def writeblocks(self, n, buf, off=None):
        if off is None:
            self.erases += 1
            off = 0
        a = n * BLOCK + off
        self.data[a:a + len(buf)] = buf
        self.written += len(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return BLOCKS
        if op == 5:
            return BLOCK
        if op == 6:
            self.erases += 1
            return 0


class Clock:
    t = 1000.0

    def __call__(self):
        return self.t


class Peer:
    def __init__(self, b, port):
        self.conn = b.open(self, ("127.0.0.1", port), "tcp:default", None)
        self.reader = codec.Reader(None)


def run(mode, payload=64):
    bd = CountingBlockDev()
    vfs.VfsLfs2.mkfs(bd)
    where = "/flash-%s" % mode
    vfs.mount(vfs.VfsLfs2(bd), where)
    clock = Clock()
    cfg = config.load("persistence.enable = true\npersistence.sync = %s\nsys_topics.sys_msg_interval = disabled\n"
                      % mode)
    b = Broker(cfg, clock, lambda: 1.7e9 + clock.t, lambda level, msg: None)
    p = P.attach(b, cfg["persistence"])
    mkdirs(where + "/data")
    st = LogStore(where + "/data")
    st.compact(iter(()))
    st.reserve()
    e0, w0 = bd.erases, bd.written
    commits = [0]

    def pump():
        if mode == "commit" and p.ops:
            p.commit(st)
            commits[0] += 1
        for c in b.flush():
            c.handle.out = c.take()

    sub = Peer(b, 1)
    sub.conn.feed(codec.encode_connect("sub", 4, clean_start=False))
    sub.conn.feed(codec.encode_subscribe(1, [("t/#", 1)], None, 4))
    pub = Peer(b, 2)
    pub.conn.feed(codec.encode_connect("pub", 4))
    pump()
    next_sync = clock.t + SYNC_INTERVAL
    next_maint = clock.t + 5
    body = b"x" * payload
    for i in range(N):
        pid = i % 65535 + 1
        pub.conn.feed(bytes(codec.encode_publish(b"t/m", body, 1, False, False, pid, b"", 4)))
        pump()
        for b0, pkt in sub.reader.feed(sub.out or b""):
            m = codec.decode(b0, pkt, 4)
            sub.conn.feed(codec.encode_ack(codec.PUBACK, m.pid, 0, None, 4))
        sub.out = None
        pump()
        clock.t += 1.0 / RATE
        if mode == "interval" and clock.t >= next_sync:
            next_sync = clock.t + SYNC_INTERVAL
            p.commit(st)
            commits[0] += 1
        if clock.t >= next_maint:
            next_maint = clock.t + 5
            if st.wants_compaction() and p.commit(st):
                st.compact(p.snapshot())
    p.commit(st)
    out = (mode, bd.written - w0, bd.erases - e0, st.written, commits[0])
    st.close()
    vfs.umount(where)
    return out


for mode in ("interval", "commit"):
    mode, flash, erases, logged, commits = run(mode)
    print("littlefs, sync = %s (%d msg/s, %d-byte payloads, online persistent QoS 1 subscriber): per %d "
          "QoS 1 messages %d bytes appended to the log in %d commits, %d bytes programmed, %d blocks erased"
          % (mode, RATE, 64, N, logged, commits, flash, erases))
    print("RESULT %s %d %d %d %d" % (mode, logged, commits, flash, erases))
