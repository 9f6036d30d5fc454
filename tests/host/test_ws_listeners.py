# MQTT over WebSocket on the CPython port: paho-mqtt with transport="websockets" over wss with a
# client certificate (3.1.1 and 5.0), the certificate checks and mapping of an ssl listener on wss,
# the handshake refusals, and a bad frame closing that one connection. Publish/subscribe between ws
# and TCP clients is in test_mqtt_ws.py (both runtimes).
import json
import os
import socket
import ssl

import paho.mqtt.client as mqtt
import pytest
from cryptography.x509.oid import NameOID

from clients import V311, V5, Client
from conftest import require_gatemq
from tlsutil import Events, client_context, server_pki

from gatemq import websocket as W

pytestmark = pytest.mark.skipif(os.environ.get("GATEMQ_TEST_RUNTIME", "cpython") != "cpython",
                                reason="the CPython port's ws listeners (tests/host/test_mqtt_ws.py runs on both)")

MASK = b"\x01\x02\x03\x04"


def ws_client(port, client_id, version=V5, path="/mqtt", tls=None, username=None, subprotocol=None, origin=None):
    """clients.Client, speaking MQTT over WebSocket (paho's transport="websockets")."""
    cl = Client(port, client_id, version, username=username)
    old = cl.c
    kw = {} if version == V5 else {"clean_session": True}
    new = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version,
                      transport="websockets", reconnect_on_failure=False, **kw)
    for a in ("on_connect", "on_disconnect", "on_message", "on_subscribe", "on_unsubscribe"):
        setattr(new, a, getattr(old, a))
    if username is not None:
        new.username_pw_set(username)
    headers = {}
    if subprotocol:
        headers["Sec-WebSocket-Protocol"] = subprotocol
    if origin:
        headers["Origin"] = origin
    new.ws_set_options(path=path, headers=headers or None)
    if tls is not None:
        new.tls_set_context(tls)
    cl.c = new
    return cl


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    p = server_pki(tmp_path_factory.mktemp("pki"))
    cn = lambda v: [(NameOID.ORGANIZATION_NAME, "acme"), (NameOID.COMMON_NAME, v)]  # noqa: E731
    p.dev1 = p.leaf(p.root, "dev1", cn("dev-one"))
    p.revoked = p.leaf(p.root, "revoked", cn("revoked"))
    p.noeku = p.leaf(p.root, "noeku", cn("noeku"), eku=None)
    p.other = p.ca("other-root")
    p.stranger = p.leaf(p.other, "stranger", cn("stranger"))
    p.crl = p.crl(p.root, [p.revoked], p.folder + "/crl.pem")
    return p


def config(pki, extra=""):
    return """
dashboard.enable = false
listeners.ws.default { bind = "127.0.0.1:0", websocket.mqtt_path = "/mqtt" }
listeners.wss.default {
  bind = "127.0.0.1:0"
  websocket.mqtt_path = "/mqtt"
  ssl_options {
    certfile = "%s", keyfile = "%s", cacertfile = "%s"
    verify = verify_peer, fail_if_no_peer_cert = true
    enable_crl_check = true, crlfile = "%s"
    verify_peer_ext_key_usage = "clientAuth"
  }
}
listeners.ssl.default {
  bind = "127.0.0.1:0"
  ssl_options {
    certfile = "%s", keyfile = "%s", cacertfile = "%s"
    verify = verify_peer, fail_if_no_peer_cert = true
    enable_crl_check = true, crlfile = "%s"
    verify_peer_ext_key_usage = "clientAuth"
  }
}
mqtt.peer_cert_as_username = cn
""" % ((pki.server.crt, pki.server.key, pki.root.crt, pki.crl) * 2) + extra


@pytest.fixture(scope="module")
def wsb(pki, tmp_path_factory):
    from brokers import BrokerProcess
    b = BrokerProcess(config(pki), tmp_path=tmp_path_factory.mktemp("wsb"),
                      listeners=[("tcp", "default"), ("ws", "default"), ("wss", "default"), ("ssl", "default")])
    yield b
    b.stop()


