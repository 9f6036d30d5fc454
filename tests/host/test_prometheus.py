# GET /api/v5/prometheus/stats: the Prometheus text format with EMQX's names (gatemq_ prefix),
# public or behind the API's credentials (prometheus.enable_basic_auth), scraped by Debian's real
# `prometheus` (started here; skipped only when the package cannot be installed), and the
# MicroPython port's same endpoint.
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from brokers import BrokerProcess, free_port
from clients import V311, V5, Client
from conftest import require_gatemq
from tlsutil import client_context, server_pki
import rawmqtt as R
from test_prometheus_text import _samples as samples   # tests/core: the same text checks

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DASH = 'dashboard.listeners.http.bind = "127.0.0.1:0"\n'


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    return server_pki(tmp_path_factory.mktemp("pki"), device_cn="dev")


def conf(pki, extra=""):
    return DASH + """
listeners.ws.default.bind = "127.0.0.1:0"
listeners.ssl.default {
  bind = "127.0.0.1:0"
  ssl_options { certfile = "%s", keyfile = "%s", cacertfile = "%s", verify = verify_peer, fail_if_no_peer_cert = true }
}
""" % (pki.server.crt, pki.server.key, pki.root.crt) + extra


LISTEN = [("tcp", "default"), ("ws", "default"), ("ssl", "default"), ("http", "dashboard")]


def get(b, path="/api/v5/prometheus/stats", headers=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (b.ports[("http", "dashboard")], path),
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def traffic(b, pki, uid):
    sub = Client(b.port, uid + "-s", V5).connect()
    assert sub.subscribe(uid + "/#", 1) == [1]
    pub = Client(b.port, uid + "-p", V311).connect()
    for i in range(3):
        pub.publish(uid + "/q1", b"x" * 10, qos=1)
    pub.publish(uid + "/q0", b"y", qos=0)
    sub.expect_n(4)
    # An ACL denial: no client may publish to $SYS (authorization.deny_sys_publish).
    mark = b.mark()
    pub.publish("$SYS/forged", b"z", qos=0)
    b.wait_log("deny_sys_publish", start=mark)
    # A TLS client without a certificate: refused with the word no_peer_cert.
    mark = b.mark()
    s = socket.create_connection(("127.0.0.1", b.ports[("ssl", "default")]), timeout=5)
    try:
        s = client_context(pki.root.crt).wrap_socket(s, server_hostname="127.0.0.1")
        s.sendall(b"\x10\x00")
        s.recv(10)
    except (ssl.SSLError, OSError):
        pass
    s.close()
    b.wait_log_all(["rejected: no_peer_cert"], start=mark)
    return sub, pub


def test_stats_text_format_and_values(make_broker, pki, uid):
    b = make_broker(conf(pki), listeners=LISTEN)
    status, ctype, text = get(b)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    s = samples(text)
    assert s["gatemq_messages_qos1_received"] == 0
    sub, pub = traffic(b, pki, uid)
    s = samples(get(b)[2])
    assert s["gatemq_connections_count"] == 2
    assert s['gatemq_listener_connections_count{listener="tcp:default",type="tcp",name="default"}'] == 2
    assert s['gatemq_listener_connections_count{listener="ws:default",type="ws",name="default"}'] == 0
    assert s["gatemq_subscriptions_count"] == 1 and s["gatemq_sessions_count"] == 2
    assert s["gatemq_messages_qos1_received"] == 3 and s["gatemq_messages_qos1_sent"] == 3
    assert s["gatemq_messages_qos0_received"] >= 1 and s["gatemq_messages_qos0_sent"] >= 1
    assert s["gatemq_bytes_received"] > 0 and s["gatemq_bytes_sent"] > 0
    assert s["gatemq_authentication_success"] == 2
    assert s['gatemq_authentication_failure_by_reason{reason="no_peer_cert"}'] == 1
    assert s["gatemq_authentication_failure"] == 1
    assert s['gatemq_authorization_deny_by_action{action="publish"}'] == 1
    exp = s['gatemq_cert_expiry_at{listener_type="ssl",listener_name="default"}']
    assert abs(exp - pki.server.cert.not_valid_after_utc.timestamp()) < 1
    sub.disconnect()
    pub.disconnect()


def test_enable_basic_auth_keeps_it_behind_the_credentials(make_broker, pki):
    b = make_broker(conf(pki, "prometheus.enable_basic_auth = true\n"), listeners=LISTEN)
    status, _, body = get(b)
    assert status == 401 and "enable_basic_auth" in body
    basic = "Basic " + base64.b64encode(b"admin:public").decode()
    status, _, text = get(b, headers={"Authorization": basic})
    assert status == 200 and "gatemq_connections_count" in text
    bad = "Basic " + base64.b64encode(b"admin:wrong").decode()
    assert get(b, headers={"Authorization": bad})[0] == 401
    tok = json.loads(urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%d/api/v5/login" % b.ports[("http", "dashboard")],
        data=b'{"username": "admin", "password": "public"}'), timeout=10).read())["token"]
    assert get(b, headers={"Authorization": "Bearer " + tok})[0] == 200


