# MQTT over WebSocket on both runtimes (the Makefile's PORT_SUITE runs this under the MicroPython
# port too): paho-mqtt over ws and wss with a client certificate in 3.1.1 and 5.0, a handshake
# refusal and a bad frame closing only its own connection. The CPython port's fuller set (certificate
# checks and mapping, handshake refusals, bad frames, ws options) is test_ws_listeners.py.
import os

import pytest
from cryptography.x509.oid import NameOID

from clients import V311, V5, Client
from conftest import require_gatemq
from test_ws_listeners import MASK, RawWS, ws_client, wss_mapped_pubsub
from tlsutil import client_context, server_pki

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
def test_wss_with_client_certificate(b, pki, version, uid):
    wss_mapped_pubsub(b, client_context(pki.root.crt, pki.dev.chain, pki.dev.key), uid, version,
                      "ws-dev", uid, b"wss")


@pytest.mark.parametrize("back_qos", [0, 1])
@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
def test_ws_pubsub(b, version, back_qos, uid):
    """A ws client subscribed to uid/# gets a small and a big message a TCP client published (topic,
    payload and QoS 1), then publishes one the TCP client, subscribed at BACK_QOS, gets."""
    sub = ws_client(b.ports[("ws", "default")], uid + "-sub", version).connect()
    tcp = Client(b.port, uid + "-tcp", V5).connect()
    try:
        assert sub.subscribe(uid + "/#", 1) == [1]
        big = os.urandom(100000)      # past 65535: the 8-byte frame length
        tcp.publish(uid + "/a", b"hello", qos=1)
        tcp.publish(uid + "/big", big, qos=1)
        m = sub.expect()
        assert (m.topic, m.payload, m.qos) == (uid + "/a", b"hello", 1)
        assert sub.expect(10).payload == big
        # And from the WebSocket client to the TCP one.
        assert tcp.subscribe(uid + "/back", back_qos) == [back_qos]
        sub.publish(uid + "/back", b"from ws", qos=1)
        assert tcp.expect().payload == b"from ws"
    finally:
        sub.disconnect()
        tcp.disconnect()


def test_refusal_and_bad_frame_close_only_that_connection(b, uid):
    from wsproto.events import RejectConnection
    port = b.ports[("ws", "default")]
    r = RawWS(port, path="/elsewhere")
    ev = r.events()
    assert isinstance(ev[0], RejectConnection) and ev[0].status_code == 404
    bystander = ws_client(port, uid + "-ok", V311).connect()
    try:
        closes = RawWS(port).connect_mqtt().closes_after(W.frame(W.TEXT, b"text", mask=MASK))
        assert closes and closes[0].code == 1003
        assert bystander.subscribe(uid, 0) == [0]
        bystander.publish(uid, b"still here")
        assert bystander.expect().payload == b"still here"
    finally:
        bystander.disconnect()


def test_wss_disconnect_revoked_drops_the_revoked_device_only(make_broker, tmp_path, uid):
    """disconnect_revoked on a wss listener: a device revoked in the CRL while connected over wss is
    disconnected with 0x87; another wss device goes on (both runtimes: the MicroPython port used to
    watch only ssl listeners)."""
    p = server_pki(tmp_path / "pki")
    p.dev1 = p.leaf(p.root, "dev1", [(NameOID.COMMON_NAME, "dev1")])
    p.dev2 = p.leaf(p.root, "dev2", [(NameOID.COMMON_NAME, "dev2")])
    crl = p.crl(p.root, [], str(tmp_path / "crl.pem"))
    b = make_broker("""
listeners.wss.default {
  bind = "127.0.0.1:0"
  ssl_options { certfile = "%s", keyfile = "%s", cacertfile = "%s", verify = verify_peer,
                fail_if_no_peer_cert = true, versions = ["tlsv1.2"],
                enable_crl_check = true, crlfile = "%s", disconnect_revoked = true }
}
""" % (p.server.crt, p.server.key, p.root.crt, crl), listeners=[("tcp", "default"), ("wss", "default")])
    port = b.ports[("wss", "default")]
    victim = ws_client(port, uid + "-victim", V5, tls=client_context(p.root.crt, p.dev1.chain, p.dev1.key)).connect()
    other = ws_client(port, uid + "-other", V5, tls=client_context(p.root.crt, p.dev2.chain, p.dev2.key)).connect()
    try:
        assert other.subscribe(uid + "/#", 1) == [1]
        mark = b.mark()
        p.crl(p.root, [p.dev1], crl)
        b.wait_log_all(["client %s-victim" % uid, "disconnected: revoked"], start=mark, timeout=8)
        assert victim.wait_disconnected(3) == 0x87
        # The other device was not touched.
        other.publish(uid + "/after", b"still here", qos=1)
        assert other.expect().payload == b"still here"
        assert "client %s-other disconnected" % uid not in "\n".join(b.log_lines[mark:])
    finally:
        victim.disconnect()
        other.disconnect()


def test_upgrades_in_progress_count_against_max_connections(make_broker, uid):
    """Connections whose WebSocket upgrade has not come count against the ws listener's
    max_connections from the accept, as TLS handshakes do on an ssl listener: idle sockets cannot
    hold more than max_connections of them."""
    import socket
    from brokers import retry
    b = make_broker('listeners.ws.default { bind = "127.0.0.1:0", max_connections = 3 }\n',
                    listeners=[("tcp", "default"), ("ws", "default")])
    port = b.ports[("ws", "default")]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        mark = b.mark()
        extra = RawWS(port)
        extra.s.settimeout(5)
        try:
            assert extra.read_all() == b""       # closed at once: no 101 answer
        finally:
            extra.s.close()
        b.wait_log_all(["refused", "max_connections (3)"], start=mark)
    finally:
        for s in idle:
            s.close()
    # The idle ones gone, a real client connects (the broker sees their ends as it gets to them).
    retry(lambda: RawWS(port).connect_mqtt(), (OSError, AssertionError, IndexError)).s.close()
