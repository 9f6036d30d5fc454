# gatemq.websocket on both runtimes (the wsproto cross-check is tests/host/test_websocket_oracle.py).
from gatemq import websocket as W

OPTS = dict(W.DEFAULTS)
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
REQ = ("GET /mqtt HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
       "Sec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\n"
       "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n\r\n").encode()
MASK = b"\x37\xfa\x21\x3d"


def _open():
    s = W.Server(OPTS, ("127.0.0.1", 1))
    assert s.feed(REQ) == b""
    return s


def test_accept_key_rfc6455():
    assert W.accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_answer():
    s = _open()
    out = s.take()
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in out
    assert b"Sec-WebSocket-Protocol: mqtt\r\n" in out
    assert s.opened and s.subprotocol == "mqtt"


def test_masked_hello_rfc6455_example():
    # RFC 6455 5.7: a single-frame masked text "Hello" is 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58.
    assert W.frame(W.TEXT, b"Hello", mask=MASK) == bytes([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
    s = _open()
    s.take()
    wire = W.frame(W.BINARY, b"Hel", fin=False, mask=MASK) + W.frame(W.CONT, b"lo", mask=MASK)
    got = b""
    for i in range(len(wire)):
        got += s.feed(wire[i:i + 1])
    assert got == b"Hello" and s.state == W.OPEN


def test_unmask_offsets():
    data = bytes(range(50))
    m = W.unmask(data, MASK)
    assert W.unmask(m, MASK) == data
    assert W.unmask(m[:7], MASK) + W.unmask(m[7:], MASK, 7) == data


def test_ping_pong_and_close_echo():
    s = _open()
    s.take()
    s.feed(W.frame(W.PING, b"abc", mask=MASK))
    assert s.take() == bytes([0x8A, 3]) + b"abc"
    s.feed(W.frame(W.CLOSE, b"\x03\xe8", mask=MASK))
    assert s.state == W.CLOSED and s.take() == bytes([0x88, 2, 3, 0xE8])


def test_bad_frames_close_with_codes():
    cases = [
        (W.frame(W.BINARY, b"x")[:1] + b"\x01x", W.PROTOCOL_ERROR),              # unmasked
        (W.frame(W.TEXT, b"x", mask=MASK), W.UNSUPPORTED_DATA),                  # text
        (W.frame(W.CONT, b"x", mask=MASK), W.PROTOCOL_ERROR),                    # nothing to continue
        (W.frame(W.PING, b"x" * 126, mask=MASK), W.PROTOCOL_ERROR),              # control > 125
        (W.frame(W.PING, b"", fin=False, mask=MASK), W.PROTOCOL_ERROR),          # fragmented control
        (bytes([0xC2, 0x80]) + MASK, W.PROTOCOL_ERROR),                          # RSV1
        (W.frame(W.CLOSE, b"\x03\xed", mask=MASK), W.PROTOCOL_ERROR),            # 1005 from a peer
        (W.frame(W.CLOSE, b"\x03\xe8\xff", mask=MASK), W.INVALID_DATA),          # reason not UTF-8
        (bytes([0x82, 0xFE, 0, 5]) + MASK + b"xxxxx", W.PROTOCOL_ERROR),         # not shortest length
    ]
    for wire, code in cases:
        s = _open()
        s.take()
        s.feed(wire)
        assert s.state == W.CLOSED and s.close_code == code, (wire, s.error)
        out = s.take()
        assert out[0] == 0x88 and out[2] == code >> 8 and out[3] == code & 0xFF
    # Positive control: a good frame on the same setup.
    s = _open()
    assert s.feed(W.frame(W.BINARY, b"ok", mask=MASK)) == b"ok" and s.state == W.OPEN


def test_refusals():
    s = W.Server(OPTS, ("127.0.0.1", 1))
    s.feed(REQ.replace(b"/mqtt", b"/x"))
    assert s.state == W.CLOSED and not s.opened and s.take().startswith(b"HTTP/1.1 404 ")
    s = W.Server(OPTS, ("127.0.0.1", 1))
    s.feed(REQ.replace(b"Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n", b""))
    assert s.take().startswith(b"HTTP/1.1 400 ")
    o = dict(OPTS)
    o["fail_if_no_subprotocol"] = False
    s = W.Server(o, ("127.0.0.1", 1))
    s.feed(REQ.replace(b"Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n", b""))
    assert s.opened and s.subprotocol is None
