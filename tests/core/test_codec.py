# The MQTT packet codec: framing, decoding, encoding and every malformed-packet rule.
# Runs under pytest and under MicroPython (tests/mp_run.py).
from gatemq import codec as c
from gatemq.errors import MalformedPacket, ProtocolError
from _check import raises


def frame(data, version, max_size=None):
    r = c.Reader(max_size)
    pkts = r.feed(data)
    assert len(pkts) == 1, pkts
    fb, body = pkts[0]
    return c.decode(fb, body, version)


def roundtrip(pkt, version):
    data = c.encode(pkt, version)
    out = frame(data, version if pkt.ptype != c.CONNECT else None)
    assert out == pkt, (out, pkt)
    # Encoding the decoded packet again gives the same bytes (up to property order: MicroPython
    # dicts do not keep insertion order).
    again = c.encode(out, version)
    assert len(again) == len(data)
    props = getattr(pkt, "props", None)
    if not props or len(props) < 2:
        assert again == data
    return data


def bad(data, version, exc=MalformedPacket):
    # Decodes one framed packet and returns the error it raises.
    return raises(exc, frame, data, version)


def raw(fb, body):
    # A packet with a hand-made body.
    return bytes((fb,)) + c.varint(len(body)) + body


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


# --- round trips -------------------------------------------------------------------------------

ALL_PROPS_PUBLISH = {
    c.P_PAYLOAD_FORMAT: 1, c.P_MESSAGE_EXPIRY: 3600, c.P_CONTENT_TYPE: "text/plain",
    c.P_RESPONSE_TOPIC: "reply/here", c.P_CORRELATION_DATA: b"\x00\x01corr",
    c.P_SUBSCRIPTION_ID: [1, 268435455], c.P_TOPIC_ALIAS: 3,
    c.P_USER_PROPERTY: [("k", "v"), ("k", "v2"), ("\u00e9", "\u2603")],
}


def test_connect_roundtrip_all_versions():
    roundtrip(c.Connect("dev-1", c.MQTT31, False, 30), c.MQTT31)
    roundtrip(c.Connect("dev-1", c.MQTT311, True, 0, c.Will("last/will", b"gone", 2, True),
                        "alice", b"s3cret"), c.MQTT311)
    roundtrip(c.Connect("", c.MQTT311, True, 60, None, "bob"), c.MQTT311)
    will = c.Will("w", b"\xff\x00", 1, False,
                  {c.P_WILL_DELAY: 30, c.P_PAYLOAD_FORMAT: 0, c.P_MESSAGE_EXPIRY: 9,
                   c.P_CONTENT_TYPE: "x", c.P_RESPONSE_TOPIC: "r", c.P_CORRELATION_DATA: b"c",
                   c.P_USER_PROPERTY: [("a", "b")]})
    props = {c.P_SESSION_EXPIRY: 0xFFFFFFFF, c.P_RECEIVE_MAXIMUM: 10, c.P_MAXIMUM_PACKET_SIZE: 1024,
             c.P_TOPIC_ALIAS_MAXIMUM: 5, c.P_REQUEST_RESPONSE_INFO: 1, c.P_REQUEST_PROBLEM_INFO: 0,
             c.P_USER_PROPERTY: [("x", "y")], c.P_AUTH_METHOD: "SCRAM", c.P_AUTH_DATA: b"\x01"}
    roundtrip(c.Connect("d", c.MQTT5, True, 10, will, None, b"pw-without-user", props), c.MQTT5)


def test_connect_fields_decode():
    p = frame(c.encode_connect("id", c.MQTT31, False, 7, "u", "p"), None)
    assert (p.proto_name, p.version, p.clean_start, p.keepalive) == ("MQIsdp", 3, False, 7)
    assert (p.client_id, p.username, p.password, p.will) == ("id", "u", b"p", None)
    assert p.props is None


