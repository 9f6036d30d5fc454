# MQTT.js (npm mqtt, installed into tests/js by `make test-tools`) over the CPython port's ws
# listener: under Node in MQTT 3.1.1 and 5.0, over wss with a client certificate on both ports, and
# in the real headless Chromium of the Dashboard test, where a page connects with MQTT.js,
# subscribes and shows a message a TCP client published.
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading

import pytest

from brokers import ROOT
from clients import V5, Client
from conftest import require_gatemq
from test_dashboard_browser import browser, by_id, shot, wait_for  # noqa: F401 (browser is a fixture)

JS = os.path.join(ROOT, "tests", "js")
MQTTJS = os.path.join(JS, "node_modules", "mqtt", "dist", "mqtt.min.js")
NODE = shutil.which("node") or "/usr/bin/node"

pytestmark = pytest.mark.skipif(os.environ.get("GATEMQ_TEST_RUNTIME", "cpython") != "cpython",
                                reason="the CPython port's ws listeners")


@pytest.fixture
def mqttjs():
    require_gatemq()
    assert os.path.exists(MQTTJS) and os.path.exists(NODE), \
        "MQTT.js is missing: run `make test-tools` (npm install in tests/js)"


def ws_broker(make_broker, extra=""):
    return make_broker('dashboard.enable = false\nlisteners.ws.default.bind = "127.0.0.1:0"\n' + extra,
                       listeners=[("tcp", "default"), ("ws", "default")])


def _node_roundtrip(b, uid, version, url, *tls):
    # MQTT.js connects to url, subscribes, gets what a TCP client publishes and echoes it back.
    tcp = Client(b.port, uid + "-tcp", V5).connect()
    assert tcp.subscribe(uid + "/reply", 1) == [1]
    p = subprocess.Popen([NODE, os.path.join(JS, "mqttjs_client.js"), url, str(version), uid + "/to-js", uid + "/reply"]
                         + [str(x) for x in tls], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=JS)
    try:
        events = []

        def next_event():
            line = p.stdout.readline()
            assert line, "node ended: %s" % p.stderr.read().decode()[-500:]
            events.append(json.loads(line))
            return events[-1]
        assert next_event()["event"] == "connected", events
        assert next_event() == {"event": "subscribed", "granted": [1]}
        b.wait_log_all(["connected (MQTT %s" % ("5.0" if version == 5 else "3.1.1"), "mqttjs-%d" % version])
        tcp.publish(uid + "/to-js", b"from tcp", qos=1)
        assert next_event() == {"event": "message", "topic": uid + "/to-js", "payload": "from tcp", "qos": 1}
        m = tcp.expect()
        assert m.payload == b"echo:from tcp"
        assert next_event()["event"] == "ended"
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        tcp.disconnect()


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
def test_mqttjs_under_node(make_broker, mqttjs, version, uid):
    b = ws_broker(make_broker)
    _node_roundtrip(b, uid, version, "ws://127.0.0.1:%d/mqtt" % b.ports[("ws", "default")])


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_mqttjs_over_wss_with_a_client_certificate(make_broker, mqttjs, tmp_path, runtime, uid):
    # MQTT.js under Node over wss, presenting a client certificate: mapped to its CN as on an ssl
    # listener (peer_cert_as_username = cn), on both ports (the MicroPython one speaks TLS 1.2).
    from tlsutil import Events, server_pki
    from cryptography.x509.oid import NameOID
    pki = server_pki(tmp_path / "pki")
    dev = pki.leaf(pki.root, "js", [(NameOID.COMMON_NAME, "js-device")])
    b = make_broker("""dashboard.enable = false
listeners.wss.default {
  bind = "127.0.0.1:0"
  ssl_options { certfile = "%s", keyfile = "%s", cacertfile = "%s", verify = verify_peer,
                fail_if_no_peer_cert = true, versions = ["tlsv1.2"] }
}
mqtt.peer_cert_as_username = cn
""" % (pki.server.crt, pki.server.key, pki.root.crt), runtime=runtime,
                    listeners=[("tcp", "default"), ("wss", "default")])
    ev = Events(b)
    _node_roundtrip(b, uid, 5, "wss://localhost:%d/mqtt" % b.ports[("wss", "default")],
                    pki.root.crt, dev.crt, dev.key)
    assert ev.connected(match=lambda cid: cid.startswith("mqttjs-5"))["username"] == "js-device"
    ev.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def translate_path(self, path):
        name = path.split("?", 1)[0].lstrip("/")
        return MQTTJS if name == "mqtt.min.js" else os.path.join(JS, "ws_page.html")


@pytest.fixture
def page_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=JS))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_mqttjs_in_chromium_shows_a_message_from_tcp(make_broker, mqttjs, browser, page_server, uid):  # noqa: F811
    d = browser
    origin = "http://127.0.0.1:%d" % page_server
    # The origin check on, naming the page's origin: the browser's Origin header is accepted.
    b = ws_broker(make_broker, 'listeners.ws.default.websocket { check_origin_enable = true, check_origins = "%s" }\n'
                  % origin)
    d.get("%s/ws_page.html?port=%d&topic=%s/%%23&v=5" % (origin, b.ports[("ws", "default")], uid))
    wait_for(lambda: by_id(d, "status").text == "subscribed", what="the page's MQTT.js subscription")
    tcp = Client(b.port, uid + "-tcp", V5).connect()
    tcp.publish(uid + "/hello", b"hello browser", qos=1)
    wait_for(lambda: "%s/hello hello browser" % uid in by_id(d, "messages").text, what="the message on the page")
    shot(d, "ws-mqttjs-page")
    tcp.disconnect()
    # Another origin is refused at the handshake: the page says so.
    b2 = ws_broker(make_broker, 'listeners.ws.default.websocket { check_origin_enable = true, '
                                'check_origins = "http://gw.example" }\n')
    d.get("%s/ws_page.html?port=%d&topic=x&v=5" % (origin, b2.ports[("ws", "default")]))
    b2.wait_log_all(["ws:default", "refused: 403", origin])
    assert by_id(d, "status").text != "subscribed"
