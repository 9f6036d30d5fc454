# The CPython port frees the CA certificates a client sends along with its own once the handshake
# has been checked (each parsed copy is ~4.5 KB of every idle TLS connection). It reaches OpenSSL
# through ctypes and a field of CPython's _ssl object (ports/cpython/openssl_ctypes.py), so this
# checks on the running Python that the copies are really gone and that the connection, and its
# leaf certificate, are unharmed; and that with the module switched off nothing reaches OpenSSL
# and the listener still works, checking depth on the verified chain instead.
import socket
import threading

import pytest
from cryptography.x509.oid import NameOID

from conftest import require_gatemq
from tlsutil import client_context, server_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    p = server_pki(tmp_path_factory.mktemp("pki"))
    p.int1 = p.ca("int1", parent=p.root)
    p.dev = p.leaf(p.int1, "dev", [(NameOID.COMMON_NAME, "dev-1")])
    return p


def sent_chain_length(lt, tls, sock):
    from gatemq.cpython import openssl_ctypes
    n = openssl_ctypes.sent_chain_length(tls, sock, lt.context, lt._ctx_p)
    assert n is not None, "cannot reach the SSL object of this Python's _ssl"
    return n


def test_the_sent_chain_is_freed_and_the_connection_still_works(pki):
    from gatemq.cpython import tlsctx
    logs = []
    lt = tlsctx.ListenerTLS("ssl:t", {
        "certfile": pki.server.crt, "keyfile": pki.server.key, "cacertfile": pki.root.crt,
        "verify": "verify_peer", "fail_if_no_peer_cert": True, "depth": 10,
    }, lambda level, msg: logs.append(msg))
    a, b = socket.socketpair()
    got = {}

    def client():
        # The client sends its intermediate with its certificate (the .chain file holds both).
        ctx = client_context(pki.root.crt, pki.dev.chain, pki.dev.key)
        ctx.check_hostname = False
        with ctx.wrap_socket(b) as s:
            s.sendall(b"ping")
            got["reply"] = s.recv(4)

    t = threading.Thread(target=client)
    t.start()
    try:
        # As server.TLSClient wraps an accepted socket.
        tls = lt.context._wrap_socket(a, True, None)
        tls.do_handshake()
        assert sent_chain_length(lt, tls, a) == 1          # the intermediate, parsed by OpenSSL
        lt.drop_sent_chain(tls, a)
        assert sent_chain_length(lt, tls, a) == 0
        assert tls.getpeercert(True) == pki.dev.der       # the leaf the identity comes from
        assert tls.read(4) == b"ping"
        tls.write(b"pong")
    finally:
        t.join(5)
        a.close()
    assert got["reply"] == b"pong"
    assert not logs


def test_switched_off_nothing_reaches_openssl_and_depth_is_checked_after(pki, monkeypatch):
    from gatemq.cpython import openssl_ctypes, tlsctx
    monkeypatch.setattr(openssl_ctypes, "enabled", False)
    assert openssl_ctypes.native() is None
    lt = tlsctx.ListenerTLS("ssl:t", {
        "certfile": pki.server.crt, "keyfile": pki.server.key, "cacertfile": pki.root.crt,
        "verify": "verify_peer", "fail_if_no_peer_cert": True, "depth": 0,
    }, lambda level, msg: None)
    assert lt._ctx_p is None and lt.depth_after == 0
    a, b = socket.socketpair()

    def client():
        ctx = client_context(pki.root.crt, pki.dev.chain, pki.dev.key)
        ctx.check_hostname = False
        try:
            with ctx.wrap_socket(b) as s:
                s.recv(1)
        except OSError:
            pass

    t = threading.Thread(target=client)
    t.start()
    try:
        tls = lt.context._wrap_socket(a, True, None)
        tls.do_handshake()
        # one intermediate under depth = 0: refused after the handshake, on the verified chain
        assert lt.check_leaf(tls.getpeercert(True), tls)[0] == "chain_too_long"
        lt.drop_sent_chain(tls, a)  # a no-op without OpenSSL
    finally:
        a.close()
        b.close()
        t.join(5)