def test_connack_roundtrip():
    for v in (c.MQTT31, c.MQTT311):
        roundtrip(c.Connack(v == c.MQTT311, 0), v)
        roundtrip(c.Connack(False, 5), v)
    # 3.1 has no Session Present flag.
    assert c.encode_connack(True, 0, None, c.MQTT31) == b"\x20\x02\x00\x00"
    props = {c.P_ASSIGNED_CLIENT_ID: "auto-1", c.P_SERVER_KEEPALIVE: 20, c.P_MAXIMUM_QOS: 1,
             c.P_RETAIN_AVAILABLE: 0, c.P_WILDCARD_SUB_AVAILABLE: 1, c.P_SUB_ID_AVAILABLE: 1,
             c.P_SHARED_SUB_AVAILABLE: 1, c.P_TOPIC_ALIAS_MAXIMUM: 10, c.P_RECEIVE_MAXIMUM: 32,
             c.P_MAXIMUM_PACKET_SIZE: 1 << 20, c.P_SESSION_EXPIRY: 5, c.P_RESPONSE_INFO: "ri",
             c.P_SERVER_REFERENCE: "other", c.P_REASON_STRING: "why", c.P_AUTH_METHOD: "m",
             c.P_AUTH_DATA: b"d", c.P_USER_PROPERTY: [("a", "1")]}
    roundtrip(c.Connack(False, 0, props), c.MQTT5)
    roundtrip(c.Connack(False, 0x87), c.MQTT5)
    assert c.encode_connack(True, 0, None, c.MQTT311) == b"\x20\x02\x01\x00"
    assert c.encode_connack(False, 0x84, None, c.MQTT5) == b"\x20\x03\x00\x84\x00"


def test_publish_roundtrip():
    for v in (c.MQTT311, c.MQTT5):
        roundtrip(c.Publish("a/b", b"", 0), v)
        roundtrip(c.Publish("a/b", b"x" * 200, 1, True, True, 65535), v)
        roundtrip(c.Publish("\u00fcber/\u2603", bytes(range(256)), 2, False, False, 1), v)
    roundtrip(c.Publish("t", b"payload", 1, False, False, 9, ALL_PROPS_PUBLISH), c.MQTT5)
    roundtrip(c.Publish("", b"aliased", 0, props={c.P_TOPIC_ALIAS: 1}), c.MQTT5)


def test_publish_wire_format():
    assert bytes(c.encode_publish(b"a", b"hi", 0, False, False, None, b"", c.MQTT311)) == \
        b"\x30\x05\x00\x01ahi"
    assert bytes(c.encode_publish(b"a", b"hi", 1, True, True, 0x0102, b"", c.MQTT5)) == \
        b"\x3b\x08\x00\x01a\x01\x02\x00hi"
    # The v3 encoder ignores properties.
    props = c.encode_props({c.P_MESSAGE_EXPIRY: 1})
    assert bytes(c.encode_publish(b"a", b"", 0, False, False, None, props, c.MQTT311)) == \
        b"\x30\x03\x00\x01a"


def test_publish_pid_patching():
    props = c.encode_props({c.P_USER_PROPERTY: [("k", "v")]})
    for payload in (b"small", b"y" * 300, b"z" * 20000):
        buf = c.encode_publish(b"topic/x", payload, 1, False, False, 1, props, c.MQTT5)
        off = c.publish_pid_offset(buf)
        hdr = 2 if len(buf) - 2 < 128 else (3 if len(buf) - 3 < 16384 else 4)
        assert off == hdr + 2 + len(b"topic/x")
        buf[off] = 0x12
        buf[off + 1] = 0x34
        p = frame(bytes(buf), c.MQTT5)
        assert p.pid == 0x1234 and p.payload == payload and p.props == {c.P_USER_PROPERTY: [("k", "v")]}


def test_acks_roundtrip():
    for t in (c.PUBACK, c.PUBREC, c.PUBREL, c.PUBCOMP):
        for v in (c.MQTT311, c.MQTT5):
            data = roundtrip(c.Ack(t, 42), v)
            assert len(data) == 4 and data[0] == (t << 4) | (2 if t == c.PUBREL else 0)
        rc = 0x92 if t in (c.PUBREL, c.PUBCOMP) else 0x10
        data = roundtrip(c.Ack(t, 42, rc), c.MQTT5)
        assert len(data) == 5
        roundtrip(c.Ack(t, 42, 0, {c.P_REASON_STRING: "ok", c.P_USER_PROPERTY: [("a", "b")]}), c.MQTT5)
        roundtrip(c.Ack(t, 7, rc, {c.P_REASON_STRING: "no"}), c.MQTT5)


