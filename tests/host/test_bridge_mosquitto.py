# The bridge against Debian's Mosquitto over mutual TLS (require_certificate, use_identity_as_username,
# an ACL confining each gateway to gw/<its CN>/#), started and stopped here: forwards, commands
# down, loop prevention, a refused forward, QoS 2 both ways, an outage of 1,000 QoS 1 messages, TLS
# failures.
import datetime
import json
import os
import shutil

import pytest
from cryptography.x509.oid import NameOID

from bridgeutil import MosquittoTLS, bridge_config, bridge_pki, first_seen, payloads_until
from clients import Client, V5, V311, props
from tlsutil import now

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="Debian's mosquitto is not installed")

RUNTIMES = ["cpython", "micropython"]


def gw_config(pki, up, runtime, forwards=None, subscription=None, ssl=None, extra=""):
    if forwards is None:
        forwards = [("sensors/#", "gw/gw-17/sensors/#", 1), ("cmd/#", "gw/gw-17/up/cmd/#", 1),
                    ("other/#", None, 1)]
    if subscription is None:
        subscription = [("gw/gw-17/cmd/#", "cmd/#", 1)]
    if ssl is None:
        ssl = {"certfile": pki.gw.crt, "keyfile": pki.gw.key, "cacertfile": pki.root.crt}
        if runtime == "micropython":
            ssl = dict(pki.der)
    return ('node.name = "gw17@127.0.0.1"\ndashboard.enable = false\n' + extra +
            bridge_config("cloud", "mqtts://127.0.0.1:%d" % up.port, forwards, subscription, ssl))


@pytest.fixture
def pki(tmp_path):
    return bridge_pki(tmp_path / "pki")


@pytest.fixture
def upstream(tmp_path, pki):
    up = MosquittoTLS(tmp_path / "mosquitto", pki)
    up.start()
    yield up
    up.stop()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_forward_command_down_loop_and_refusal(make_broker, pki, upstream, runtime):
    watcher = upstream.client(pki.watcher, "watcher")
    watcher.subscribe("gw/#", qos=1, retain_as_published=True)
    other = upstream.client(pki.watcher, "watcher2")
    other.subscribe("other/#", qos=1)
    gw = make_broker(gw_config(pki, upstream, runtime), runtime=runtime)
    gw.wait_log("bridge mqtt:cloud: connected to mqtts://127.0.0.1:%d" % upstream.port, timeout=10)
    upstream.wait_log("u'gw-17')")     # Mosquitto names the gateway by its certificate's CN
    dev = Client(gw.port, "dev1")
    dev.connect()
    dev.subscribe("cmd/#", qos=1)
    # A forward: topic mapped with its wildcard levels, QoS 1, retain kept, MQTT 5 properties kept.
    dev.publish("sensors/a/b", b"21.5", qos=1, retain=True,
                properties=props(UserProperty=[("unit", "C")], ContentType="text/plain",
                                 MessageExpiryInterval=3600, ResponseTopic="r/t", CorrelationData=b"c1"))
    m = watcher.expect(timeout=10)
    assert m.topic == "gw/gw-17/sensors/a/b" and m.payload == b"21.5" and m.qos == 1
    assert m.retain
    assert m.properties.UserProperty == [("unit", "C")] and m.properties.ContentType == "text/plain"
    assert m.properties.ResponseTopic == "r/t" and m.properties.CorrelationData == b"c1"
    assert 3590 <= m.properties.MessageExpiryInterval <= 3600
    # A command comes down under its local topic; it matches the forward cmd/# but is not sent back.
    watcher.publish("gw/gw-17/cmd/reboot", b"now", qos=1)
    got = [watcher.expect(timeout=5)]     # its own command (Mosquitto has no no_local here)
    assert got[0].topic == "gw/gw-17/cmd/reboot"
    c = dev.expect(timeout=10)
    assert c.topic == "cmd/reboot" and c.payload == b"now" and c.qos == 1
    # The fence: a local message on cmd/ does go up, and nothing came before it.
    dev.publish("cmd/local", b"x", qos=1)
    m = watcher.expect(timeout=10)
    assert m.topic == "gw/gw-17/up/cmd/local", m.topic
    watcher.expect_none(timeout=0.3)
    # Outside the gateway's prefix: the upstream refuses (PUBACK 0x87), the bridge logs it and goes on.
    mark = gw.mark()
    dev.publish("other/x", b"no", qos=1)
    line = gw.wait_log("refused the forward of 'other/x'", timeout=10, start=mark)
    assert "0x87" in line, line
    other.expect_none(timeout=0.3)
    dev.publish("sensors/after", b"ok", qos=1)
    m = watcher.expect(timeout=10)
    assert m.topic == "gw/gw-17/sensors/after" and m.payload == b"ok"
    for c in (dev, watcher, other):
        c.disconnect()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_qos2_both_ways_exactly_once(make_broker, pki, upstream, runtime):
    # A forward and a subscription at QoS 2: PUBLISH, PUBREC, PUBREL, PUBCOMP with Mosquitto on
    # the other side, up and down; each message arrives once, in order, at QoS 2.
    watcher = upstream.client(pki.watcher, "watcher")
    watcher.subscribe("gw/#", qos=2)
    gw = make_broker(gw_config(pki, upstream, runtime, forwards=[("sensors/#", "gw/gw-17/sensors/#", 2)],
                               subscription=[("gw/gw-17/cmd/#", "cmd/#", 2)]), runtime=runtime)
    gw.wait_log("bridge mqtt:cloud: connected", timeout=10)
    dev = Client(gw.port, "dev1")
    dev.connect()
    assert dev.subscribe("cmd/#", qos=2) == [2]
    want = [b"%d" % i for i in range(20)] + [b"end"]

    def through(sender, topic, receiver, arrives_as):
        # want sent at QoS 2 one way: each arrives once, in order, at QoS 2, under its mapped topic
        for p in want:
            sender.publish(topic, p, qos=2, wait=False)
        got = []
        while not got or got[-1].payload != b"end":
            got.append(receiver.expect(timeout=10))
        assert [(m.topic, m.qos, m.payload) for m in got] == [(arrives_as, 2, p) for p in want]

    through(dev, "sensors/q2", watcher, "gw/gw-17/sensors/q2")
    through(watcher, "gw/gw-17/cmd/q2", dev, "cmd/q2")
    dev.expect_none(timeout=0.3)                # no second copy of any of them ...
    dev.publish("cmd/fence", b"f", qos=2)       # ... and the subscription still delivers
    assert dev.expect(timeout=10).payload == b"f"
    for c in (dev, watcher):
        c.disconnect()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_outage_1000_qos1_in_order(make_broker, pki, upstream, runtime):
    # The watcher keeps a persistent session on the upstream, which keeps it across its restart.
    upstream_persist(upstream)
    w = upstream.client(pki.watcher, "watcher", version=V311, clean=False)
    w.subscribe("gw/gw-17/sensors/#", qos=1)
    w.disconnect()
    gw = make_broker(gw_config(pki, upstream, runtime, subscription=[]), runtime=runtime)
    gw.wait_log("bridge mqtt:cloud: connected", timeout=10)
    upstream.stop()
    gw.wait_log("bridge mqtt:cloud: link to", timeout=10)
    dev = Client(gw.port, "dev1")
    dev.connect()
    for i in range(1000):
        dev.publish("sensors/seq", b"%d" % i, qos=1, wait=False)
    dev.publish("sensors/seq", b"end", qos=1)
    mark = gw.mark()
    gw.wait_log("cannot connect", timeout=10, start=mark)
    upstream.start()
    gw.wait_log("1001 message(s) queued", timeout=15, start=mark)
    w = upstream.client(pki.watcher, "watcher", version=V311, clean=False)
    got = payloads_until(w, b"end", 20)
    # QoS 1 allows duplicates, not losses or reordering of what is first seen.
    assert first_seen(got) == [b"%d" % i for i in range(1000)] + [b"end"], (len(got), got[:5])
    dev.disconnect()
    w.disconnect()


