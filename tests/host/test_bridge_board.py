# The bridge on a board's heap (issue 14): the MicroPython port with the board's persistence, a
# mutual-TLS listener with 4 devices and one mutual-TLS bridge to Mosquitto, in the code's heap plus
# 128 KB (the bridge's own modules counted in the 128 KB). Prints the heap cost of the bridge.
import os
import shutil
import time

import pytest

from bridgeutil import MosquittoTLS, bridge_config, bridge_pki
from clients import V5
from test_micropython_port import DEVICES, HeapBroker, _code_heap, pki, tls_client, tls_config  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="Debian's mosquitto is not installed")

BUDGET = 128 * 1024


def wait_line(b, text, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for x in list(b.lines):
            if text in x:
                return x
        assert b.proc.poll() is None, "\n".join(b.lines[-20:])
        time.sleep(0.05)
    raise AssertionError("no %r in:\n%s" % (text, "\n".join(b.lines[-20:])))


def configs(tmp_path, pki, up, bpki):  # noqa: F811
    base = ('listeners.tcp.default.bind = "127.0.0.1:0"\n' + tls_config(pki) +
            'persistence { enable = true, sync = interval, max_size = 256KB }\nnode.data_dir = "%s"\n'
            % (tmp_path / "data"))
    bridge = ('node.name = "gw17@127.0.0.1"\n' +
              bridge_config("cloud", "mqtts://127.0.0.1:%d" % up.port, [("sensors/#", "gw/gw-17/sensors/#", 1)],
                            [("gw/gw-17/cmd/#", "cmd/#", 1)], dict(bpki.der)))
    return base, base + bridge


def bridge_heap_cost(tmp_path, pki, up, bpki):  # noqa: F811
    # -> (used without the bridge, used with it connected): both in a roomy heap, after start.
    base, full = configs(tmp_path, pki, up, bpki)
    used = []
    for text in (base, full):
        b = HeapBroker(tmp_path, text, "2M")
        try:
            if text is full:
                wait_line(b, "bridge mqtt:cloud: connected")
            used.append(b.heap()[2])
        finally:
            b.stop()
    return used[0], used[1]


@pytest.fixture
def bridged(tmp_path):
    bpki = bridge_pki(tmp_path / "bpki")
    up = MosquittoTLS(tmp_path / "mosquitto", bpki)
    up.start()
    yield up, bpki
    up.stop()


def test_board_budget_4_tls_clients_and_one_tls_bridge(tmp_path, pki, bridged):  # noqa: F811
    up, bpki = bridged
    base, full = configs(tmp_path, pki, up, bpki)
    without, with_bridge = bridge_heap_cost(tmp_path, pki, up, bpki)
    print("heap used after start: %d bytes without the bridge, %d with one mutual-TLS bridge connected "
          "(+%.1f KB)" % (without, with_bridge, (with_bridge - without) / 1024))
    code = _code_heap(tmp_path, base)
    heap = (code + BUDGET) // 1024 + 1
    b = HeapBroker(tmp_path, full, "%dK" % heap)
    clients = []
    watcher = up.client(bpki.watcher, "watcher", V5)
    try:
        wait_line(b, "bridge mqtt:cloud: connected")
        watcher.subscribe("gw/gw-17/sensors/#", qos=1)
        for i in range(4):
            c = tls_client(b.ports["ssl:default"], pki, DEVICES[i], "tls%d" % i)
            c.connect(timeout=10)
            c.subscribe("cmd/#", qos=1)
            clients.append(c)
        for r in range(10):
            for i, c in enumerate(clients):
                c.publish("sensors/%d" % i, b"%d:%d" % (r, i) + b"x" * 100, qos=1)
        got = watcher.expect_n(40, timeout=20)
        assert sorted(m.payload.split(b"x")[0] for m in got) == sorted(
            b"%d:%d" % (r, i) for r in range(10) for i in range(4))
        watcher.publish("gw/gw-17/cmd/reboot", b"now", qos=1)
        for c in clients:
            m = c.expect(timeout=10)
            assert m.topic == "cmd/reboot" and m.payload == b"now"
        free, lowest, used = b.check_room()
        print("board: %d KB heap (code %d bytes + 128 KB): used %d, lowest free %d bytes" % (heap, code, used, lowest))
    finally:
        for c in clients:
            c.disconnect()
        watcher.disconnect()
        b.stop()