def test_v5_ack_with_only_pid_means_success():
    p = frame(b"\x40\x02\x00\x05", c.MQTT5)
    assert (p.ptype, p.pid, p.rc, p.props) == (c.PUBACK, 5, 0, None)
    p = frame(b"\x50\x03\x00\x05\x80", c.MQTT5)
    assert (p.ptype, p.rc, p.props) == (c.PUBREC, 0x80, None)
    assert c.encode_ack(c.PUBACK, 5, 0, None, c.MQTT5) == b"\x40\x02\x00\x05"


def test_subscribe_roundtrip():
    for v in (c.MQTT311, c.MQTT5):
        roundtrip(c.Subscribe(1, [("a/+", 0), ("b/#", 1), ("c", 2)]), v)
    roundtrip(c.Subscribe(2, [("a", 0x2E), ("$share/g/x", 0x19)],
                          {c.P_SUBSCRIPTION_ID: [77], c.P_USER_PROPERTY: [("u", "p")]}), c.MQTT5)
    data = c.encode_subscribe(3, [("x", 1)], None, c.MQTT311)
    assert data == b"\x82\x06\x00\x03\x00\x01x\x01"


def test_suback_unsubscribe_unsuback_roundtrip():
    roundtrip(c.Suback(1, [0, 1, 2, 0x80]), c.MQTT311)
    roundtrip(c.Suback(1, [0, 0x97, 0xA1], {c.P_REASON_STRING: "quota"}), c.MQTT5)
    for v in (c.MQTT311, c.MQTT5):
        roundtrip(c.Unsubscribe(9, ["a/b", "c/#"]), v)
    roundtrip(c.Unsubscribe(9, ["a"], {c.P_USER_PROPERTY: [("k", "")]}), c.MQTT5)
    assert roundtrip(c.Unsuback(9), c.MQTT311) == b"\xb0\x02\x00\x09"
    roundtrip(c.Unsuback(9, [0, 0x11], {c.P_REASON_STRING: "none"}), c.MQTT5)


def test_ping_disconnect_auth_roundtrip():
    for v in (c.MQTT311, c.MQTT5):
        assert roundtrip(c.Pingreq(), v) == c.PINGREQ_BYTES == b"\xc0\x00"
        assert roundtrip(c.Pingresp(), v) == c.PINGRESP_BYTES == b"\xd0\x00"
        assert roundtrip(c.Disconnect(), v) == b"\xe0\x00"
    assert frame(b"\xc0\x00", c.MQTT5).ptype == c.PINGREQ
    assert roundtrip(c.Disconnect(0x04), c.MQTT5) == b"\xe0\x01\x04"
    roundtrip(c.Disconnect(0x8E, {c.P_REASON_STRING: "taken over", c.P_SESSION_EXPIRY: 0,
                                  c.P_SERVER_REFERENCE: "b2"}), c.MQTT5)
    assert c.encode_disconnect(0x8B, None, c.MQTT311) == b"\xe0\x00"
    assert roundtrip(c.Auth(), c.MQTT5) == b"\xf0\x00"
    roundtrip(c.Auth(0x18, {c.P_AUTH_METHOD: "SCRAM", c.P_AUTH_DATA: b"\x00\x01"}), c.MQTT5)


def test_encode_props_layout():
    assert c.encode_props(None) == b"\x00" and c.encode_props({}) == b"\x00"
    assert c.encode_props({c.P_TOPIC_ALIAS: 0x0102}) == b"\x03\x23\x01\x02"
    assert c.encode_props({c.P_SUBSCRIPTION_ID: [1, 200]}) == b"\x05\x0b\x01\x0b\xc8\x01"
    assert c.encode_props({c.P_USER_PROPERTY: [("a", "b")]}) == b"\x07\x26\x00\x01a\x00\x01b"


def test_varint():
    for n, b in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                 (16384, b"\x80\x80\x01"), (2097152, b"\x80\x80\x80\x01"),
                 (268435455, b"\xff\xff\xff\x7f")):
        assert c.varint(n) == b
    raises(ValueError, c.varint, 268435456)