@pytest.fixture(scope="module", params=["cpython", "micropython"])
def wsb_both(request, pki, tmp_path_factory):
    # The same listeners on either port (this module's other tests run on CPython only).
    from brokers import BrokerProcess
    b = BrokerProcess(config(pki), runtime=request.param, tmp_path=tmp_path_factory.mktemp("wsb"),
                      listeners=[("tcp", "default"), ("ws", "default"), ("wss", "default"), ("ssl", "default")])
    yield b
    b.stop()


def wss_mapped_pubsub(b, ctx, uid, version, username, topic, payload):
    """A wss client with the certificate in CTX connects as USERNAME (its connected event) and gets
    back what it publishes to TOPIC at QoS 1."""
    ev = Events(b)
    c = ws_client(b.ports[("wss", "default")], uid, version, tls=ctx).connect()
    try:
        assert ev.connected(match=lambda cid: cid == uid)["username"] == username
        assert c.subscribe(topic, 1) == [1]
        c.publish(topic, payload, qos=1)
        assert c.expect().payload == payload
    finally:
        c.disconnect()
        ev.close()


@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
def test_wss_client_certificate_is_mapped_like_ssl(wsb, pki, version, uid):
    # peer_cert_as_username = cn
    wss_mapped_pubsub(wsb, client_context(pki.root.crt, pki.dev1.chain, pki.dev1.key), uid, version,
                      "dev-one", uid + "/t", b"over wss")


@pytest.mark.parametrize("case, word", [("revoked", "revoked"), ("noeku", "ext_key_usage"),
                                        ("stranger", "unknown_ca"), (None, "no_peer_cert")])
def test_wss_refuses_with_the_ssl_listener_words(wsb_both, pki, case, word, uid):
    # Both ports: the wss listener checks a client certificate as the ssl listener does.
    wsb = wsb_both
    dev = getattr(pki, case) if case else None
    for kind in ("wss", "ssl"):
        mark = wsb.mark()
        ctx = client_context(pki.root.crt, dev.chain if dev else None, dev.key if dev else None)
        s = socket.create_connection(("127.0.0.1", wsb.ports[(kind, "default")]), timeout=5)
        port = s.getsockname()[1]
        try:
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
            s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
            data = s.recv(100)
        except (ssl.SSLError, OSError):
            data = b""
        finally:
            s.close()
        assert data == b""
        line = wsb.wait_log_all(["%s:default" % kind, "rejected: " + word, "127.0.0.1:%d" % port], start=mark)
        assert "TLS client" in line
    # Positive control: dev1's certificate connects over wss and is mapped.
    wss_mapped_pubsub(wsb, client_context(pki.root.crt, pki.dev1.chain, pki.dev1.key), uid, V5,
                      "dev-one", uid + "/t", b"over wss")


class RawWS:
    """A WebSocket client on a plain socket, with wsproto doing the client side."""

    def __init__(self, port, path="/mqtt", subprotocols=("mqtt",), headers=()):
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import Request
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.s.sendall(self.ws.send(Request(host="127.0.0.1", target=path, subprotocols=list(subprotocols),
                                            extra_headers=list(headers))))

    def events(self):
        data = self.s.recv(65536)
        self.ws.receive_data(data or None)
        return list(self.ws.events())

    def read_all(self):
        out = b""
        while True:
            try:
                d = self.s.recv(65536)
            except OSError:
                return out
            if not d:
                return out
            out += d

    def send(self, event):
        self.s.sendall(self.ws.send(event))

    def connect_mqtt(self):
        """The handshake is accepted and a 3.1.1 CONNECT inside it gets CONNACK accepted."""
        from wsproto.events import AcceptConnection, BytesMessage
        assert isinstance(self.events()[0], AcceptConnection)
        self.send(BytesMessage(data=CONNECT_311))
        got = b""
        while len(got) < 4:
            got += b"".join(e.data for e in self.events() if isinstance(e, BytesMessage))
        assert got == CONNACK_OK
        return self

    def closes_after(self, data):
        """The close frames the broker sends after these raw bytes, up to the end of the socket."""
        from wsproto.events import CloseConnection
        self.s.sendall(data)
        self.ws.receive_data(self.read_all())
        return [e for e in self.ws.events() if isinstance(e, CloseConnection)]


