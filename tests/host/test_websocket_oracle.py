# gatemq.websocket against wsproto as the oracle, the way DER is checked against cryptography:
# wsproto's client opens the connection and sends frames our server must read; what our server
# sends wsproto must read; and for random (and broken) frame sequences our server hands on the
# same payload bytes and fails with the same close code as wsproto's own frame parser.
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from gatemq import websocket as W

wsproto = pytest.importorskip("wsproto", reason="pip install wsproto (in the test extra)")
from wsproto import ConnectionType, WSConnection  # noqa: E402
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Pong,  # noqa: E402
                            RejectConnection, RejectData, Request)
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed  # noqa: E402

OPTS = dict(W.DEFAULTS)


def opened(opts=OPTS, subprotocols=("mqtt",), extra=()):
    """A wsproto client and our server after a handshake (asserted to succeed)."""
    cli = WSConnection(ConnectionType.CLIENT)
    srv = W.Server(opts, ("127.0.0.1", 5555))
    req = cli.send(Request(host="127.0.0.1", target="/mqtt", subprotocols=list(subprotocols),
                           extra_headers=list(extra)))
    assert srv.feed(req) == b""
    assert srv.opened and srv.state == W.OPEN, srv.error
    cli.receive_data(srv.take())
    ev = list(cli.events())
    assert isinstance(ev[0], AcceptConnection), ev
    return cli, srv, ev[0]


def refused(request_bytes, opts=OPTS):
    srv = W.Server(opts, ("127.0.0.1", 5555))
    srv.feed(request_bytes)
    assert not srv.opened and srv.state == W.CLOSED
    return srv, srv.take()


def test_handshake_accept_key_and_subprotocol():
    # RFC 6455 1.3's example key.
    assert W.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    cli, srv, acc = opened(subprotocols=("mqttv3.1", "mqtt"))
    assert acc.subprotocol == "mqtt" and srv.subprotocol == "mqtt"
    cli, srv, acc = opened(subprotocols=("mqtt-v5",))
    assert acc.subprotocol == "mqtt-v5"