# --- framing -----------------------------------------------------------------------------------

def stream():
    return (c.encode_connect("a", c.MQTT5, props={c.P_SESSION_EXPIRY: 1})
            + bytes(c.encode_publish(b"t/1", b"p" * 300, 1, False, False, 1, b"", c.MQTT5))
            + c.PINGREQ_BYTES
            + bytes(c.encode_publish(b"t/2", b"", 0, True, False, None, b"", c.MQTT5))
            + c.encode_disconnect(0, None, c.MQTT5))


def test_reader_many_packets_in_one_feed():
    pkts = c.Reader(None).feed(stream())
    assert [fb >> 4 for fb, _ in pkts] == [c.CONNECT, c.PUBLISH, c.PINGREQ, c.PUBLISH, c.DISCONNECT]
    assert c.decode(pkts[0][0], pkts[0][1], None).client_id == "a"
    p = c.decode(pkts[1][0], pkts[1][1], c.MQTT5)
    assert (p.topic, p.payload, p.pid) == ("t/1", b"p" * 300, 1)
    assert isinstance(pkts[1][1], bytes)


def test_reader_byte_by_byte():
    data = stream()
    r = c.Reader(1000)
    got = []
    for i in range(len(data)):
        got += r.feed(data[i:i + 1])
    assert got == c.Reader(None).feed(data)


def test_reader_split_everywhere():
    data = stream()
    whole = c.Reader(None).feed(data)
    for cut in range(1, len(data)):
        r = c.Reader(None)
        assert r.feed(data[:cut]) + r.feed(bytearray(data[cut:])) == whole
        assert r.feed(b"") == []


def test_reader_partial_then_more_packets():
    r = c.Reader(None)
    pub = bytes(c.encode_publish(b"x", b"1" * 1000, 0, False, False, None, b"", c.MQTT311))
    assert r.feed(pub[:500]) == []
    assert r.feed(pub[500:999]) == []
    out = r.feed(pub[999:] + c.PINGREQ_BYTES + b"\xc0")
    assert [fb for fb, _ in out] == [0x30, 0xC0]
    assert r.feed(b"\x00") == [(0xC0, b"")]


def test_reader_oversize_detected_from_header():
    r = c.Reader(100)
    # 2-byte header + 98 bytes of body: exactly at the limit.
    ok = raw(0x30, s("t") + b"x" * 95)
    assert len(ok) == 100 and len(r.feed(ok)) == 1
    # Only the header of a 1 MB packet: refused before any body arrives.
    e = raises(MalformedPacket, c.Reader(100).feed, b"\x30\x80\x80\x40")
    assert e.reason == 0x95 and "too large" in str(e)
    e = raises(MalformedPacket, c.Reader(100).feed, raw(0x30, s("t") + b"x" * 96))
    assert e.reason == 0x95


def test_reader_limit_can_change():
    r = c.Reader(None)
    r.max_packet_size = 10
    e = raises(MalformedPacket, r.feed, raw(0x30, s("t") + b"x" * 20))
    assert e.reason == 0x95


def test_reader_keeps_packets_before_a_fault():
    e = raises(MalformedPacket, c.Reader(50).feed, c.PINGREQ_BYTES + b"\x30\x7f")
    assert e.packets == [(0xC0, b"")]


def test_reader_remaining_length_over_4_bytes():
    e = raises(MalformedPacket, c.Reader(None).feed, b"\x30\xff\xff\xff\xff\x01")
    assert e.reason == 0x81
    e = raises(MalformedPacket, c.Reader(None).feed, b"\x30\x80\x00")
    assert e.reason == 0x81 and "shortest" in str(e)


# --- malformed and forbidden packets ------------------------------------------------------------

def test_reserved_fixed_header_flags():
    for fb, body in ((0x61, b"\x00\x01"), (0x60, b"\x00\x01"), (0x83, b"\x00\x01" + s("a") + b"\x00"),
                     (0x80, b"\x00\x01" + s("a") + b"\x00"), (0xA0, b"\x00\x01" + s("a")),
                     (0x42, b"\x00\x01"), (0xC1, b""), (0xE8, b""), (0x22, b"\x00\x00")):
        e = bad(raw(fb, body), c.MQTT311)
        assert e.reason == 0x81 and "flags" in str(e), (fb, e)
    e = bad(raw(0x00, b""), c.MQTT311)
    assert "reserved" in str(e)