CONNECT_311 = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 1]) + b"r"
CONNACK_OK = bytes([0x20, 2, 0, 0])


def test_handshake_refusals_are_http_answers(wsb):
    from wsproto.events import AcceptConnection, RejectConnection
    port = wsb.ports[("ws", "default")]
    ok = RawWS(port)
    assert isinstance(ok.events()[0], AcceptConnection)     # positive control
    ok.s.close()
    for kw, status in ((dict(path="/nope"), 404), (dict(subprotocols=()), 400), (dict(subprotocols=("stomp",)), 400)):
        mark = wsb.mark()
        r = RawWS(port, **kw)
        ev = r.events()
        assert isinstance(ev[0], RejectConnection) and ev[0].status_code == status, (kw, ev)
        assert r.read_all() == b""                          # and the connection is closed
        wsb.wait_log_all(["ws:default", "WebSocket handshake refused: %d" % status], start=mark)


def test_mqtt_inside_a_raw_websocket_and_bad_frames_close_only_that_connection(wsb, uid):
    port = wsb.ports[("ws", "default")]
    bystander = ws_client(port, uid + "-ok", V5).connect()
    try:
        for bad, code in ((W.frame(W.BINARY, CONNECT_311), 1002),               # unmasked
                          (W.frame(W.TEXT, b"hello", mask=MASK), 1003),         # text
                          (bytes([0xC2, 0x80]) + MASK, 1002),                   # RSV1
                          (W.frame(W.CONT, b"x", mask=MASK), 1002)):
            # MQTT works on this connection (positive control) ...
            r = RawWS(port).connect_mqtt()
            # ... until the bad frame: a close frame with the code, then the end of the socket.
            closes = r.closes_after(bad)
            assert closes and closes[0].code == code, (bad, closes)
        assert bystander.c.is_connected()
        bystander.publish(uid + "/still", b"1", qos=1)
    finally:
        bystander.disconnect()


def test_proxy_headers_give_the_client_address(wsb, uid):
    ev = Events(wsb)
    r = RawWS(wsb.ports[("ws", "default")], headers=[(b"X-Forwarded-For", b"203.0.113.9"),
                                                     (b"X-Forwarded-Port", b"41234")])
    from wsproto.events import AcceptConnection, BytesMessage
    assert isinstance(r.events()[0], AcceptConnection)
    cid = uid.encode()
    r.send(BytesMessage(data=bytes([0x10, 12 + len(cid), 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, len(cid)]) + cid))
    e = ev.connected(match=lambda c: c == uid)
    assert e["ipaddress"] == "203.0.113.9"
    r.s.close()
    ev.close()


def test_ws_options(make_broker, uid):
    b = make_broker("""
dashboard.enable = false
listeners.ws.o {
  bind = "127.0.0.1:0"
  websocket { mqtt_path = "/x/mqtt", max_frame_size = 1KB, fail_if_no_subprotocol = false,
              check_origin_enable = true, check_origins = "http://gw.local:1880" }
}
""", listeners=[("tcp", "default"), ("ws", "o")])
    from wsproto.events import BytesMessage, RejectConnection
    port = b.ports[("ws", "o")]
    r = RawWS(port, path="/x/mqtt", subprotocols=(), headers=[(b"Origin", b"http://gw.local:1880")]).connect_mqtt()
    closes = r.closes_after(r.ws.send(BytesMessage(data=b"\xc0\x00" + b"\x00" * 1100)))  # a frame over max_frame_size
    assert closes and closes[0].code == 1009
    r = RawWS(port, path="/x/mqtt", headers=[(b"Origin", b"http://evil.example")])
    ev = r.events()
    assert isinstance(ev[0], RejectConnection) and ev[0].status_code == 403
    # paho with the configured path and an allowed origin connects (paho sends its own Origin).
    c = ws_client(port, uid, V311, path="/x/mqtt", origin="http://gw.local:1880").connect()
    c.disconnect()