def test_handshake_refusals_answer_http_status():
    cli = WSConnection(ConnectionType.CLIENT)
    good = cli.send(Request(host="h", target="/mqtt", subprotocols=["mqtt"]))
    # Positive control: the same bytes are accepted.
    assert W.Server(OPTS).feed(good) == b"" and W.Server(OPTS, ("1.2.3.4", 1)).opened is False
    s = W.Server(OPTS)
    s.feed(good)
    assert s.opened
    # Wrong path: 404; wsproto sees a rejection with that status.
    bad = WSConnection(ConnectionType.CLIENT)
    srv, out = refused(bad.send(Request(host="h", target="/other", subprotocols=["mqtt"])))
    bad.receive_data(out)
    ev = list(bad.events())
    assert isinstance(ev[0], RejectConnection) and ev[0].status_code == 404, ev
    assert "mqtt_path" in srv.error
    # No subprotocol with fail_if_no_subprotocol = true (EMQX's default): 400; false: accepted.
    srv, out = refused(WSConnection(ConnectionType.CLIENT).send(Request(host="h", target="/mqtt")))
    assert out.startswith(b"HTTP/1.1 400 ") and b"fail_if_no_subprotocol" in out
    cli, srv, acc = opened(dict(OPTS, fail_if_no_subprotocol=False), subprotocols=())
    assert acc.subprotocol is None
    # An offered subprotocol none of which is supported: 400 even with fail_if_no_subprotocol off.
    srv, out = refused(WSConnection(ConnectionType.CLIENT).send(
        Request(host="h", target="/mqtt", subprotocols=["stomp"])), dict(OPTS, fail_if_no_subprotocol=False))
    assert out.startswith(b"HTTP/1.1 400 ")
    # Version and key.
    head = (b"GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Protocol: mqtt\r\n")
    srv, out = refused(head + b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 426 ") and b"Sec-WebSocket-Version: 13" in out
    srv, out = refused(head + b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    assert W.Server(OPTS).feed(head + b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n") == b""
    srv, out = refused(b"POST /mqtt HTTP/1.1\r\nHost: h\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 405 ")
    srv, out = refused(b"GET /mqtt HTTP/1.1\r\n" + b"X: " + b"a" * 9000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ")


def test_origin_check():
    opts = dict(OPTS, check_origin_enable=True, check_origins=["http://gw.local:1880"])
    cli, srv, acc = opened(opts, extra=[(b"Origin", b"http://gw.local:1880")])
    srv, out = refused(WSConnection(ConnectionType.CLIENT).send(Request(
        host="h", target="/mqtt", subprotocols=["mqtt"], extra_headers=[(b"Origin", b"http://evil.example")])), opts)
    assert out.startswith(b"HTTP/1.1 403 ") and "check_origins" in srv.error
    # No Origin header: allowed unless allow_origin_absence = false.
    opened(opts)
    refused(WSConnection(ConnectionType.CLIENT).send(Request(host="h", target="/mqtt", subprotocols=["mqtt"])),
            dict(opts, allow_origin_absence=False))
    # With the check off any origin passes.
    opened(extra=[(b"Origin", b"http://evil.example")])


def test_proxy_headers_only_from_loopback():
    extra = [(b"X-Forwarded-For", b"6.6.6.6, 10.1.2.3"), (b"X-Forwarded-Port", b"40001")]
    cli, srv, acc = opened(extra=extra)
    assert srv.peer == ("10.1.2.3", 40001)
    s = W.Server(OPTS, ("192.0.2.7", 999))
    s.feed(WSConnection(ConnectionType.CLIENT).send(Request(host="h", target="/mqtt", subprotocols=["mqtt"],
                                                            extra_headers=extra)))
    assert s.opened and s.peer == ("192.0.2.7", 999)
    s = W.Server(dict(OPTS, proxy_address_header="", proxy_port_header=""), ("127.0.0.1", 5))
    s.feed(WSConnection(ConnectionType.CLIENT).send(Request(host="h", target="/mqtt", subprotocols=["mqtt"],
                                                            extra_headers=extra)))
    assert s.opened and s.peer == ("127.0.0.1", 5)


def test_data_both_ways_fragmented_and_split_reads():
    cli, srv, _ = opened()
    payload = os.urandom(70000)
    wire = cli.send(BytesMessage(data=payload[:10], message_finished=False))
    wire += cli.send(BytesMessage(data=payload[10:300], message_finished=False))
    wire += cli.send(Ping(payload=b"hi"))   # a control frame between fragments
    wire += cli.send(BytesMessage(data=payload[300:], message_finished=True))
    got = b"".join(srv.feed(wire[i:i + 7]) for i in range(0, len(wire), 7))
    assert got == payload
    cli.receive_data(srv.take())
    assert [type(e) for e in cli.events()] == [Pong]
    # Ours to wsproto: unmasked binary frames of each length form.
    for n in (0, 125, 126, 65535, 65536, 200000):
        data = os.urandom(n)
        cli.receive_data(srv.send(data) or W.frame(W.BINARY, b""))
        got = b"".join(e.data for e in cli.events() if isinstance(e, BytesMessage))
        assert got == data


def test_close_handshake_both_directions():
    cli, srv, _ = opened()
    srv.feed(cli.send(CloseConnection(code=1000, reason="bye")))
    assert srv.state == W.CLOSED and srv.peer_code == 1000
    cli.receive_data(srv.take())
    ev = list(cli.events())
    assert isinstance(ev[0], CloseConnection) and ev[0].code == 1000
    cli, srv, _ = opened()
    srv.close(1000)
    assert srv.send(b"late") == b""
    cli.receive_data(srv.take())
    ev = list(cli.events())
    assert isinstance(ev[0], CloseConnection) and ev[0].code == 1000
    srv.feed(cli.send(ev[0].response()))
    assert srv.state == W.CLOSED


def test_text_frame_and_max_frame_size():
    cli, srv, _ = opened()
    srv.feed(cli.send(__import__("wsproto.events", fromlist=["TextMessage"]).TextMessage(data="hi")))
    assert srv.state == W.CLOSED and srv.close_code == W.UNSUPPORTED_DATA
    cli.receive_data(srv.take())
    assert list(cli.events())[0].code == 1003
    cli, srv, _ = opened(dict(OPTS, max_frame_size=100))
    assert srv.feed(cli.send(BytesMessage(data=b"x" * 100))) == b"x" * 100   # at the limit: fine
    srv.feed(cli.send(BytesMessage(data=b"x" * 101)))
    assert srv.state == W.CLOSED and srv.close_code == W.MESSAGE_TOO_BIG


# ---- random frame sequences: our parser against wsproto's -----------------------------------

def _encode(fin, rsv, op, masked, payload, form, mask):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload)
    m = 0x80 if masked else 0
    if form == 0 and n < 126:
        head = bytes((b0, m | n))
    elif form <= 1 and n < 65536:
        head = bytes((b0, m | 126)) + struct.pack("!H", n)
    else:
        head = bytes((b0, m | 127)) + struct.pack("!Q", n)
    if masked:
        return head + mask + W.unmask(payload, mask)
    return head + payload


close_payloads = st.one_of(
    st.just(b""), st.binary(min_size=1, max_size=1),
    st.tuples(st.sampled_from([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1012, 1014, 1015,
                               1016, 2999, 3000, 4999, 5000, 999, 0]),
              st.one_of(st.just(b""), st.just(b"ok"), st.just(b"\xff\xfe"))).map(
        lambda t: struct.pack("!H", t[0]) + t[1]))

frames = st.lists(st.tuples(
    st.booleans() | st.just(True),                               # fin
    st.sampled_from([0, 0, 0, 0, 0, 1, 4]),                      # rsv bits
    st.sampled_from([0, 2, 2, 2, 3, 8, 9, 9, 10, 11, 15]),       # opcode (no text: MQTT refuses it)
    st.booleans() | st.just(True) | st.just(True),               # masked
    st.binary(max_size=300),
    st.sampled_from([0, 0, 0, 1, 2]),                            # length form
    st.binary(min_size=4, max_size=4),
    close_payloads), max_size=8)


def _oracle(wire):
    fp = FrameProtocol(client=False, extensions=[])
    fp.receive_bytes(wire)
    data = []
    try:
        for f in fp.received_frames():
            if f.opcode in (Opcode.BINARY, Opcode.CONTINUATION):
                data.append(bytes(f.payload))
            elif f.opcode == Opcode.CLOSE:
                return b"".join(data), ("closed", f.payload[0])
    except ParseFailed as e:
        return b"".join(data), ("failed", int(e.code))
    return b"".join(data), None


@settings(max_examples=400, deadline=None)
@given(frames, st.integers(1, 40))
def test_frames_against_wsproto(fs, step):
    wire = b""
    for fin, rsv, op, masked, payload, form, mask, cp in fs:
        if op == 8:
            payload = cp
        wire += _encode(fin, rsv, op, masked, payload, form, mask)
    want_data, want_end = _oracle(wire)
    cli, srv, _ = opened()
    got = b"".join(srv.feed(wire[i:i + step]) for i in range(0, len(wire), step))
    assert got == want_data
    if want_end is None:
        assert srv.state == W.OPEN
    elif want_end[0] == "closed":
        code = want_end[1]
        assert srv.state == W.CLOSED and srv.error.startswith("WebSocket closed by the client")
        assert srv.peer_code == (None if code == 1005 else code)
    else:
        assert srv.state == W.CLOSED and srv.close_code == want_end[1], (srv.error, want_end)
        # Our close frame carries that code, as wsproto reads it.
        cli.receive_data(srv.take())
        ev = [e for e in cli.events() if isinstance(e, CloseConnection)]
        assert ev and ev[0].code == want_end[1]
