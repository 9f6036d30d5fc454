# TLS handshakes in progress count against max_connections from the accept, on both ports (as in
# Mosquitto and EMQX): idle TCP connections that never send a ClientHello cannot hold more than
# max_connections sockets of an ssl listener.
import os
import socket
import ssl

import pytest

from brokers import ROOT, retry
from tlsutil import client_context, server_pki, ssl_config, ssl_port, tls_client

MPY_LIB = os.path.join(ROOT, "build", "mpy", "lib")
RUNTIMES = ["cpython", pytest.param("micropython", marks=pytest.mark.skipif(
    not os.path.exists(os.path.join(MPY_LIB, "gatemq", "micropython", "server.mpy")),
    reason="run `make firmware-files` first"))]
MAX = 5


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_handshakes_in_progress_count_against_max_connections(make_broker, tmp_path, runtime):
    pki = server_pki(tmp_path / "pki", device_cn="dev1")
    b = make_broker(ssl_config(pki.server, pki.root, ssl_extra="handshake_timeout = 60s",
                               extra="listeners.ssl.default.max_connections = %d" % MAX), runtime=runtime)
    port = ssl_port(b)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX)]
    try:
        mark = b.mark()
        extra = socket.create_connection(("127.0.0.1", port))
        extra.settimeout(5)
        try:
            # closed at once, not left waiting for a ClientHello
            try:
                assert extra.recv(1) == b""
            except ConnectionResetError:
                pass
        finally:
            extra.close()
        b.wait_log_all(["refused", "max_connections (%d)" % MAX], start=mark)
    finally:
        for s in idle:
            s.close()
    # The idle ones gone, a real device connects (the broker sees their ends as it gets to them).
    retry(lambda: tls_client(b, pki.root, pki.dev, "dev1"), (OSError, ssl.SSLError, AssertionError)).disconnect()
