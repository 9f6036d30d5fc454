# MQTT over WebSocket on both runtimes (the Makefile's PORT_SUITE runs this under the MicroPython
# port too): paho-mqtt over ws and wss with a client certificate in 3.1.1 and 5.0, a handshake
# refusal and a bad frame closing only its own connection. The CPython port's fuller set is
# test_ws_listeners.py.
import os

import pytest
from cryptography.x509.oid import NameOID

from clients import V311, V5, Client
from conftest import require_gatemq
from test_ws_listeners import CONNACK_OK, CONNECT_311, MASK, RawWS, ws_client
from tlsutil import Events, client_context, server_pki

from gatemq import websocket as W


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    p = server_pki(tmp_path_factory.mktemp("pki"))
    p.dev = p.leaf(p.root, "dev", [(NameOID.ORGANIZATION_NAME, "acme"), (NameOID.COMMON_NAME, "ws-dev")])
    return p


@pytest.fixture(scope="module")
def b(pki, tmp_path_factory):
    from brokers import BrokerProcess
    x = BrokerProcess("""
listeners.ws.default.bind = "127.0.0.1:0"
listeners.wss.default {
  bind = "127.0.0.1:0"
  ssl_options { certfile = "%s", keyfile = "%s", cacertfile = "%s", verify = verify_peer,
                fail_if_no_peer_cert = true, versions = ["tlsv1.2"] }
}
mqtt.peer_cert_as_username = cn
""" % (pki.server.crt, pki.server.key, pki.root.crt), tmp_path=tmp_path_factory.mktemp("b"),
        listeners=[("tcp", "default"), ("ws", "default"), ("wss", "default")])
    yield x
    x.stop()


@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
def test_ws_pubsub(b, version, uid):
    sub = ws_client(b.ports[("ws", "default")], uid + "-ws", version).connect()
    tcp = Client(b.port, uid + "-tcp", V5).connect()
    try:
        assert sub.subscribe(uid + "/#", 1) == [1]
        data = os.urandom(70000)      # past 65535: the 8-byte frame length
        tcp.publish(uid + "/a", b"hi", qos=1)
        tcp.publish(uid + "/b", data, qos=1)
        assert sub.expect().payload == b"hi"
        assert sub.expect(10).payload == data
        assert tcp.subscribe(uid + "/back", 1) == [1]
        sub.publish(uid + "/back", b"from ws", qos=1)
        assert tcp.expect().payload == b"from ws"
    finally:
        sub.disconnect()
        tcp.disconnect()


@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
def test_wss_with_client_certificate(b, pki, version, uid):
    ev = Events(b)
    ctx = client_context(pki.root.crt, pki.dev.chain, pki.dev.key)
    c = ws_client(b.ports[("wss", "default")], uid, version, tls=ctx).connect()
    try:
        assert ev.connected(match=lambda cid: cid == uid)["username"] == "ws-dev"
        assert c.subscribe(uid, 1) == [1]
        c.publish(uid, b"wss", qos=1)
        assert c.expect().payload == b"wss"
    finally:
        c.disconnect()
        ev.close()


def test_refusal_and_bad_frame_close_only_that_connection(b, uid):
    from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, RejectConnection
    port = b.ports[("ws", "default")]
    r = RawWS(port, path="/elsewhere")
    ev = r.events()
    assert isinstance(ev[0], RejectConnection) and ev[0].status_code == 404
    bystander = ws_client(port, uid + "-ok", V311).connect()
    try:
        r = RawWS(port)
        assert isinstance(r.events()[0], AcceptConnection)
        r.send(BytesMessage(data=CONNECT_311))
        got = b""
        while len(got) < 4:
            got += b"".join(e.data for e in r.events() if isinstance(e, BytesMessage))
        assert got == CONNACK_OK
        r.s.sendall(W.frame(W.TEXT, b"text", mask=MASK))
        r.ws.receive_data(r.read_all())
        closes = [e for e in r.ws.events() if isinstance(e, CloseConnection)]
        assert closes and closes[0].code == 1003
        assert bystander.subscribe(uid, 0) == [0]
        bystander.publish(uid, b"still here")
        assert bystander.expect().payload == b"still here"
    finally:
        bystander.disconnect()