@pytest.fixture(scope="module")
def prometheus_bin():
    if not os.path.exists(PROMETHEUS):
        # `make test-tools` installs it; skip only when it could not.
        r = subprocess.run("(apt-get install -y -qq prometheus || sudo -n apt-get install -y -qq prometheus)",
                           shell=True, capture_output=True)
        if not os.path.exists(PROMETHEUS):
            pytest.skip("Debian's prometheus package cannot be installed here: %s" % r.stderr[-200:])
    return PROMETHEUS


def query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (port, urllib.parse.quote(q))
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


def wait_query(port, q, pred, timeout=40):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = query(port, q)
            if pred(last):
                return last
        except OSError as e:
            last = e
        time.sleep(0.5)
    raise AssertionError("prometheus query %r never satisfied: %r" % (q, last))


def test_a_real_prometheus_scrapes_gatemq(make_broker, pki, prometheus_bin, tmp_path, uid):
    open_b = make_broker(conf(pki), listeners=LISTEN)
    shut_b = make_broker(conf(pki, "prometheus.enable_basic_auth = true\n"), listeners=LISTEN)
    sub, pub = traffic(open_b, pki, uid)
    port = free_port()
    yml = tmp_path / "prometheus.yml"
    job = """  - job_name: %s
    scrape_interval: 1s
    metrics_path: /api/v5/prometheus/stats
    static_configs: [{targets: ["127.0.0.1:%d"]}]
"""
    yml.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
                   + job % ("open", open_b.ports[("http", "dashboard")])
                   + job % ("basic", shut_b.ports[("http", "dashboard")])
                   + "    basic_auth: {username: admin, password: public}\n"
                   + job % ("wrongpw", shut_b.ports[("http", "dashboard")])
                   + "    basic_auth: {username: admin, password: nope}\n")
    proc = subprocess.Popen([prometheus_bin, "--config.file=%s" % yml, "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"))
    try:
        r = wait_query(port, 'gatemq_messages_qos1_received{job="open"}', lambda r: r)
        assert r[0]["value"][1] == "3"
        r = wait_query(port, 'gatemq_authentication_failure_by_reason{job="open",reason="no_peer_cert"}', lambda r: r)
        assert r[0]["value"][1] == "1"
        r = wait_query(port, 'gatemq_listener_connections_count{job="open",listener="tcp:default"}', lambda r: r)
        assert r[0]["value"][1] == "2"
        # Behind basic auth: the right password scrapes (up 1), a wrong one does not (up 0).
        wait_query(port, 'up{job="basic"}', lambda r: r and r[0]["value"][1] == "1")
        wait_query(port, 'gatemq_connections_count{job="basic"}', lambda r: r)
        wait_query(port, 'up{job="wrongpw"}', lambda r: r and r[0]["value"][1] == "0")
        assert query(port, 'gatemq_connections_count{job="wrongpw"}') == []
    finally:
        proc.terminate()
        proc.wait(10)
        sub.disconnect()
        pub.disconnect()


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_persistence_store_bytes_is_the_store_on_disk(make_broker, pki, runtime):
    # Without persistence the family is absent; with it, the store's bytes (the SQLite pages and
    # WAL, or the log), which grow as the store takes a retained message.
    b = make_broker(conf(pki), runtime=runtime, listeners=LISTEN)
    assert "persistence_store_bytes" not in get(b)[2]
    b = make_broker(conf(pki, "persistence.enable = true\n"), runtime=runtime, listeners=LISTEN)
    before = samples(get(b)[2])["gatemq_persistence_store_bytes"]
    assert before > 0
    c = R.RawClient(b.port, 4)
    assert c.connect("keeper").rc == 0
    c.send(R.publish("keep/big", b"x" * 50000, 1, retain=True, pid=1))
    assert c.expect(R.PUBACK).pid == 1
    c.close()
    after = samples(get(b)[2])["gatemq_persistence_store_bytes"]
    assert after >= before + 50000, (before, after)


def test_micropython_port_serves_the_endpoint(make_broker, pki, uid):
    b = make_broker(conf(pki), runtime="micropython", listeners=LISTEN)
    sub, pub = traffic(b, pki, uid)
    status, ctype, text = get(b)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    s = samples(text)
    assert s["gatemq_messages_qos1_received"] == 3 and s["gatemq_connections_count"] == 2
    assert s['gatemq_listener_connections_count{listener="tcp:default",type="tcp",name="default"}'] == 2
    # The TLS refusal word is counted there too (the core's broker.tls_refused).
    assert s['gatemq_authentication_failure_by_reason{reason="no_peer_cert"}'] == 1
    assert s['gatemq_authorization_deny_by_action{action="publish"}'] == 1
    sub.disconnect()
    pub.disconnect()
