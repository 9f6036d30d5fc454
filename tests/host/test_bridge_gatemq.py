# The bridge with a second gatemq as the upstream: mutual TLS, peer_cert_as_username = cn and an
# acl.conf rule on ${cert_common_name}; and the bridge's visible state: the retained
# $SYS/brokers/<node>/bridges/<name>/status, GET /api/v5/bridges and /api/v5/bridges/{name}.
import json
import urllib.error
import urllib.request

import pytest

from bridgeutil import bridge_config, bridge_pki
from clients import Client
from tlsutil import client_context, ssl_config, ssl_port

ACL = """
{allow, {user, "watcher"}, all, ["#"]}.
{allow, all, all, ["gw/${cert_common_name}/#"]}.
{deny, all}.
"""


@pytest.fixture
def pki(tmp_path):
    return bridge_pki(tmp_path / "pki")


def start_upstream(make_broker, tmp_path, pki):
    acl = tmp_path / "acl.conf"
    acl.write_text(ACL)
    extra = """
mqtt.peer_cert_as_username = cn
authorization { no_match = deny, sources = [ { type = file, path = "%s" } ] }
""" % acl
    return make_broker(ssl_config(pki.server, pki.root, extra=extra), runtime="cpython")


def watcher(up, pki, cid="watcher"):
    c = Client(ssl_port(up), cid)
    c.c.tls_set_context(client_context(pki.root.crt, pki.watcher.crt, pki.watcher.key))
    c.connect()
    return c


def api(gw, path, token=None):
    port = gw.ports[("http", "dashboard")]
    if token is None:
        token = json.loads(urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d/api/v5/login" % port,
            data=b'{"username": "admin", "password": "public"}'), timeout=10).read())["token"]
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read()), token
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), token


def status_until(sub, pred, timeout=15):
    while True:
        m = sub.expect(timeout=timeout)
        info = json.loads(m.payload)
        if pred(info):
            return m, info


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_gatemq_upstream_acl_on_cert_cn_and_visible_state(make_broker, tmp_path, pki, runtime):
    up = start_upstream(make_broker, tmp_path, pki)
    w = watcher(up, pki)
    w.subscribe("gw/#", qos=1)
    ssl = {"certfile": pki.gw.crt, "keyfile": pki.gw.key, "cacertfile": pki.root.crt}
    conf = ('node.name = "gw17@127.0.0.1"\ndashboard.listeners.http.bind = "127.0.0.1:0"\n' +
            bridge_config("cloud", "mqtts://127.0.0.1:%d" % ssl_port(up),
                          [("sensors/#", "gw/gw-17/sensors/#", 1), ("other/#", None, 1)],
                          [("gw/gw-17/cmd/#", "cmd/#", 1)],
                          dict(pki.der) if runtime == "micropython" else ssl))   # a board keeps DER
    gw = make_broker(conf, runtime=runtime, listeners=[("tcp", "default"), ("http", "dashboard")])
    gw.wait_log("bridge mqtt:cloud: connected", timeout=10)
    # The upstream mapped the gateway's certificate to its username.
    up.wait_log_about("gw17@127.0.0.1:cloud", ["'gw-17'", "gw-17"], timeout=5)
    st = Client(gw.port, "status-watch")
    st.connect()
    st.subscribe("$SYS/brokers/gw17@127.0.0.1/bridges/cloud/status", qos=0)
    m, info = status_until(st, lambda i: i["status"] == "connected")
    assert m.retain and info["name"] == "cloud" and info["queue"] == 0

    dev = Client(gw.port, "dev1")
    dev.connect()
    dev.subscribe("cmd/#", qos=1)
    dev.publish("sensors/t", b"1", qos=1)
    m = w.expect(timeout=10)
    assert (m.topic, m.payload) == ("gw/gw-17/sensors/t", b"1")
    w.publish("gw/gw-17/cmd/x", b"go", qos=1)
    got = w.expect(timeout=5)      # its own
    c = dev.expect(timeout=10)
    assert (c.topic, c.payload) == ("cmd/x", b"go")
    # Outside gw/<CN>/#: the upstream's ACL refuses it (PUBACK 0x87), logged; the bridge goes on.
    mark = gw.mark()
    dev.publish("other/y", b"no", qos=1)
    line = gw.wait_log("refused the forward of 'other/y'", timeout=10, start=mark)
    assert "0x87" in line
    dev.publish("sensors/t", b"2", qos=1)
    m = w.expect(timeout=10)
    assert (m.topic, m.payload) == ("gw/gw-17/sensors/t", b"2")

    status, lst, tok = api(gw, "/api/v5/bridges")
    assert status == 200 and len(lst) == 1
    b = lst[0]
    assert (b["name"], b["type"], b["status"], b["queue"]) == ("cloud", "mqtt", "connected", 0)
    assert b["sent"] >= 2 and b["refused"] == 1
    assert api(gw, "/api/v5/bridges/cloud", tok)[1]["status"] == "connected"
    assert api(gw, "/api/v5/bridges/mqtt:cloud", tok)[1]["name"] == "cloud"
    assert api(gw, "/api/v5/bridges/nope", tok)[0] == 404

    # The upstream goes away: disconnected with the reason, the queue depth grows and shows.
    w.disconnect()
    up.stop()
    m, info = status_until(st, lambda i: i["status"] != "connected")
    for i in range(5):
        dev.publish("sensors/q", b"%d" % i, qos=1)
    m, info = status_until(st, lambda i: i["queue"] == 5 and i["last_error"])
    assert info["status"] in ("disconnected", "connecting")
    assert "refused" in info["last_error"] or "closed" in info["last_error"], info
    status, one, _ = api(gw, "/api/v5/bridges/cloud", tok)
    assert one["queue"] == 5 and one["status"] in ("disconnected", "connecting")
    for c in (dev, st):
        c.disconnect()
