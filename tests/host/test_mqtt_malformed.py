# Malformed packets end that one connection, never the broker: MQTT 5 clients get DISCONNECT
# 0x81/0x82 (0x94 for a bad topic alias), a log line names the client and the fault, and a client
# connected alongside keeps working.
import struct
import time

import pytest

import rawmqtt as R
from clients import Client


def _pub_raw(topic_bytes, body_tail=b"\x00", flags=0, pid=None):
    body = struct.pack("!H", len(topic_bytes)) + topic_bytes
    if pid is not None:
        body += struct.pack("!H", pid)
    return R.packet(R.PUBLISH, flags, body + body_tail)


# name -> (packet bytes, MQTT 5 reason codes allowed, words one of which the log line must hold)
CASES = {
    "remaining_length_5_bytes": (b"\x30\xff\xff\xff\xff\x7f", (0x81,), ["length"]),
    "truncated_topic": (R.packet(R.PUBLISH, 0, b"\x00\x0aab"), (0x81,), ["truncat", "short", "length", "malformed"]),
    "truncated_subscribe": (R.packet(R.SUBSCRIBE, 2, b"\x00\x01\x00\x00\x05ab"), (0x81,),
                            ["truncat", "short", "length", "malformed"]),
    "invalid_utf8_topic": (_pub_raw(b"a/\xff\xfe"), (0x81,), ["utf"]),
    "nul_in_topic": (_pub_raw(b"a/\x00b"), (0x81,), ["u+0000", "nul", "\\x00", "null", "utf"]),
    "invalid_utf8_user_property": (
        _pub_raw(b"a", b"\x05\x26\x00\x01\xc0\x00\x00"), (0x81,), ["utf"]),
    "subscribe_flags_0": (R.packet(R.SUBSCRIBE, 0, b"\x00\x01\x00\x00\x01a\x00"), (0x81,),
                          ["flag", "reserved"]),
    "pubrel_flags_0": (R.packet(R.PUBREL, 0, b"\x00\x01"), (0x81,), ["flag", "reserved"]),
    "pingreq_flags_1": (b"\xc1\x00", (0x81,), ["flag", "reserved"]),
    "publish_qos_3": (_pub_raw(b"a", b"\x00", flags=6, pid=1), (0x81,), ["qos"]),
    "reserved_packet_type_0": (b"\x00\x00", (0x81, 0x82), ["type", "reserved"]),
    "packet_id_0_qos1": (_pub_raw(b"a", b"\x00", flags=2, pid=0), (0x81, 0x82), ["packet id", "identifier", "pid"]),
    "packet_id_0_subscribe": (R.packet(R.SUBSCRIBE, 2, b"\x00\x00\x00\x00\x01a\x00"), (0x81, 0x82),
                              ["packet id", "identifier", "pid"]),
    "duplicate_property": (R.publish("a", b"x", props=[("message_expiry", 5), ("message_expiry", 6)], version=5),
                           (0x81, 0x82), ["duplicate", "twice", "more than once", "repeated"]),
    "unknown_property": (_pub_raw(b"a", b"\x02\x7f\x00"), (0x81,), ["propert", "unknown"]),
    "property_not_allowed_in_publish": (R.publish("a", b"x", props={"session_expiry": 5}, version=5),
                                        (0x81, 0x82), ["propert", "not allowed"]),
    "subscribe_without_filters": (R.packet(R.SUBSCRIBE, 2, b"\x00\x01\x00"), (0x81, 0x82),
                                  ["filter", "empty", "no topic", "subscri"]),
    "subscribe_options_reserved_bits": (R.subscribe(1, [("a", 0xC1)], version=5), (0x81,),
                                        ["option", "reserved", "flag"]),
    "topic_alias_0": (R.publish("a", b"x", props={"topic_alias": 0}, version=5), (0x94,), ["alias"]),
    "topic_alias_above_maximum": (R.publish("a", b"x", props={"topic_alias": 65535}, version=5), (0x94,), ["alias"]),
}