def test_only_connect_before_connect():
    e = bad(c.PINGREQ_BYTES, None, ProtocolError)
    assert e.reason == 0x82 and "CONNECT" in str(e)
    e = bad(bytes(c.encode_publish(b"a", b"", 0, False, False, None, b"", 4)), None, ProtocolError)
    assert e.reason == 0x82


def test_connect_unsupported_protocol():
    for name, level in (("MQTT", 3), ("MQTT", 6), ("MQIsdp", 4), ("MQTX", 4), ("mqtt", 4)):
        body = s(name) + bytes((level, 2, 0, 60)) + s("id")
        e = bad(raw(0x10, body), None, ProtocolError)
        assert e.reason == 0x84 and e.level == level


def connect_body(flags, tail=b"", level=4):
    return raw(0x10, s("MQTT") + bytes((level, flags, 0, 60)) + (b"\x00" if level == 5 else b"")
               + s("id") + tail)


def test_connect_flag_rules():
    assert bad(connect_body(0x03), None).reason == 0x81  # reserved bit
    e = bad(connect_body(0x1E, b"\x00" + s("w") + s("p"), 5), None)  # will QoS 3
    assert "QoS" in str(e)
    e = bad(connect_body(0x0A), None)  # will QoS 1 without the will flag
    assert "will flag" in str(e)
    e = bad(connect_body(0x22), None)  # will retain without the will flag
    assert "will flag" in str(e)
    e = bad(connect_body(0x42, s("pw")), None)  # 3.1.1 password without user name
    assert "password" in str(e)
    p = frame(connect_body(0x42, s("pw"), 5), None)  # allowed in 5
    assert p.password == b"pw" and p.username is None


def test_connect_truncated_and_trailing():
    good = connect_body(0xC2, s("u") + s("p"))
    assert frame(good, None).username == "u"
    for cut in range(3, len(good) - 1):
        body = good[2:cut]
        e = bad(raw(0x10, body), None)
        assert isinstance(e, MalformedPacket)
    e = bad(raw(0x10, good[2:] + b"\x00"), None)
    assert "unexpected bytes" in str(e)


