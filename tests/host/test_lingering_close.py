# Lingering close: when the broker ends a connection (a server DISCONNECT, a CONNACK refusal) it
# sends the packet, ends its write side and reads and discards what the client still sends for a
# grace period before it closes. A client still writing (past Receive Maximum, say) then reads the
# reason code and a clean end of stream, and its writes do not meet a TCP reset. Plain and TLS; the
# runtime is GATEMQ_TEST_RUNTIME's (cpython, or micropython for the MicroPython port).
import socket
import time

import pytest

import rawmqtt as R
from conftest import require_gatemq
from tlsutil import raw_tls, server_pki, ssl_config

# How long the client goes on writing after the broker decided to close: well inside the broker's
# grace period (2 s), and well past the time a closed socket takes to answer with a reset.
WRITE_ON = 0.3


def _keep_writing(r, seconds):
    # What a client does that has not yet seen the broker's answer: it goes on publishing.
    junk = R.publish("lingering/junk", b"j" * 512, qos=0, version=5)
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        r.send(junk)            # a reset here (EPIPE, ECONNRESET) is the failure under test
        sent += 1
        time.sleep(0.01)
    return sent


def _parse_all(r):
    out = []
    while len(r.buf) >= 2:
        try:
            out.append(r.recv(0.01))
        except Exception:
            break
    return out


def _read_to_eof(r, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        r.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = r.sock.recv(65536)   # a ConnectionResetError here fails the test
        if not data:
            break
        r.buf += data
    r.eof = True
    return _parse_all(r)


def _receive_maximum_exceeded(r):
    ack = r.connect("linger-rm", version=5)
    assert ack.rc == 0
    rm = ack.props["receive_maximum"]
    # QoS 2 PUBLISHes with no PUBREL: one more than Receive Maximum, then more traffic, unread.
    r.send(b"".join(R.publish("lingering/q2", b"x", qos=2, pid=i + 1, version=5) for i in range(rm + 1)))
    assert _keep_writing(r, WRITE_ON) > 0
    seen = _read_to_eof(r)
    disc = [p for p in seen if p.type == R.DISCONNECT]
    assert disc and disc[0].rc == 0x93, seen


def _connack_refusal(r):
    r.send(R.connect("x" * 30, version=5))       # longer than max_clientid_len = 23
    assert _keep_writing(r, WRITE_ON) > 0
    seen = _read_to_eof(r)
    assert seen and seen[0].type == R.CONNACK and seen[0].rc == 0x85, seen


CONFIG = "mqtt.max_clientid_len = 23\n"


@pytest.mark.parametrize("case", [_receive_maximum_exceeded, _connack_refusal], ids=["disconnect", "connack"])
def test_plain_client_still_writing_reads_the_reason_code(make_broker, case):
    require_gatemq()
    b = make_broker(CONFIG)
    with R.RawClient(b.port, version=5) as r:
        case(r)


@pytest.mark.parametrize("case", [_receive_maximum_exceeded, _connack_refusal], ids=["disconnect", "connack"])
def test_tls_client_still_writing_reads_the_reason_code(make_broker, tmp_path, case):
    require_gatemq()
    pki = server_pki(tmp_path / "pki", device_cn="dev1")
    b = make_broker(ssl_config(pki.server, pki.root, extra=CONFIG))
    r = raw_tls(b, pki.root, pki.dev)
    try:
        case(r)
    finally:
        r.close()
