# TLS messages after the handshake, from a real OpenSSL client (openssl s_client's interactive
# commands): a TLS 1.2 renegotiation is refused (the identity was mapped from the first
# handshake's certificate; another one must not replace it) and costs only that connection; a
# TLS 1.3 KeyUpdate is answered and the MQTT session goes on.
import shutil
import subprocess
import time

import pytest

import rawmqtt
from brokers import DEFAULT_RUNTIME, BrokerProcess, socket_fds
from conftest import require_gatemq
from test_mqtt_chaos import BAD_LOG, fresh_round_trip
from tlsutil import client_context, server_pki, ssl_config, ssl_port

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    return server_pki(tmp_path_factory.mktemp("pki"), device_cn="dev")


def s_client(b, pki, version, command):
    """CONNECT, then the s_client command (its own stdin read), then PINGREQ: what came back."""
    sc = subprocess.Popen([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % ssl_port(b), version,
                           "-cert", pki.dev.crt, "-key", pki.dev.key, "-CAfile", pki.root.crt],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for chunk in (rawmqtt.connect("post-hs", keepalive=60), command, rawmqtt.pingreq()):
            # s_client takes a command only as the first byte of one read of its stdin.
            time.sleep(1.5)
            try:
                sc.stdin.write(chunk)
                sc.stdin.flush()
            except BrokenPipeError:
                break
        time.sleep(1.5)
        try:
            out, err = sc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            sc.kill()
            out, err = sc.communicate()
    finally:
        if sc.poll() is None:
            sc.kill()
    return out, err.decode("utf-8", "replace")


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
@pytest.mark.parametrize("case", ["renegotiate", "key_update"])
def test_post_handshake_messages(pki, tmp_path, case):
    if case == "key_update" and DEFAULT_RUNTIME == "micropython":
        pytest.skip("the MicroPython port speaks TLS 1.2 only (mbedTLS): see test_micropython_port.py::test_tls13_only_is_a_config_error")
    b = BrokerProcess(ssl_config(pki.server, pki.root), tmp_path=tmp_path)
    try:
        pid = b.pid
        base = socket_fds(pid)
        if case == "renegotiate":
            out, err = s_client(b, pki, "-tls1_2", b"R\n")
            assert b" \x02\x00\x00" in out, "no CONNACK: %r %s" % (out[-200:], err[-500:])
            assert "RENEGOTIATING" in err
            # Refused: no PINGRESP after it, the connection ended.
            assert b"\xd0\x00" not in out.split(b" \x02\x00\x00", 1)[1]
        else:
            out, err = s_client(b, pki, "-tls1_3", b"K\n")
            assert "KEYUPDATE" in err
            assert b" \x02\x00\x00\xd0\x00" in out, "no PINGRESP after the KeyUpdate: %r %s" % (out[-200:], err[-500:])
        deadline = time.monotonic() + 20
        while socket_fds(pid) > base and time.monotonic() < deadline:
            time.sleep(0.2)
        assert socket_fds(pid) == base
        assert b.alive()
        ctx = client_context(pki.root.crt, pki.dev.chain, pki.dev.key)
        fresh_round_trip(b, ssl_port(b), lambda s: ctx.wrap_socket(s, server_hostname="127.0.0.1"), "after-" + case)
        bad = [line for line in b.log_lines if any(w in line for w in BAD_LOG)]
        assert not bad, "\n".join(bad[:20])
    finally:
        b.stop()