def test_invalid_utf8_and_nul_in_strings():
    # invalid byte, truncated sequence, overlong NUL, UTF-16 surrogate, past U+10FFFF, real NUL
    for t in (b"a\xffb", b"a\xe2\x82", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\x00b"):
        e = bad(raw(0x30, s(t)), c.MQTT311)
        assert e.reason == 0x81 and "topic" in str(e), t
        e = bad(raw(0x10, s("MQTT") + b"\x04\x02\x00\x3c" + s(t)), None)
        assert "client identifier" in str(e)
        e = bad(raw(0x82, b"\x00\x01" + s(t) + b"\x00"), c.MQTT5)
        assert "filter" in str(e)
    # Well-formed multi-byte characters are fine.
    assert frame(raw(0x30, s("\u00e9\u0800\uffff\U00010000\U0010ffff")), 4).topic == \
        "\u00e9\u0800\uffff\U00010000\U0010ffff"
    assert c.utf8_ok(b"\xe2\x98\x83") and not c.utf8_ok(b"\xed\xbf\xbf") and not c.utf8_ok(b"\xe0\x80\xaf")


def test_publish_rules():
    e = bad(raw(0x36, s("a") + b"\x00\x01"), c.MQTT311)
    assert "QoS 3" in str(e) and e.reason == 0x81
    e = bad(raw(0x32, s("a") + b"\x00\x00"), c.MQTT311, ProtocolError)
    assert e.reason == 0x82 and "identifier 0" in str(e)
    e = bad(raw(0x38, s("a")), c.MQTT311)
    assert "DUP" in str(e)
    e = bad(raw(0x30, s("")), c.MQTT311, ProtocolError)
    assert "empty topic" in str(e)
    e = bad(raw(0x30, s("") + b"\x00"), c.MQTT5, ProtocolError)
    assert "Topic Alias" in str(e)
    e = bad(raw(0x32, s("a") + b"\x00"), c.MQTT311)
    assert "truncated" in str(e)
    e = bad(raw(0x30, b"\x00\x05ab"), c.MQTT311)
    assert "past the end" in str(e)
    e = bad(raw(0x30, s("a")), c.MQTT5)  # no property length
    assert "truncated" in str(e)


def test_ack_rules():
    assert bad(b"\x40\x02\x00\x00", c.MQTT311, ProtocolError).reason == 0x82
    assert "unexpected" in str(bad(b"\x40\x03\x00\x01\x00", c.MQTT311))
    assert "truncated" in str(bad(b"\x40\x01\x00", c.MQTT5))
    e = bad(b"\x40\x03\x00\x01\x92", c.MQTT5, ProtocolError)  # a PUBREL code in PUBACK
    assert "0x92" in str(e)
    e = bad(b"\x62\x03\x00\x01\x10", c.MQTT5, ProtocolError)
    assert e.reason == 0x82
    e = bad(b"\x40\x06\x00\x01\x00\x01\x1f\x00", c.MQTT5)  # property past its length
    assert e.reason == 0x81


def test_subscribe_rules():
    for opts in (0x04, 0x08, 0x10, 0x80, 0x03):
        e = bad(raw(0x82, b"\x00\x01" + s("a") + bytes((opts,))), c.MQTT311)
        assert e.reason == 0x81, opts
    for opts in (0x40, 0x80):
        e = bad(raw(0x82, b"\x00\x01\x00" + s("a") + bytes((opts,))), c.MQTT5)
        assert e.reason == 0x81 and "reserved" in str(e), opts
    # QoS 3 and Retain Handling 3 are protocol errors in MQTT 5 (3.8.3.1), as is No Local on a
    # shared subscription [MQTT-3.8.3-4].
    for opts, f in ((0x30, "a"), (0x03, "a"), (0x04, "$share/g/a")):
        e = bad(raw(0x82, b"\x00\x01\x00" + s(f) + bytes((opts,))), c.MQTT5, ProtocolError)
        assert e.reason == 0x82, opts
    assert frame(raw(0x82, b"\x00\x01\x00" + s("$share/g/a") + b"\x01"), c.MQTT5).topics == \
        [("$share/g/a", 1)]
    e = bad(raw(0x82, b"\x00\x01"), c.MQTT311, ProtocolError)
    assert "no topic filters" in str(e)
    e = bad(raw(0x82, b"\x00\x01\x00"), c.MQTT5, ProtocolError)
    assert e.reason == 0x82
    e = bad(raw(0x82, b"\x00\x01" + s("a")), c.MQTT311)  # options byte missing
    assert "truncated" in str(e)
    e = bad(raw(0x82, b"\x00\x00" + s("a") + b"\x00"), c.MQTT311, ProtocolError)
    assert e.reason == 0x82
    e = bad(raw(0x82, b"\x00\x01\x04\x0b\x01\x0b\x02" + s("a") + b"\x00"), c.MQTT5, ProtocolError)
    assert "twice" in str(e)
    e = bad(raw(0x82, b"\x00\x01\x02\x0b\x00" + s("a") + b"\x00"), c.MQTT5, ProtocolError)
    assert "Subscription Identifier of 0" in str(e)


def test_unsubscribe_and_acks_rules():
    e = bad(raw(0xA2, b"\x00\x01"), c.MQTT311, ProtocolError)
    assert "no topic filters" in str(e)
    e = bad(raw(0xB0, b"\x00\x01\x00"), c.MQTT311)
    assert "unexpected" in str(e)
    e = bad(raw(0x90, b"\x00\x01\x03"), c.MQTT311, ProtocolError)
    assert "0x03" in str(e)
    e = bad(raw(0x90, b"\x00\x01\x00\x85"), c.MQTT5, ProtocolError)
    assert "0x85" in str(e)
    e = bad(raw(0xB0, b"\x00\x01\x00\x01"), c.MQTT5, ProtocolError)
    assert "0x01" in str(e)


def test_disconnect_auth_rules():
    assert "unexpected" in str(bad(b"\xe0\x01\x00", c.MQTT311))
    assert bad(b"\xe0\x01\x05", c.MQTT5, ProtocolError).reason == 0x82
    e = bad(b"\xf0\x00", c.MQTT311)
    assert e.reason == 0x81 and "AUTH" in str(e)
    assert bad(b"\xf0\x01\x04", c.MQTT5, ProtocolError).reason == 0x82


def test_property_rules():
    def pub(props):
        return raw(0x30, s("a") + c.varint(len(props)) + props)

    e = bad(pub(b"\x23\x00\x01\x23\x00\x02"), c.MQTT5, ProtocolError)  # Topic Alias twice
    assert e.reason == 0x82 and "twice" in str(e)
    p = frame(pub(b"\x0b\x01\x0b\x02\x26" + s("k") + s("1") + b"\x26" + s("k") + s("2")), c.MQTT5)
    assert p.props == {c.P_SUBSCRIPTION_ID: [1, 2], c.P_USER_PROPERTY: [("k", "1"), ("k", "2")]}
    e = bad(pub(b"\x05\x00"), c.MQTT5)  # unknown id
    assert e.reason == 0x81 and "unknown property" in str(e)
    e = bad(pub(b"\x11\x00\x00\x00\x01"), c.MQTT5)  # Session Expiry is not for PUBLISH
    assert e.reason == 0x81 and "not allowed in PUBLISH" in str(e)
    e = bad(pub(b"\x01\x02"), c.MQTT5, ProtocolError)  # Payload Format 2
    assert e.reason == 0x82
    e = bad(pub(b"\x03\x00\x05ab"), c.MQTT5)  # string past its end
    assert e.reason == 0x81
    e = bad(pub(b"\x02\x00\x00"), c.MQTT5)  # Four Byte Integer cut short
    assert e.reason == 0x81
    e = bad(pub(b"\x0b\x80\x00"), c.MQTT5)  # non-minimal varint
    assert e.reason == 0x81
    e = bad(pub(b"\x0b\xff\xff\xff\xff"), c.MQTT5)  # 5-byte varint
    assert e.reason == 0x81
    e = bad(raw(0x30, s("a") + b"\x05\x23\x00\x01"), c.MQTT5)  # property length past the end
    assert e.reason == 0x81
    # A Will property in CONNECT's own properties, a CONNECT one in the will's.
    body = s("MQTT") + b"\x05\x02\x00\x3c" + b"\x05\x18\x00\x00\x00\x01" + s("id")
    assert "not allowed in CONNECT" in str(bad(raw(0x10, body), None))
    body = s("MQTT") + b"\x05\x06\x00\x3c\x00" + s("id") + b"\x05\x11\x00\x00\x00\x01" + s("w") + s("p")
    assert "not allowed in Will" in str(bad(raw(0x10, body), None))
    body = s("MQTT") + b"\x05\x02\x00\x3c\x03\x21\x00\x00" + s("id")  # Receive Maximum 0
    assert bad(raw(0x10, body), None, ProtocolError).reason == 0x82
    e = bad(raw(0xF0, b"\x18\x04\x16\x00\x01x"), c.MQTT5, ProtocolError)
    assert "Authentication Method" in str(e)
    e = bad(b"\x40\x07\x00\x01\x00\x03\x1f\x00\x01", c.MQTT5)
    assert "truncated" in str(e) or "past the end" in str(e)


def test_v3_packets_have_no_properties():
    # In 3.1.1 the bytes after the topic are payload, never properties.
    p = frame(raw(0x30, s("a") + b"\x03\x23\x00\x01"), c.MQTT311)
    assert p.props is None and p.payload == b"\x03\x23\x00\x01"


def test_reader_oversize_header_split_across_feeds():
    r = c.Reader(100)
    assert r.feed(b"\x30") == []
    assert r.feed(b"\x80") == []
    e = raises(MalformedPacket, r.feed, b"\x01")  # remaining length 128: 131 bytes in all
    assert e.reason == 0x95


def every_kind(version):
    v5 = version == c.MQTT5
    props = {c.P_USER_PROPERTY: [("k", "v")], c.P_REASON_STRING: "r"} if v5 else None
    return [
        c.encode_connect("cid", version, False, 30, "u", b"p", c.Will("w/t", b"bye", 1, True,
                         {c.P_WILL_DELAY: 3} if v5 else None), {c.P_SESSION_EXPIRY: 9} if v5 else None),
        c.encode_connack(True, 0, {c.P_ASSIGNED_CLIENT_ID: "x"} if v5 else None, version),
        bytes(c.encode_publish(b"a/b", b"data", 2, True, True, 300,
                               c.encode_props({c.P_TOPIC_ALIAS: 2, c.P_SUBSCRIPTION_ID: [5]}) if v5 else b"",
                               version)),
        c.encode_ack(c.PUBREL, 3, 0x92 if v5 else 0, props, version),
        c.encode_subscribe(4, [("s/+", 1), ("t/#", 2)], {c.P_SUBSCRIPTION_ID: [1]} if v5 else None, version),
        c.encode_suback(4, [1, 0x80], props, version),
        c.encode_unsubscribe(5, ["s/+"], None, version),
        c.encode_unsuback(5, [0x11], props, version),
        c.encode_disconnect(0x8E if v5 else 0, props, version),
        c.encode_auth(0x18, {c.P_AUTH_METHOD: "m", c.P_AUTH_DATA: b"d"}),
        c.PINGREQ_BYTES,
    ]


def test_truncated_and_flipped_packets_only_raise_codec_errors():
    # A deterministic mutation sweep that also runs on MicroPython (the hypothesis fuzz is in
    # tests/host): every truncation and many single-byte changes of a packet of every kind.
    seen = 0
    for version in (c.MQTT311, c.MQTT5):
        for good in every_kind(version):
            target = None if good[0] >> 4 == c.CONNECT else version
            variants = [good[:i] for i in range(1, len(good))]
            for i in range(len(good)):
                for x in (0x00, 0x01, 0x80, 0xFF, good[i] ^ 0x02):
                    variants.append(good[:i] + bytes((x,)) + good[i + 1:])
            for data in variants:
                for body_fix in (False, True):
                    if body_fix and len(data) > 2:
                        # keep the body, repair the length so the decoder sees the damage
                        data = bytes((data[0],)) + c.varint(len(data) - 2) + data[2:]
                    try:
                        for fb, body in c.Reader(None).feed(data):
                            c.decode(fb, body, target)
                    except (MalformedPacket, ProtocolError) as e:
                        assert 0x81 <= e.reason <= 0x95
                        seen += 1
    assert seen > 1000


def test_connect_variable_header_matches_spec_example():
    # MQTT 5.0 section 3.1.2.12: name "MQTT", level 5, flags 0xC2 (user name, password, clean
    # start), keep alive 10, properties length 5 with Session Expiry Interval 10.
    data = c.encode_connect("", c.MQTT5, True, 10, "u", b"p", None, {c.P_SESSION_EXPIRY: 10})
    assert data[2:18] == b"\x00\x04MQTT\x05\xc2\x00\x0a\x05\x11\x00\x00\x00\x0a"
    # 3.1.1 section 3.1.2.10 example: name, level 4, flags 0xCE, keep alive 10.
    will = c.Will("w", b"", 1, False)
    data = c.encode_connect("", c.MQTT311, True, 10, "u", b"p", will)
    assert data[2:12] == b"\x00\x04MQTT\x04\xce\x00\x0a"


def test_property_field_sizes():
    # One-byte, two-byte and four-byte integer properties are encoded at their spec sizes.
    for pid, size in ((c.P_PAYLOAD_FORMAT, 1), (c.P_REQUEST_PROBLEM_INFO, 1), (c.P_MAXIMUM_QOS, 1),
                      (c.P_SERVER_KEEPALIVE, 2), (c.P_RECEIVE_MAXIMUM, 2), (c.P_TOPIC_ALIAS, 2),
                      (c.P_TOPIC_ALIAS_MAXIMUM, 2), (c.P_MESSAGE_EXPIRY, 4), (c.P_SESSION_EXPIRY, 4),
                      (c.P_WILL_DELAY, 4), (c.P_MAXIMUM_PACKET_SIZE, 4)):
        assert c.encode_props({pid: 1}) == bytes((1 + size, pid)) + b"\x00" * (size - 1) + b"\x01"
