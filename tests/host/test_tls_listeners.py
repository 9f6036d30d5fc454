# Mutual-TLS listeners with real handshakes: the rejection matrix (each refusal happens before any
# MQTT byte, is logged with the reason and the peer, and never becomes anonymous access),
# verify_peer without fail_if_no_peer_cert, depth, versions, ciphers, encrypted keys, and
# certificates that never leak between connections that handshake at the same time.
#
# Under GATEMQ_TEST_RUNTIME=micropython the module broker leaves out the listeners that port refuses
# by design (optional client certificates, TLS 1.3 only) or ignores (ciphers); the tests of those
# features are skipped there and name the test in test_micropython_port.py that checks the port's
# answer to such a config.
import datetime
import hashlib
import socket
import ssl
import subprocess
import threading
import time

import pytest
from cryptography.x509.oid import NameOID

import rawmqtt
from brokers import DEFAULT_RUNTIME, PYTHON, BrokerProcess
from conftest import require_gatemq
from tlsutil import Events, client_context, now, raw_tls, server_pki, ssl_port, tls_client

DAY = datetime.timedelta(days=1)
MICROPYTHON = DEFAULT_RUNTIME == "micropython"


def not_on_micropython(why, test, verdict="refused"):
    if MICROPYTHON:
        pytest.skip("%s, %s by design on MicroPython: see test_micropython_port.py::%s" % (why, verdict, test))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    p = server_pki(tmp_path_factory.mktemp("pki"))
    p.int1 = p.ca("int1", parent=p.root)
    p.int2 = p.ca("int2", parent=p.int1)
    cn = lambda v: [(NameOID.ORGANIZATION_NAME, "acme"), (NameOID.COMMON_NAME, v)]  # noqa: E731
    p.good = p.leaf(p.int1, "good", cn("good"))          # one intermediate: within depth 1
    p.deep = p.leaf(p.int2, "deep", cn("deep"))          # two intermediates: beyond depth 1
    p.other_root = p.ca("other-root")
    p.stranger = p.leaf(p.other_root, "stranger", cn("stranger"))
    p.expired = p.leaf(p.root, "expired", cn("expired"), not_before=now() - 10 * DAY, not_after=now() - DAY)
    p.future = p.leaf(p.root, "future", cn("future"), not_before=now() + DAY, not_after=now() + 10 * DAY)
    p.revoked = p.leaf(p.root, "revoked", cn("revoked"))
    p.noeku = p.leaf(p.root, "noeku", cn("noeku"), eku=None)
    p.servereku = p.leaf(p.root, "servereku", cn("servereku"), server=True)
    p.crl = p.crl(p.root, [p.revoked], p.folder + "/crl.pem")
    p.par = [p.leaf(p.root, "par%d" % i, cn("par-%d" % i)) for i in range(24)]
    return p


def listener(name, server, ca, opts):
    return """
listeners.ssl.%s.bind = "127.0.0.1:0"
listeners.ssl.%s.ssl_options {
  certfile = "%s"
  keyfile = "%s"
  cacertfile = "%s"
  %s
}
""" % (name, name, server.crt, server.key, ca.crt, opts)


STRICT = """verify = verify_peer
  fail_if_no_peer_cert = true
  depth = 1
  handshake_timeout = 1s
  enable_crl_check = true
  crlfile = "%s"
  verify_peer_ext_key_usage = "clientAuth"
"""


@pytest.fixture(scope="module")
def broker(pki, tmp_path_factory):
    text = (listener("strict", pki.server, pki.root, STRICT % pki.crl)
            + listener("deep", pki.server, pki.root, "verify = verify_peer\n  fail_if_no_peer_cert = true")
            + "mqtt.peer_cert_as_clientid = cn\nmqtt.peer_cert_as_username = md5\ndashboard.enable = false\n")
    if not MICROPYTHON:  # listeners that port refuses or ignores by design (see not_on_micropython)
        text += (listener("optional", pki.server, pki.root, "verify = verify_peer\n  fail_if_no_peer_cert = false")
                 + listener("v13", pki.server, pki.root, 'verify = verify_peer\n  versions = ["tlsv1.3"]')
                 + listener("c12", pki.server, pki.root,
                            'verify = verify_peer\n  versions = ["tlsv1.2"]\n  ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"')
                 + listener("c13", pki.server, pki.root,
                            'verify = verify_peer\n  ciphers = ["TLS_CHACHA20_POLY1305_SHA256"]'))
    b = BrokerProcess(text, tmp_path=tmp_path_factory.mktemp("broker"))
    yield b
    b.stop()