V311_CASES = {
    "remaining_length_5_bytes": CASES["remaining_length_5_bytes"][0],
    "invalid_utf8_topic": _pub_raw(b"a/\xff", b""),
    "nul_in_topic": _pub_raw(b"a\x00", b""),
    "subscribe_flags_0": R.packet(R.SUBSCRIBE, 0, b"\x00\x01\x00\x01a\x00"),
    "packet_id_0_qos1": _pub_raw(b"a", b"", flags=2, pid=0),
    "subscribe_qos_3": R.packet(R.SUBSCRIBE, 2, b"\x00\x01\x00\x01a\x03"),
}

BROKER_CONFIG = "mqtt.max_topic_alias = 10"


@pytest.fixture(scope="module")
def keeper(mod_broker):
    c = Client(mod_broker.port, "malformed-keeper")
    c.connect()
    c.subscribe("keeper/#", 1)
    yield c
    c.disconnect()


def _keeper_works(keeper, n):
    keeper.drain()
    keeper.publish("keeper/%d" % n, b"still here", qos=1)
    m = keeper.expect()
    assert m.payload == b"still here"


def _assert_logged(b, who, words, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        for line in list(b.log_lines):
            low = line.lower()
            if who in line and any(w in low for w in words):
                return line
        if time.monotonic() > deadline:
            raise AssertionError("no log line naming %r with any of %r:\n%s"
                                 % (who, words, "\n".join(b.log_lines[-30:])))
        time.sleep(0.05)


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_v5_packet_ends_only_that_connection(mod_broker, keeper, uid, case):
    data, codes, words = CASES[case]
    with R.RawClient(mod_broker.port, version=5) as c:
        assert c.connect(uid, version=5).rc == 0
        c.send(data)
        seen = c.until_closed()
        assert [p.type for p in seen] == [R.DISCONNECT], seen
        assert seen[0].rc in codes, seen
    _assert_logged(mod_broker, uid, words)
    assert mod_broker.alive()
    _keeper_works(keeper, len(uid))


@pytest.mark.parametrize("case", sorted(V311_CASES))
def test_malformed_v311_packet_closes_the_connection(mod_broker, keeper, uid, case):
    with R.RawClient(mod_broker.port, version=4) as c:
        assert c.connect(uid, version=4).rc == 0
        c.send(V311_CASES[case])
        assert c.until_closed() == []  # 3.1.1 has no DISCONNECT from the server
    _assert_logged(mod_broker, uid, [""])
    _keeper_works(keeper, len(uid))


@pytest.mark.parametrize("name,data", [
    ("reserved_connect_flag", R.connect("x", version=4)[:9] + bytes([R.connect("x", version=4)[9] | 1]) + R.connect("x", version=4)[10:]),
    ("truncated_connect", R.packet(R.CONNECT, 0, b"\x00\x04MQTT\x04\x02\x00")),
    ("invalid_utf8_client_id", R.packet(R.CONNECT, 0, b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x02\xff\xfe")),
    ("first_packet_not_connect", R.publish("a", b"x")),
    ("will_qos_3", R.packet(R.CONNECT, 0, b"\x00\x04MQTT\x04\x1e\x00\x3c\x00\x01x\x00\x01w\x00\x00")),
])
def test_malformed_connect_is_refused(mod_broker, keeper, name, data):
    with R.RawClient(mod_broker.port, version=4) as c:
        c.send(data)
        seen = c.until_closed()
        assert all(p.type == R.CONNACK and p.rc != 0 for p in seen), seen
    _keeper_works(keeper, len(name))


def test_malformed_v5_connect_gets_connack_0x81_or_close(mod_broker, keeper):
    with R.RawClient(mod_broker.port, version=5) as c:
        # a duplicated Session Expiry Interval property in CONNECT
        c.send(R.connect("dupprop", version=5, props=[("session_expiry", 1), ("session_expiry", 2)]))
        seen = c.until_closed()
        assert all(p.type == R.CONNACK and p.rc in (0x81, 0x82) for p in seen), seen
    _keeper_works(keeper, 0)
