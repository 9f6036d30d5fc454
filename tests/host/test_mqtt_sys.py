# $SYS topics: version, uptime, connection count, and the EMQX-format connected/disconnected
# events with the connection's effective identity.
import json
import time

import pytest

import gatemq
from clients import V31, V311, V5
from conftest import require_gatemq

NODE = "edge-gw1@10.1.2.3"
BROKER_CONFIG = 'node.name = "%s"\nsys_topics.sys_msg_interval = 1s\n' % NODE
SYS = "$SYS/brokers/%s/" % NODE


@pytest.fixture(autouse=True)
def _gatemq_only():
    require_gatemq()


def _next_on(c, topic, timeout=4.0, where=None):
    deadline = time.monotonic() + timeout
    while True:
        m = c.expect(max(0.01, deadline - time.monotonic()))
        if m.topic == topic and (where is None or where(m)):
            return m


def test_version_and_uptime(mod_broker, client, uid):
    c = client(mod_broker.port, uid)
    c.subscribe(SYS + "version", 0)
    c.subscribe(SYS + "uptime", 0)
    assert _next_on(c, SYS + "version").payload.decode() == gatemq.__version__
    first = int(_next_on(c, SYS + "uptime").payload)
    second = int(_next_on(c, SYS + "uptime", where=lambda m: int(m.payload) > first).payload)
    assert 0 <= first < second


def test_connection_count_follows_connections(make_broker, client, uid):
    b = make_broker(BROKER_CONFIG)
    watch = client(b.port, uid + "-w")
    watch.subscribe(SYS + "stats/connections/count", 0)
    _next_on(watch, SYS + "stats/connections/count", where=lambda m: m.payload == b"1")
    others = [client(b.port, "%s-%d" % (uid, i)) for i in range(2)]
    _next_on(watch, SYS + "stats/connections/count", where=lambda m: m.payload == b"3")
    for o in others:
        o.disconnect()
    _next_on(watch, SYS + "stats/connections/count", where=lambda m: m.payload == b"1")


def _event(watch, cid, what):
    m = _next_on(watch, SYS + "clients/%s/%s" % (cid, what))
    return json.loads(m.payload)


@pytest.mark.parametrize("version,proto_name", [(V31, "MQIsdp"), (V311, "MQTT"), (V5, "MQTT")])
def test_connected_and_disconnected_events(mod_broker, client, uid, version, proto_name):
    watch = client(mod_broker.port, uid + "-w")
    watch.subscribe("$SYS/brokers/+/clients/#", 0)
    cid = uid + "-dev"
    before = time.time() * 1000
    dev = client(mod_broker.port, cid, version, username="alice", password="pw", keepalive=17)
    ev = _event(watch, cid, "connected")
    assert ev["clientid"] == cid
    assert ev["username"] == "alice"
    assert ev["ipaddress"] == "127.0.0.1"
    assert ev["proto_name"] == proto_name
    assert ev["proto_ver"] == version
    assert ev["keepalive"] == 17
    assert ev["clean_start"] is True
    assert before - 1000 <= ev["connected_at"] <= time.time() * 1000 + 1000
    dev.disconnect()
    ev = _event(watch, cid, "disconnected")
    assert ev["clientid"] == cid and ev["username"] == "alice"
    assert ev["reason"] == "normal"
    assert before - 1000 <= ev["disconnected_at"] <= time.time() * 1000 + 1000


def test_disconnected_event_reason_for_a_dropped_connection(mod_broker, client, uid):
    watch = client(mod_broker.port, uid + "-w")
    watch.subscribe("$SYS/brokers/+/clients/#", 0)
    cid = uid + "-dev"
    dev = client(mod_broker.port, cid, V311, clean=False)
    ev = _event(watch, cid, "connected")
    assert ev["clean_start"] is False and ev["username"] is None
    dev.close()
    ev = _event(watch, cid, "disconnected")
    assert ev["reason"] not in ("normal", "", None)


def test_event_shows_the_assigned_client_id(mod_broker, client, uid):
    watch = client(mod_broker.port, uid + "-w")
    watch.subscribe("$SYS/brokers/+/clients/+/connected", 0)
    anon = client(mod_broker.port, "", V5)
    assigned = anon.connack_props.AssignedClientIdentifier
    ev = _event(watch, assigned, "connected")
    assert ev["clientid"] == assigned
