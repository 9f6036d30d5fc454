# The HTTP management API (/api/v5/...) of the CPython port, against a real broker process:
# login and tokens, the mqtt settings (validation, persistence, new connections only), clients
# (paging, filters, kick), stats, metrics and listeners.
import http.client
import json
import os
import time

import pytest

from brokers import BrokerProcess
from clients import Client, V311, V5, props
from conftest import require_gatemq

DASH = 'dashboard.listeners.http.bind = "127.0.0.1:0"\n'
LISTEN = [("tcp", "default"), ("http", "dashboard")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from gatemq.certs import demo
    return demo.ensure(str(tmp_path_factory.mktemp("pki")))


def tls_config(pki, extra=""):
    return DASH + """
listeners.ssl.mtls {
  bind = "127.0.0.1:0"
  ssl_options {
    certfile = "%s"
    keyfile = "%s"
    cacertfile = "%s"
    verify = verify_peer
    fail_if_no_peer_cert = true
  }
}
""" % (pki["server"]["crt"], pki["server"]["key"], pki["ca"]) + extra


class Http:
    """A tiny client for the API: JSON in and out, the token kept after login()."""

    def __init__(self, broker):
        self.port = broker.ports[("http", "dashboard")]
        self.token = None

    def call(self, method, path, body=None, token=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {}
        tok = token if token is not None else self.token
        if tok:
            headers["Authorization"] = "Bearer " + tok
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, data, headers)
        r = conn.getresponse()
        text = r.read()
        conn.close()
        self.headers = dict(r.getheaders())
        return r.status, (json.loads(text) if text else None)

    def login(self, username="admin", password="public"):
        status, body = self.call("POST", "/api/v5/login", {"username": username, "password": password})
        assert status == 200, body
        self.token = body["token"]
        return self


_running = []


@pytest.fixture(autouse=True)
def _stop_brokers():
    yield
    while _running:
        _running.pop().stop()


def start(make_broker, text=DASH, listeners=LISTEN, tmp_path=None):
    """A broker with the dashboard; with tmp_path, in that folder, so a restart finds its files."""
    require_gatemq()
    if tmp_path is None:
        return make_broker(text, listeners=listeners)
    b = BrokerProcess(text, tmp_path=tmp_path, listeners=listeners)
    _running.append(b)
    return b


def tls_client(b, pki, dev, cid="", version=V5):
    c = Client(b.ports[("ssl", "mtls")], client_id=cid, version=version, host="localhost")
    c.c.tls_set(ca_certs=pki["ca"], certfile=pki["clients"][dev]["crt"], keyfile=pki["clients"][dev]["key"])
    return c.connect()


def listed(api, **query):
    qs = "&".join("%s=%s" % kv for kv in query.items())
    status, body = api.call("GET", "/api/v5/clients" + ("?" + qs if qs else ""))
    assert status == 200, body
    return body


# ---- login and tokens ----

def test_every_call_without_a_valid_token_is_401(make_broker):
    b = start(make_broker)
    api = Http(b)
    for path in ("/api/v5/clients", "/api/v5/configs/mqtt", "/api/v5/stats", "/api/v5/metrics",
                 "/api/v5/listeners", "/api/v5/clients/x", "/api/v5/nothing-here"):
        status, body = api.call("GET", path)
        assert status == 401 and body["code"] == "BAD_TOKEN", (path, status, body)
    assert api.call("PUT", "/api/v5/configs/mqtt", {"peer_cert_as_username": "dn"})[0] == 401
    assert api.call("DELETE", "/api/v5/clients/x")[0] == 401
    assert api.call("GET", "/api/v5/stats", token="not-a-token")[0] == 401
    status, body = api.call("POST", "/api/v5/login", {"username": "admin", "password": "wrong"})
    assert status == 401 and body["code"] == "BAD_USERNAME_OR_PWD"
    assert api.call("POST", "/api/v5/login", {"username": "root", "password": "public"})[0] == 401
    api.login()
    assert api.call("GET", "/api/v5/stats")[0] == 200
    # A token for another name with this token's signature is refused.
    head, sig = api.token.split(".")
    forged = bytes.fromhex(head).replace(b"admin", b"root!").hex() + "." + sig
    assert api.call("GET", "/api/v5/stats", token=forged)[0] == 401
    assert api.call("GET", "/api/v5/stats", token=api.token[:-2] + "00")[0] == 401


def test_token_expires(make_broker):
    b = start(make_broker, DASH + "dashboard.token_expired_time = 1s\n")
    api = Http(b).login()
    assert api.call("GET", "/api/v5/stats")[0] == 200
    time.sleep(1.3)
    status, body = api.call("GET", "/api/v5/stats")
    assert status == 401 and body["code"] == "TOKEN_TIME_OUT"


def test_login_attempts_are_rate_limited(make_broker):
    b = start(make_broker)
    api = Http(b)
    for _ in range(5):
        assert api.call("POST", "/api/v5/login", {"username": "admin", "password": "guess"})[0] == 401
    # Even the right password waits now.
    status, body = api.call("POST", "/api/v5/login", {"username": "admin", "password": "public"})
    assert status == 429 and body["code"] == "TOO_MANY_REQUESTS", body
    assert 1 <= int(api.headers["Retry-After"]) <= 61


def test_first_admin_is_stored_hashed_and_kept_across_restarts(make_broker, tmp_path):
    b = start(make_broker, DASH + 'dashboard.default_password = "first-secret"\n', tmp_path=tmp_path)
    Http(b).login("admin", "first-secret")
    b.stop()
    stored = open(os.path.join(tmp_path, "data", "admins.json")).read()
    assert "first-secret" not in stored and "admin" in stored
    # default_password only seeds the first start; afterwards the stored hash counts.
    b2 = start(make_broker, DASH + 'dashboard.default_password = "second"\n', tmp_path=tmp_path)
    api = Http(b2)
    assert api.call("POST", "/api/v5/login", {"username": "admin", "password": "second"})[0] == 401
    api.login("admin", "first-secret")
    # Changing the password ends the old session and works after a restart.
    status, body = api.call("POST", "/api/v5/users/admin/change_pwd",
                            {"old_pwd": "first-secret", "new_pwd": "changed-pw-1"})
    assert status == 204, body
    assert api.call("GET", "/api/v5/stats")[0] == 401
    b2.stop()
    b3 = start(make_broker, DASH, tmp_path=tmp_path)
    Http(b3).login("admin", "changed-pw-1")


# ---- GET/PUT /api/v5/configs/mqtt ----

def test_bad_values_are_400_with_the_field_and_the_reason(make_broker, tmp_path):
    b = start(make_broker, tmp_path=tmp_path)
    api = Http(b).login()
    cases = [
        ({"peer_cert_as_username": "fingerprint"}, "mqtt.peer_cert_as_username", "disabled|cn|dn|crt|pem|md5"),
        ({"max_inflight": 0}, "mqtt.max_inflight", "1..65535"),
        ({"idle_timeout": "soon"}, "mqtt.idle_timeout", "duration"),
        ({"use_username_as_clientid": "yes"}, "mqtt.use_username_as_clientid", "true"),
        ({"peer_cert_as_usrname": "dn"}, "mqtt.peer_cert_as_usrname", "did you mean peer_cert_as_username"),
    ]
    for body, field, reason in cases:
        status, err = api.call("PUT", "/api/v5/configs/mqtt", body)
        assert status == 400, (body, err)
        assert err["code"] == "BAD_REQUEST"
        assert err["message"].startswith(field + ": "), err
        assert reason in err["message"], err
    for raw in ("not json", "[1, 2]"):
        status, err = api.call("PUT", "/api/v5/configs/mqtt", raw=raw)
        assert status == 400 and "body" in err["message"], err
    status, m = api.call("GET", "/api/v5/configs/mqtt")
    assert m["peer_cert_as_username"] == "disabled" and m["max_inflight"] == 32
    assert not os.path.exists(os.path.join(tmp_path, "data", "overlay.conf"))


def test_a_change_is_saved_to_the_overlay_and_survives_a_restart(make_broker, tmp_path):
    conf = DASH + "mqtt.max_inflight = 10\nmqtt.idle_timeout = 20s\n"
    b = start(make_broker, conf, tmp_path=tmp_path)
    api = Http(b).login()
    status, m = api.call("GET", "/api/v5/configs/mqtt")
    assert m["max_inflight"] == 10 and m["idle_timeout"] == "20s" and m["max_packet_size"] == "1MB"
    status, m = api.call("PUT", "/api/v5/configs/mqtt",
                         {"peer_cert_as_username": "dn", "max_packet_size": "64KB", "idle_timeout": "20s"})
    assert status == 200, m
    assert m["peer_cert_as_username"] == "dn" and m["max_packet_size"] == "64KB" and m["max_inflight"] == 10
    overlay = open(os.path.join(tmp_path, "data", "overlay.conf")).read()
    # Only what differs from the config file, so the file still decides the rest.
    assert "peer_cert_as_username" in overlay and "max_packet_size" in overlay
    assert "idle_timeout" not in overlay and "max_inflight" not in overlay
    assert not [f for f in os.listdir(os.path.join(tmp_path, "data")) if ".tmp" in f]
    b.stop()
    b2 = start(make_broker, conf.replace("max_inflight = 10", "max_inflight = 12"), tmp_path=tmp_path)
    status, m = Http(b2).login().call("GET", "/api/v5/configs/mqtt")
    assert m["peer_cert_as_username"] == "dn" and m["max_packet_size"] == "64KB"
    assert m["max_inflight"] == 12
    # The saved value is live: a packet over 64KB now ends the connection.
    with Client(b2.port, "big", version=V5) as c:
        c.connect()
        c.publish("t", b"x" * 70000)
        assert c.wait_disconnected() is not None


def test_a_change_applies_to_new_connections_and_leaves_existing_ones_alone(make_broker, pki):
    b = start(make_broker, tls_config(pki, "mqtt.peer_cert_as_username = cn\n"),
              listeners=LISTEN + [("ssl", "mtls")])
    api = Http(b).login()
    old = tls_client(b, pki, "device1", "old-one")
    try:
        assert listed(api, clientid="old-one")["data"][0]["username"] == "device1"
        status, m = api.call("PUT", "/api/v5/configs/mqtt",
                             {"peer_cert_as_username": "dn", "max_topic_alias": 0})
        assert status == 200, m
        new = tls_client(b, pki, "device2", "new-one")
        try:
            rows = {c["clientid"]: c for c in listed(api)["data"]}
            assert rows["old-one"]["username"] == "device1"
            assert rows["new-one"]["username"] == rows["new-one"]["dn"] == "CN=device2,O=gatemq demo"
            assert rows["new-one"]["cn"] == "device2"
            # The old client was told Topic Alias Maximum 65535 at CONNECT; that still holds for it.
            new.subscribe("alias/t")
            old.publish("alias/t", b"1", properties=props(TopicAlias=3))
            assert new.expect().payload == b"1"
            old.publish("", b"2", properties=props(TopicAlias=3))
            assert new.expect().payload == b"2"
            assert old.c.is_connected()
        finally:
            new.disconnect()
    finally:
        old.disconnect()


# ---- clients ----

def test_clients_page_and_filter(make_broker):
    b = start(make_broker)
    api = Http(b).login()
    cs = []
    try:
        for i in range(5):
            cs.append(Client(b.port, "pc-%d" % i, version=V311 if i % 2 else V5, keepalive=40 + i,
                             username="user-%d" % (i % 2)).connect())
            time.sleep(0.01)
        page1 = listed(api, page=1, limit=2)
        assert page1["meta"] == {"page": 1, "limit": 2, "count": 5, "hasnext": True}
        page3 = listed(api, page=3, limit=2)
        assert page3["meta"]["hasnext"] is False and len(page3["data"]) == 1
        ids = [c["clientid"] for p in (1, 2, 3) for c in listed(api, page=p, limit=2)["data"]]
        assert sorted(ids) == ["pc-%d" % i for i in range(5)]
        one = listed(api, clientid="pc-3")["data"]
        assert len(one) == 1
        c = one[0]
        assert c["username"] == "user-1" and c["proto_ver"] == 4 and c["keepalive"] == 43
        assert c["ip_address"] == "127.0.0.1" and c["port"] == cs[3].c.socket().getsockname()[1]
        assert c["connected_at"].endswith("+00:00") and "cn" not in c and "dn" not in c
        assert sorted(x["clientid"] for x in listed(api, username="user-0")["data"]) == ["pc-0", "pc-2", "pc-4"]
        assert listed(api, like_clientid="c-4")["meta"]["count"] == 1
        assert listed(api, clientid="nobody")["data"] == []
        status, got = api.call("GET", "/api/v5/clients/pc-0")
        assert status == 200 and got["clientid"] == "pc-0" and got["proto_ver"] == 5
        status, err = api.call("GET", "/api/v5/clients/nobody")
        assert status == 404 and err["code"] == "CLIENTID_NOT_FOUND"
        assert api.call("GET", "/api/v5/clients?limit=0")[0] == 400
    finally:
        for c in cs:
            c.disconnect()


def test_client_ids_with_slashes_and_spaces_are_found(make_broker):
    b = start(make_broker)
    api = Http(b).login()
    with Client(b.port, "site 1/gw é", version=V5) as c:
        c.connect()
        status, got = api.call("GET", "/api/v5/clients/site%201%2Fgw%20%C3%A9")
        assert status == 200 and got["clientid"] == "site 1/gw é"


def test_kick_disconnects_the_client(make_broker, pki):
    b = start(make_broker, tls_config(pki), listeners=LISTEN + [("ssl", "mtls")])
    api = Http(b).login()
    c = tls_client(b, pki, "device1", "to-kick")
    other = Client(b.port, "stays", version=V5).connect()
    try:
        row = listed(api, clientid="to-kick")["data"][0]
        assert row["cn"] == "device1" and row["dn"] == "CN=device1,O=gatemq demo"
        status, body = api.call("DELETE", "/api/v5/clients/to-kick")
        assert status == 204 and body is None
        assert c.wait_disconnected() == 0x98  # Administrative action
        assert listed(api, clientid="to-kick")["data"] == []
        assert api.call("GET", "/api/v5/clients/to-kick")[0] == 404
        assert api.call("DELETE", "/api/v5/clients/to-kick")[0] == 404
        assert [x["clientid"] for x in listed(api)["data"]] == ["stays"]
        b.wait_log("kicked client to-kick")
    finally:
        other.disconnect()
        c.disconnect()


# ---- stats, metrics, listeners ----

def test_stats_metrics_and_listeners(make_broker, pki):
    b = start(make_broker, tls_config(pki), listeners=LISTEN + [("ssl", "mtls")])
    api = Http(b).login()
    with Client(b.port, "sub", version=V5) as s, Client(b.port, "pub", version=V311) as p:
        s.connect()
        p.connect()
        s.subscribe("m/#")
        before = api.call("GET", "/api/v5/metrics?aggregate=true")[1]
        for i in range(3):
            p.publish("m/%d" % i, b"x", qos=1)
        s.expect_n(3)
        p.publish("m/r", b"keep", retain=True, qos=1)
        s.expect()
        status, st = api.call("GET", "/api/v5/stats?aggregate=true")
        assert st["connections.count"] == 2 and st["live_connections.count"] == 2
        assert st["subscriptions.count"] == 1 and st["retained.count"] == 1 and st["sessions.count"] == 2
        status, per_node = api.call("GET", "/api/v5/stats")
        assert per_node[0]["node"] == "gatemq@127.0.0.1" and per_node[0]["connections.count"] == 2
        status, me = api.call("GET", "/api/v5/metrics?aggregate=true")
        assert me["messages.received"] - before["messages.received"] == 4
        assert me["messages.sent"] - before["messages.sent"] == 4
        status, mon = api.call("GET", "/api/v5/monitor_current")
        assert mon["live_connections"] == 2 and mon["subscriptions"] == 1
    status, ls = api.call("GET", "/api/v5/listeners")
    byid = {x["id"]: x for x in ls}
    assert byid["tcp:default"]["bind"] == "127.0.0.1:%d" % b.port
    assert byid["ssl:mtls"]["bind"] == "127.0.0.1:%d" % b.ports[("ssl", "mtls")]
    assert byid["ssl:mtls"]["type"] == "ssl" and byid["ssl:mtls"]["verify"] == "verify_peer"


def test_dashboard_disabled_serves_nothing(make_broker):
    b = start(make_broker, "dashboard.enable = false\n", listeners=[("tcp", "default")])
    time.sleep(0.3)
    assert not any("dashboard" in line for line in b.log_lines if "listening" in line)


def test_the_page_is_served(make_broker):
    b = start(make_broker)
    conn = http.client.HTTPConnection("127.0.0.1", b.ports[("http", "dashboard")], timeout=5)
    conn.request("GET", "/")
    r = conn.getresponse()
    html = r.read().decode()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/html")
    assert "MQTT Settings" in html and "app.js" in html
    assert "default-src 'self'" in r.getheader("Content-Security-Policy")
    for path in ("/app.js", "/style.css"):
        conn.request("GET", path)
        r = conn.getresponse()
        assert r.status == 200 and len(r.read()) > 1000
    conn.request("GET", "/secret.conf")
    r = conn.getresponse()
    r.read()
    assert r.status == 404


# ---- the MicroPython port's API (ports/micropython/dashboard.py) ----

def test_micropython_port_serves_the_same_api(tmp_path):
    # The real port (micropython -m gatemq.micropython --config FILE), which starts the API
    # because dashboard.enable is true.
    require_gatemq()
    text = DASH + 'dashboard.default_password = "board-pw"\n'

    def boot():
        b = BrokerProcess(text, runtime="micropython", tmp_path=tmp_path, listeners=LISTEN)
        _running.append(b)
        return b

    b = boot()
    api = Http(b)
    for method, path in (("GET", "/api/v5/clients"), ("GET", "/api/v5/stats"), ("GET", "/api/v5/configs/mqtt"),
                         ("PUT", "/api/v5/configs/mqtt")):
        assert api.call(method, path, {} if method == "PUT" else None)[0] == 401, path
    assert api.call("GET", "/api/v5/clients", token="not-a-token")[0] == 401
    assert api.call("POST", "/api/v5/login", {"username": "admin", "password": "public"})[0] == 401
    api.login("admin", "board-pw")
    m = api.call("GET", "/api/v5/configs/mqtt")[1]
    assert m["peer_cert_as_username"] == "disabled" and m["max_inflight"] != 8
    status, err = api.call("PUT", "/api/v5/configs/mqtt", {"peer_cert_as_username": "sha1"})
    assert status == 400 and err["message"].startswith("mqtt.peer_cert_as_username: expected one of")
    with Client(b.port, "mp-old", version=V5) as old:
        old.connect()
        before = old.connack_props.ReceiveMaximum
        status, m = api.call("PUT", "/api/v5/configs/mqtt", {"peer_cert_as_username": "dn", "max_inflight": 8})
        assert status == 200 and m["peer_cert_as_username"] == "dn"
        with Client(b.port, "mp-dev", version=V5, username="u1") as c:
            c.connect()
            # The change applies to the new connection only.
            assert c.connack_props.ReceiveMaximum == 8 and before != 8
            row = listed(api, username="u1")["data"][0]
            assert row["clientid"] == "mp-dev" and row["proto_ver"] == 5
            assert {r["clientid"] for r in listed(api)["data"]} == {"mp-old", "mp-dev"}
            st = api.call("GET", "/api/v5/stats?aggregate=true")[1]
            assert st["live_connections.count"] == 2
            assert api.call("DELETE", "/api/v5/clients/mp-dev")[0] == 204
            assert c.wait_disconnected() == 0x98
        old.publish("mp/still", b"up", qos=1)  # the old connection is untouched
    assert "board-pw" not in open(os.path.join(tmp_path, "data", "admins.json")).read()
    b.stop()
    b = boot()
    api = Http(b).login("admin", "board-pw")
    m = api.call("GET", "/api/v5/configs/mqtt")[1]
    assert m["peer_cert_as_username"] == "dn" and m["max_inflight"] == 8


def test_micropython_port_without_the_dashboard_serves_no_api(tmp_path):
    require_gatemq()
    b = BrokerProcess(DASH + "dashboard.enable = false\n", runtime="micropython", tmp_path=tmp_path)
    _running.append(b)
    assert ("http", "dashboard") not in b.ports and "dashboard" not in b.log()
    assert not os.path.exists(os.path.join(tmp_path, "data"))


def test_https_listener_with_the_demo_certificates(make_broker, pki):
    import ssl
    text = """
dashboard.listeners.http.enable = false
dashboard.listeners.https {
  enable = true
  bind = "127.0.0.1:0"
  ssl_options { certfile = "%s", keyfile = "%s" }
}
""" % (pki["server"]["crt"], pki["server"]["key"])
    b = start(make_broker, text, listeners=[("tcp", "default"), ("https", "dashboard")])
    assert ("http", "dashboard") not in b.ports
    ctx = ssl.create_default_context(cafile=pki["ca"])
    conn = http.client.HTTPSConnection("localhost", b.ports[("https", "dashboard")], context=ctx, timeout=10)
    conn.request("POST", "/api/v5/login", json.dumps({"username": "admin", "password": "public"}))
    r = conn.getresponse()
    token = json.loads(r.read())["token"]
    assert r.status == 200
    conn.request("GET", "/api/v5/stats?aggregate=true", headers={"Authorization": "Bearer " + token})
    r = conn.getresponse()
    assert r.status == 200 and "connections.count" in json.loads(r.read())


def test_a_broken_overlay_file_stops_start_up_with_its_line(tmp_path):
    require_gatemq()
    os.makedirs(os.path.join(tmp_path, "data"))
    with open(os.path.join(tmp_path, "data", "overlay.conf"), "w") as f:
        f.write("mqtt {\n  max_inflight = 0\n}\n")
    with pytest.raises(RuntimeError) as e:
        BrokerProcess(DASH, tmp_path=tmp_path, listeners=LISTEN)
    assert "overlay.conf:2:18: mqtt.max_inflight: expected an integer 1..65535, got 0" in str(e.value)