def upstream_persist(up):
    with open(up.conf, "a") as f:
        f.write("persistence true\npersistence_location %s/\nautosave_interval 0\n" % up.folder)
    up.stop()
    up.start()


def _tls_failure(make_broker, pki, upstream, runtime, ssl, words):
    gw = make_broker(gw_config(pki, upstream, runtime, ssl=ssl), runtime=runtime)
    first = gw.wait_log("bridge mqtt:cloud: cannot connect", timeout=10)
    assert "tls" in first, first
    for w in words:
        assert w in first.lower(), (w, first)
    # Backoff: the next attempt fails the same way, one line each, and the broker still serves.
    second = gw.wait_log("(backoff step 2)", timeout=10)
    assert "tls" in second
    c = Client(gw.port, "still-up")
    c.connect()
    c.disconnect()
    assert gw.alive()
    print(first)
    print(second)
    return first


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tls_wrong_upstream_ca(make_broker, tmp_path, pki, upstream, runtime):
    other = pki.ca("other-root")
    ssl = {"certfile": pki.gw.crt, "keyfile": pki.gw.key, "cacertfile": other.crt}
    _tls_failure(make_broker, pki, upstream, runtime, ssl, ["unknown ca"])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tls_expired_gateway_certificate(make_broker, pki, upstream, runtime):
    old = pki.leaf(pki.root, "gw-old", [(NameOID.COMMON_NAME, "gw-17")],
                   not_before=now() - datetime.timedelta(days=30), not_after=now() - datetime.timedelta(days=1))
    ssl = {"certfile": old.crt, "keyfile": old.key, "cacertfile": pki.root.crt}
    _tls_failure(make_broker, pki, upstream, runtime, ssl, ["expired"])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tls_host_name_mismatch(make_broker, pki, upstream, runtime):
    ssl = {"certfile": pki.gw.crt, "keyfile": pki.gw.key, "cacertfile": pki.root.crt,
           "server_name_indication": "cloud.example"}
    _tls_failure(make_broker, pki, upstream, runtime, ssl, ["host-name mismatch"])