def attempt(b, root, dev, name="strict", **ctx_kw):
    """Handshake and, if the broker lets the handshake through, send CONNECT. Asserts that no MQTT
    byte comes back and the connection ends. Returns the client's port, as the broker logs it."""
    raw = socket.create_connection(("127.0.0.1", ssl_port(b, name)), timeout=5)
    port = raw.getsockname()[1]
    ctx = client_context(root.crt, dev.chain if dev else None, dev.key if dev else None, **ctx_kw)
    try:
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except (ssl.SSLError, OSError):
        raw.close()
        return port
    try:
        # TLS 1.3: the server checks the client's certificate after the client finished.
        s.sendall(rawmqtt.connect("x", version=5))
        data = s.recv(100)
    except (ssl.SSLError, OSError):
        data = b""
    finally:
        s.close()
    assert data == b"", "the broker answered a refused client: %r" % data
    return port


def assert_refused(b, ev, root, dev, reason, name="strict", **kw):
    mark = b.mark()
    port = attempt(b, root, dev, name, **kw)
    line = b.wait_log_all(["ssl:%s" % name, "rejected", reason, "127.0.0.1:%d" % port], timeout=5, start=mark)
    assert "rejected: %s" % reason in line
    ev.none(0.2)


def test_a_valid_chain_within_depth_connects(broker, pki):
    ev = Events(broker)
    c = tls_client(broker, pki.root, pki.good, client_id="", name="strict")
    e = ev.connected()
    assert e["clientid"] == "good"
    assert e["username"] == hashlib.md5(pki.good.der).hexdigest()
    c.disconnect()
    ev.close()


@pytest.mark.parametrize("case, reason", [
    ("none", "no_peer_cert"),
    ("stranger", "unknown_ca"),
    ("expired", "expired"),
    ("future", "not_yet_valid"),
    ("revoked", "revoked"),
    ("deep", "chain_too_long"),
    ("noeku", "ext_key_usage"),
    ("servereku", "ext_key_usage"),
])
def test_rejection_matrix(broker, pki, case, reason):
    ev = Events(broker)
    dev = None if case == "none" else getattr(pki, case)
    assert_refused(broker, ev, pki.root, dev, reason)
    ev.close()


def test_depth_applies_per_listener(broker, pki):
    # The chain refused above with depth = 1 is fine under the default depth (10).
    ev = Events(broker)
    c = tls_client(broker, pki.root, pki.deep, client_id="", name="deep")
    assert ev.connected()["clientid"] == "deep"
    c.disconnect()
    ev.close()


def test_handshake_timeout(broker):
    mark = broker.mark()
    s = socket.create_connection(("127.0.0.1", ssl_port(broker, "strict")), timeout=5)
    port = s.getsockname()[1]
    s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then silence
    t0 = time.monotonic()
    assert s.recv(100) == b""  # closed by the broker
    waited = time.monotonic() - t0
    s.close()
    assert 0.7 < waited < 3.0, waited
    broker.wait_log_all(["ssl:strict", "rejected: handshake_timeout", "127.0.0.1:%d" % port], start=mark)


