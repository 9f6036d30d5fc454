# The bridge's store-and-forward queue under persistence (issue 14): with persistence.enable the
# queue and the upstream session's packet ids are persistence records, so what the gateway
# acknowledged to its devices reaches the cloud across a SIGKILL of the gateway; and an upstream
# SIGKILLed every few seconds under a steady QoS 1 stream loses nothing.
import os
import signal
import shutil
import threading

import pytest

from bridgeutil import MosquittoTLS, bridge_config, bridge_pki, first_seen, payloads_until
from brokers import BrokerProcess, free_port
from clients import Client, V311

RUNTIMES = ["cpython", "micropython"]


def kill(b):
    os.kill(b.pid, signal.SIGKILL)
    b.stop()


@pytest.fixture
def pki(tmp_path):
    return bridge_pki(tmp_path / "pki")


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="Debian's mosquitto is not installed")
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_queue_survives_sigkill_of_the_gateway(tmp_path, pki, runtime):
    up = MosquittoTLS(tmp_path / "mosquitto", pki)       # not running: the link is down
    ssl = {"certfile": pki.gw.crt, "keyfile": pki.gw.key, "cacertfile": pki.root.crt}
    if runtime == "micropython":
        ssl = dict(pki.der)
    conf = ('node.name = "gw17@127.0.0.1"\ndashboard.enable = false\npersistence.enable = true\n' +
            bridge_config("cloud", "mqtts://127.0.0.1:%d" % up.port, [("sensors/#", "gw/gw-17/sensors/#", 1)],
                          [], ssl))
    folder = tmp_path / "gw"
    folder.mkdir()
    gw = BrokerProcess(conf, runtime, tmp_path=folder)
    try:
        gw.wait_log("bridge mqtt:cloud: cannot connect", timeout=10)
        dev = Client(gw.port, "dev1")
        dev.connect()
        n = 500
        for i in range(n):
            dev.publish("sensors/seq", b"%d" % i, qos=1, wait=False)
        dev.publish("sensors/seq", b"end", qos=1)       # its PUBACK: every one before it is stored
        dev.close()
        kill(gw)
        up.start()
        w = up.client(pki.watcher, "watcher")
        w.subscribe("gw/gw-17/sensors/#", qos=1)
        gw = BrokerProcess(conf, runtime, tmp_path=folder)
        gw.wait_log("bridge mqtt:cloud: %d queued message(s) restored from the store" % (n + 1), timeout=15)
        got = payloads_until(w, b"end", 20, topic="gw/gw-17/sensors/seq")
        assert first_seen(got) == [b"%d" % i for i in range(n)] + [b"end"], (len(got), got[:5])
        # none was sent upstream before the kill: no duplicate either
        assert len(got) == n + 1
        w.disconnect()
    finally:
        gw.stop()
        up.stop()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_upstream_sigkilled_every_few_seconds_under_a_steady_qos1_stream(tmp_path, runtime):
    # The upstream is a gatemq with persistence (sync = commit): SIGKILLed, it keeps what it
    # acknowledged, so every loss or reordering would be the bridge's. A Mosquitto upstream keeps
    # its store only across a clean stop (SIGTERM), the bridge cannot make up for that.
    uport = free_port()
    uconf = ('listeners.tcp.default.bind = "127.0.0.1:%d"\ndashboard.enable = false\n'
             'persistence.enable = true\nmqtt.max_mqueue_len = 100000\n' % uport)
    ufolder = tmp_path / "up"
    ufolder.mkdir()
    upstream = BrokerProcess(uconf, "cpython", tmp_path=ufolder)
    w = Client(uport, "watcher", version=V311, clean=False)
    w.connect()
    w.subscribe("gw/gw-17/#", qos=1)
    w.disconnect()
    gconf = ('node.name = "gw17@127.0.0.1"\ndashboard.enable = false\npersistence.enable = true\n' +
             bridge_config("cloud", "mqtt://127.0.0.1:%d" % uport, [("sensors/#", "gw/gw-17/sensors/#", 1)], []))
    gfolder = tmp_path / "gw"
    gfolder.mkdir()
    gw = BrokerProcess(gconf, runtime, tmp_path=gfolder)
    stop = threading.Event()
    sent = [0]
    errors = []

    def stream():
        try:
            dev = Client(gw.port, "dev1")
            dev.connect()
            i = 0
            while not stop.is_set():
                dev.publish("sensors/seq", b"%d" % i, qos=1, timeout=10)
                i += 1
                sent[0] = i
                stop.wait(0.003)       # a steady stream, a few hundred a second
            dev.publish("sensors/seq", b"end", qos=1, timeout=10)
            dev.disconnect()
        except Exception as e:      # reported by the test below
            errors.append(e)

    try:
        line = gw.wait_log("bridge mqtt:cloud: connected", timeout=10)
        window = int(line.split("window ")[1].split(",")[0])
        t = threading.Thread(target=stream, daemon=True)
        t.start()
        kills = 4
        for k in range(kills):
            mark = gw.mark()
            want = sent[0] + 300
            # a few hundred messages (about a second or two) of the stream reach the upstream ...
            while sent[0] < want and t.is_alive():
                stop.wait(0.05)
            kill(upstream)
            gw.wait_log("bridge mqtt:cloud: link to", timeout=10, start=mark)
            upstream = BrokerProcess(uconf, "cpython", tmp_path=ufolder)
            gw.wait_log("bridge mqtt:cloud: connected", timeout=15, start=mark)
        while sent[0] < want + 300 and t.is_alive():
            stop.wait(0.05)
        stop.set()
        t.join(30)
        assert not errors, errors
        total = sent[0]
        w = Client(uport, "watcher", version=V311, clean=False)
        w.connect()
        got = payloads_until(w, b"end", 30)
        assert first_seen(got) == [b"%d" % i for i in range(total)] + [b"end"], (total, len(got))
        dups = len(got) - len(set(got))
        # QoS 1's duplicates only: a message the upstream had stored but whose PUBACK the kill
        # cut off, at most one window per kill
        assert dups <= kills * window, (dups, window)
        print("%d messages, %d upstream kills, %d duplicate(s), window %d" % (total + 1, kills, dups, window))
        w.disconnect()
    finally:
        stop.set()
        gw.stop()
        upstream.stop()
