# A mutual-TLS client stays served while many plain clients connect after it. On the MicroPython
# unix port this once crashed the broker: select.poll corrupted the entry of the waiting TLS
# object when its descriptor array grew (see ports/micropython/link.py, POLL_RAW).
import pytest
from cryptography.x509.oid import NameOID

import rawmqtt
from conftest import require_gatemq
from tlsutil import PKI, raw_tls, ssl_config


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    p = PKI(tmp_path_factory.mktemp("pki"))
    p.root = p.ca("root")
    p.server = p.leaf(p.root, "server", [(NameOID.COMMON_NAME, "localhost")], server=True)
    p.dev = p.leaf(p.root, "dev", [(NameOID.COMMON_NAME, "dev")])
    return p


def test_idle_tls_client_is_served_after_many_plain_clients_connect(make_broker, pki):
    b = make_broker(ssl_config(pki.server, pki.root, extra='listeners.tcp.default.bind = "127.0.0.1:0"\n'
                                                          'mqtt.peer_cert_as_username = cn\n'))
    t = raw_tls(b, pki.root, pki.dev, version=4)
    t.send(rawmqtt.connect("tls-dev", version=4))
    assert t.recv().rc == 0
    t.send(rawmqtt.subscribe(1, [("fan/in", 1)]))
    assert t.recv().type == rawmqtt.SUBACK
    # The TLS client now waits for input while 40 plain clients connect, one after another.
    plain = []
    try:
        for i in range(40):
            c = rawmqtt.RawClient(b.ports[("tcp", "default")], version=4)
            c.send(rawmqtt.connect("plain%d" % i, version=4))
            assert c.recv().rc == 0, i
            plain.append(c)
        # Each plain client publishes to the TLS client, and the TLS client answers them all.
        for i, c in enumerate(plain):
            c.send(rawmqtt.publish("fan/in", b"%d" % i, version=4))
        got = sorted(int(t.recv().payload) for _ in plain)
        assert got == list(range(40))
        t.send(rawmqtt.pingreq())
        assert t.recv().type == rawmqtt.PINGRESP
        assert b.alive()
    finally:
        for c in plain:
            c.sock.close()
        t.sock.close()