def test_verify_peer_without_fail_if_no_peer_cert(broker, pki):
    not_on_micropython("optional client certificates", "test_optional_client_certificates_are_a_config_error")
    ev = Events(broker)
    # No certificate: allowed, no mapping; the CONNECT values stay.
    c = tls_client(broker, pki.root, None, client_id="plain-id", username="connect-user", name="optional")
    e = ev.connected()
    assert (e["clientid"], e["username"], e["cert_common_name"]) == ("plain-id", "connect-user", None)
    c.disconnect()
    # A trusted certificate: verified and mapped.
    c = tls_client(broker, pki.root, pki.par[0], client_id="plain-id", name="optional")
    assert ev.connected()["clientid"] == "par-0"
    c.disconnect()
    # An untrusted one is still refused.
    assert_refused(broker, ev, pki.root, pki.stranger, "unknown_ca", name="optional")
    ev.close()


def test_versions(broker, pki):
    not_on_micropython("a TLS 1.3-only listener (mbedTLS there speaks TLS 1.2)", "test_tls13_only_is_a_config_error")
    ev = Events(broker)
    assert_refused(broker, ev, pki.root, pki.par[1], "protocol_version", name="v13",
                   maximum=ssl.TLSVersion.TLSv1_2)
    r = raw_tls(broker, pki.root, pki.par[1], name="v13")
    assert r.sock.version() == "TLSv1.3"
    assert r.connect("").rc == 0
    r.close()
    ev.close()


