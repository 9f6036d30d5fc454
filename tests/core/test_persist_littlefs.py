# The MicroPython store (gatemq.micropython.store.LogStore) on littlefs, as on a board: a vfs.VfsLfs2
# filesystem over a block device in RAM. The broker is driven by the sans-IO harness and each round
# is committed before its output is read, as the port does. A full filesystem refuses new QoS 1
# messages with 0x97 and keeps serving; a power cut at any acknowledgement (the block device's bytes
# at that moment, mounted afresh) loses none of the messages acknowledged so far.
# MicroPython only (make test-core-mp): CPython has no littlefs.
try:
    import vfs
    VfsLfs2 = vfs.VfsLfs2
except (ImportError, AttributeError):
    VfsLfs2 = None
    import pytest
    pytestmark = pytest.mark.skip(reason="littlefs (vfs.VfsLfs2) is MicroPython's; make test-core-mp runs this")

import os

from gatemq import codec, config
from gatemq import persist as P
from _harness import Harness

CONF = "persistence.enable = true\nsys_topics.sys_msg_interval = disabled\nmqtt.max_mqueue_len = 100000\n"


class RAMBlockDev:
    # littlefs's block device protocol (readblocks, writeblocks with an offset, ioctl), counting erases.
    def __init__(self, block_size, blocks, data=None):
        self.block_size = block_size
        self.data = bytearray(block_size * blocks) if data is None else bytearray(data)
        self.erases = 0
        self.written = 0
        self.on_write = None    # called after each write (a test takes an image of the flash)

    def readblocks(self, n, buf, off=0):
        a = n * self.block_size + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        if off is None:         # the simple protocol: erase and write a whole block
            self.erases += 1
            off = 0
        a = n * self.block_size + off
        self.data[a:a + len(buf)] = buf
        self.written += len(buf)
        if self.on_write is not None:
            self.on_write()

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            self.erases += 1
            return 0


_mounts = [0]


def mount(bd, fresh):
    if fresh:
        VfsLfs2.mkfs(bd)
    _mounts[0] += 1
    where = "/lfs-test-%d" % _mounts[0]
    vfs.mount(VfsLfs2(bd), where)
    return where


class Durable(Harness):
    # The port's order: the round's changes committed, then its output; not stored, the output is
    # dropped and those connections closed (their clients resend).
    store = None

    def pump(self):
        p = self.broker.persist
        if p is not None and self.store is not None and p.ops and not p.commit(self.store):
            for c in self.broker.flush():
                c.take()
                c.handle.closed = True
            return
        Harness.pump(self)


def _durable(folder):
    from gatemq.micropython.store import LogStore, mkdirs
    mkdirs(folder)
    h = Durable(CONF)
    p = P.attach(h.broker, h.broker.cfg["persistence"])
    st = LogStore(folder, 8192)
    st.compact(iter(()))
    assert st.reserve()
    h.store = st
    return h, p


def _reload(image, block_size):
    # What a board finds after a power cut: the flash as it was, mounted afresh and replayed.
    from gatemq.micropython.store import LogStore
    bd = RAMBlockDev(block_size, len(image) // block_size, image)
    where = mount(bd, False)
    h = Harness(CONF)
    p = P.attach(h.broker, h.broker.cfg["persistence"])
    st = P.State()
    dropped, frames = LogStore(where + "/data").load(st.apply)
    counts = p.load(st.items)
    vfs.umount(where)
    return h, counts, dropped


def test_a_full_littlefs_refuses_new_messages_serves_and_a_power_cut_keeps_what_was_acknowledged():
    bd = RAMBlockDev(4096, 32)          # 128 KB of flash
    where = mount(bd, True)
    h, p = _durable(where + "/data")
    s = h.connected("sub", 4, clean_start=False)
    assert s.subscribe(1, [("t/#", 1)])
    s.drop()                            # offline: its messages are queued and stored
    pub = h.connected("pub", 5)
    acked, refused, image = [], [], None
    body = b"x" * 1000
    for n in range(1, 1000):
        pub.publish("t/m", b"%d-" % n + body, 1, pid=n)
        a = pub.expect(codec.PUBACK)
        assert a.pid == n
        if a.rc in (0, 0x10):
            assert not refused, "acknowledged after a refusal, the filesystem still full"
            acked.append(n)
            image = bytes(bd.data)      # a power cut right after this acknowledgement
        else:
            assert a.rc == 0x97, a.rc
            refused.append(n)
            if len(refused) == 3:
                break
    assert len(acked) >= 30 and len(refused) == 3, (len(acked), refused)
    assert p.full and "full" in h.text() and "refused" in h.text(), h.text()
    # it serves: QoS 0 between two live clients, a new connection
    live = h.subscriber([("live", 0)], "live", 4)
    pub.publish("live", b"still-here", 0)
    assert [m.payload for m in live.publishes()] == [b"still-here"]
    assert h.connected("late", 4)
    # the power cut: every acknowledged message in the sub's queue, in order, nothing refused
    h2, counts, dropped = _reload(image, 4096)
    assert counts["sessions"] == 1 and counts["queued"] == len(acked), (counts, len(acked))
    q = h2.broker.sessions["sub"].queue
    assert [bytes(d.msg.payload) for d in q] == [b"%d-" % n + body for n in acked]
    vfs.umount(where)


def test_a_power_cut_in_the_middle_of_a_commit_loses_only_that_commit():
    # The block device's bytes at every erase and write of one commit's frame: each image mounts and
    # replays to the state before or after that commit, never a damaged store.
    bd = RAMBlockDev(1024, 32)
    where = mount(bd, True)
    h, p = _durable(where + "/data")
    s = h.connected("sub", 4, clean_start=False)
    s.subscribe(1, [("t/#", 1)])
    s.drop()
    pub = h.connected("pub", 4)
    for n in range(1, 21):
        pub.publish("t/m", b"m%d" % n + b"y" * 300, 1, pid=n)
        assert pub.expect(codec.PUBACK).pid == n
    # littlefs calls the block device with the heap locked: the images are made beforehand
    room = [bytearray(len(bd.data)) for _ in range(40)]
    taken = [0]

    def image():
        if taken[0] < len(room):
            room[taken[0]][:] = bd.data
        taken[0] += 1
    bd.on_write = image
    pub.publish("t/m", b"m21" + b"y" * 300, 1, pid=21)
    assert pub.expect(codec.PUBACK).pid == 21
    bd.on_write = None
    assert 0 < taken[0] <= len(room), taken[0]
    images = room[:taken[0]]
    room = None
    assert images
    seen = []
    for image in images:
        h2, counts, dropped = _reload(image, 1024)
        h2 = None
        seen.append(counts["queued"])
    # each image before or after the commit; the first without it, the last with it
    assert set(seen) == {20, 21} and seen[0] == 20 and seen[-1] == 21, seen
    vfs.umount(where)