def test_ciphers(broker, pki):
    not_on_micropython("ssl_options.ciphers (mbedTLS uses the suites built into the firmware)",
                       "test_ciphers_are_ignored_with_a_warning", "ignored")
    ev = Events(broker)
    assert_refused(broker, ev, pki.root, pki.par[2], "no_shared_cipher", name="c12",
                   ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    r = raw_tls(broker, pki.root, pki.par[2], name="c12")
    assert r.sock.version() == "TLSv1.2"
    assert r.sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert r.connect("").rc == 0
    r.close()
    # TLS 1.3 suites go to OpenSSL's separate list; the client offers all three, the broker picks.
    r = raw_tls(broker, pki.root, pki.par[2], name="c13")
    assert r.sock.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"
    assert r.connect("").rc == 0
    r.close()
    ev.close()


def test_simultaneous_handshakes_keep_their_own_identity(broker, pki):
    ev = Events(broker)
    devs = pki.par
    results = {}
    errors = []

    def one(i, barrier):
        try:
            barrier.wait(10)
            r = raw_tls(broker, pki.root, devs[i], version=5, name="strict" if i % 2 else "deep")
            ack = r.connect("")
            results[i] = (ack.rc, ack.props.get("assigned_client_id"))
            r.send(rawmqtt.disconnect(0, version=5))
            r.close()
        except Exception as e:  # reported below with the thread's index
            errors.append((i, repr(e)))

    for _ in range(3):
        results.clear()
        barrier = threading.Barrier(len(devs))
        threads = [threading.Thread(target=one, args=(i, barrier)) for i in range(len(devs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert results == {i: (0, "par-%d" % i) for i in range(len(devs))}
        seen = {}
        for _ in devs:
            e = ev.connected()
            seen[e["clientid"]] = e["username"]
        assert seen == {"par-%d" % i: hashlib.md5(d.der).hexdigest() for i, d in enumerate(devs)}
    ev.close()


def test_encrypted_key_with_password(pki, make_broker, tmp_path):
    not_on_micropython("an encrypted server key (mbedTLS there loads unencrypted keys only)",
                       "test_encrypted_key_is_a_config_error")
    key = pki.server.encrypted_key("s3cret", str(tmp_path / "server-enc.key"))
    text = listener("pw", pki.server, pki.root, 'verify = verify_peer\n  password = "s3cret"').replace(
        pki.server.key, key) + "dashboard.enable = false\n"
    b = make_broker(text)
    r = raw_tls(b, pki.root, pki.par[3], name="pw")
    assert r.connect("").rc == 0
    r.close()
    with pytest.raises(RuntimeError) as err:
        make_broker(text.replace("s3cret", "wrong"))
    assert "password" in str(err.value)


def test_depth_without_openssl_call_is_checked_on_the_verified_chain(pki, tmp_path):
    # When SSL_CTX_set_verify_depth cannot be reached (another libssl layout), the broker checks the
    # verified chain after the handshake instead: the same refusal and the same log line.
    conf = tmp_path / "gatemq.conf"
    conf.write_text(listener("strict", pki.server, pki.root, "verify = verify_peer\n  depth = 1")
                    + "dashboard.enable = false\n")
    code = ("import sys; from gatemq.cpython import tlsctx, cli; tlsctx.set_verify_depth = lambda c, d: False; "
            "sys.exit(cli.main(['--config', %r, '--log-level', 'info']))" % str(conf))
    proc = subprocess.Popen([PYTHON, "-c", code], stderr=subprocess.PIPE, text=True)
    lines = []
    threading.Thread(target=lambda: [lines.append(x) for x in proc.stderr], daemon=True).start()

    def wait_line(text):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for x in list(lines):
                if text in x:
                    return x
            time.sleep(0.02)
        raise AssertionError("no log line with %r:\n%s" % (text, "".join(lines)))

    try:
        port = int(wait_line("listener ssl:strict listening on").rsplit(":", 1)[1])
        ok = client_context(pki.root.crt, pki.good.chain, pki.good.key).wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1")
        ok.sendall(rawmqtt.connect("x", version=4))
        assert ok.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
        ok.close()
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        cport = raw.getsockname()[1]
        s = client_context(pki.root.crt, pki.deep.chain, pki.deep.key).wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(rawmqtt.connect("x", version=4))
        assert s.recv(4) == b""
        s.close()
        line = wait_line("rejected")
        assert "127.0.0.1:%d rejected: chain_too_long (2 intermediate CAs, ssl_options.depth = 1)" % cport in line
    finally:
        proc.terminate()
        proc.wait(10)


def test_clients_that_hang_up_after_the_handshake_free_their_slot(pki, make_broker):
    b = make_broker(listener("small", pki.server, pki.root, "verify = verify_peer\n  fail_if_no_peer_cert = true")
                    .replace('listeners.ssl.small.bind = "127.0.0.1:0"',
                             'listeners.ssl.small.bind = "127.0.0.1:0"\nlisteners.ssl.small.max_connections = 3')
                    + "dashboard.enable = false\n")
    ctx = client_context(pki.root.crt, pki.good.chain, pki.good.key)
    for _ in range(20):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", ssl_port(b, "small")), timeout=5),
                            server_hostname="127.0.0.1")
        s.close()
    time.sleep(0.3)
    r = raw_tls(b, pki.root, pki.good, name="small")
    assert r.connect("still-room").rc == 0
    r.close()


def test_idle_tls_client_is_served_after_many_plain_clients_connect(pki, make_broker):
    # On the MicroPython unix port this once crashed the broker: select.poll corrupted the entry of
    # the waiting TLS object when its descriptor array grew (ports/micropython/link.py, POLL_RAW).
    b = make_broker(listener("default", pki.server, pki.root, "verify = verify_peer\n  fail_if_no_peer_cert = true")
                    + 'listeners.tcp.default.bind = "127.0.0.1:0"\ndashboard.enable = false\n')
    t = raw_tls(b, pki.root, pki.good, version=4)
    assert t.connect("tls-dev").rc == 0
    t.send(rawmqtt.subscribe(1, [("fan/in", 1)]))
    assert t.recv().type == rawmqtt.SUBACK
    # The TLS client now waits for input while 40 plain clients connect, one after another.
    plain = []
    try:
        for i in range(40):
            c = rawmqtt.RawClient(b.ports[("tcp", "default")], version=4)
            assert c.connect("plain%d" % i).rc == 0, i
            plain.append(c)
        for i, c in enumerate(plain):
            c.send(rawmqtt.publish("fan/in", b"%d" % i, version=4))
        assert sorted(int(t.recv().payload) for _ in plain) == list(range(40))
        t.send(rawmqtt.pingreq())
        assert t.recv().type == rawmqtt.PINGRESP
        assert b.alive()
    finally:
        for c in plain:
            c.close()
        t.close()
