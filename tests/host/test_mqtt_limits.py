# Limits: every configured limit is enforced with its reason code and a log line naming the
# client; the idle timeout for connections that never send CONNECT.
import time

import pytest

import rawmqtt as R
from clients import V311, V5


def assert_logged(b, who, keywords, timeout=3.0):
    """A broker log line naming `who` and any of `keywords` (case-insensitive)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in list(b.log_lines):
            low = line.lower()
            if who.lower() in low and any(k in low for k in keywords):
                return line
        if time.monotonic() > deadline:
            raise AssertionError("no log line naming %r and any of %r:\n%s" % (who, keywords, b.log()))
        time.sleep(0.05)


def _alive(b, client, uid):
    c = client(b.port, uid + "-alive")
    c.subscribe(uid + "/alive")
    c.publish(uid + "/alive", b"1")
    assert c.expect().payload == b"1"


def test_max_packet_size_announced_and_enforced_v5(make_broker, client, uid):
    b = make_broker("mqtt.max_packet_size = 1KB")
    with R.RawClient(b.port, version=5) as c:
        ack = c.connect(uid, version=5)
        assert ack.props.get("maximum_packet_size") == 1024
        c.send(R.publish(uid + "/t", b"x" * 900, version=5))
        assert c.is_open()
        c.send(R.publish(uid + "/t", b"x" * 2000, version=5))
        seen = c.until_closed()
        assert [p.rc for p in seen if p.type == R.DISCONNECT] == [0x95], seen
    assert_logged(b, uid, ["large", "size"])
    _alive(b, client, uid)


def test_max_packet_size_enforced_v311(make_broker, client, uid):
    b = make_broker("mqtt.max_packet_size = 1KB")
    watch = client(b.port, uid + "-w")
    watch.subscribe(uid + "/t", 0)
    with R.RawClient(b.port) as c:
        assert c.connect(uid).rc == 0
        c.send(R.publish(uid + "/t", b"x" * 2000))
        assert c.until_closed() == []
    watch.expect_none(0.3)


@pytest.mark.parametrize("version,code", [(4, 0x02), (5, 0x85)])
def test_max_clientid_len(make_broker, uid, version, code):
    b = make_broker("mqtt.max_clientid_len = 23")  # EMQX's smallest allowed value
    with R.RawClient(b.port, version=version) as c:
        assert c.connect("c" * 23, version=version).rc == 0
    with R.RawClient(b.port, version=version) as c:
        c.send(R.connect("c" * 24, version=version))
        seen = c.until_closed()
        assert [(p.type, p.rc) for p in seen] == [(R.CONNACK, code)], seen
    assert_logged(b, "c" * 24, ["client", "id"])


def test_max_topic_levels_for_subscribe_and_publish(make_broker, client, uid):
    b = make_broker("mqtt.max_topic_levels = 3")
    watch = client(b.port, uid + "-w")
    watch.subscribe("#", 0)
    with R.RawClient(b.port, version=5) as c:
        c.connect(uid, version=5)
        codes = c.subscribe(1, [(uid + "/b/c", 1), (uid + "/b/c/d", 1)], version=5).codes
        assert codes[0] == 1 and codes[1] >= 0x80, codes
        c.send(R.publish(uid + "/b/c/d", b"deep", qos=1, pid=5, version=5))
        try:
            p = c.recv()
            assert p.rc >= 0x80 and p.type in (R.PUBACK, R.DISCONNECT), p
        except R.Closed:
            pass
    assert [m.topic for m in watch.drain() if m.payload == b"deep"] == []
    assert_logged(b, uid, ["level", "topic"])


def test_max_qos_allowed(make_broker, client, uid):
    b = make_broker("mqtt.max_qos_allowed = 1")
    with R.RawClient(b.port, version=5) as c:
        ack = c.connect(uid, version=5)
        assert ack.props.get("maximum_qos") == 1
        assert c.subscribe(1, [(uid + "/q", 2)], version=5).codes == [1]  # granted downgraded
        c.send(R.publish(uid + "/q", b"x", qos=2, pid=1, version=5))
        seen = c.until_closed()
        assert [p.rc for p in seen if p.type == R.DISCONNECT] == [0x9B], seen
    assert_logged(b, uid, ["qos"])
    v3 = client(b.port, uid + "-v3", V311)
    assert v3.subscribe(uid + "/q", 2) == [1]


def test_retain_not_available(make_broker, client, uid):
    b = make_broker("mqtt.retain_available = false")
    with R.RawClient(b.port, version=5) as c:
        ack = c.connect(uid, version=5)
        assert ack.props.get("retain_available") == 0
        c.send(R.publish(uid + "/r", b"x", qos=1, pid=1, retain=True, version=5))
        seen = c.until_closed()
        assert [p.rc for p in seen if p.type == R.DISCONNECT] == [0x9A], seen
    assert_logged(b, uid, ["retain"])
    late = client(b.port, uid + "-late")
    late.subscribe(uid + "/r", 1)
    late.expect_none(0.3)


def test_wildcard_subscription_disabled(make_broker, client, uid):
    b = make_broker("mqtt.wildcard_subscription = false")
    with R.RawClient(b.port, version=5) as c:
        ack = c.connect(uid, version=5)
        assert ack.props.get("wildcard_available") == 0
        assert c.subscribe(1, [(uid + "/+", 1), (uid + "/#", 1), (uid + "/plain", 1)], version=5).codes == [0xA2, 0xA2, 1]
    assert_logged(b, uid, ["wildcard"])


def test_shared_subscription_disabled(make_broker, client, uid):
    b = make_broker("mqtt.shared_subscription = false")
    with R.RawClient(b.port, version=5) as c:
        ack = c.connect(uid, version=5)
        assert ack.props.get("shared_available") == 0
        assert c.subscribe(1, [("$share/g/%s/s" % uid, 1), (uid + "/s", 1)], version=5).codes == [0x9E, 1]
    assert_logged(b, uid, ["shared"])


def test_max_subscriptions(make_broker, client, uid):
    b = make_broker("mqtt.max_subscriptions = 2")
    with R.RawClient(b.port, version=5) as c:
        c.connect(uid, version=5)
        assert c.subscribe(1, [(uid + "/1", 1), (uid + "/2", 1), (uid + "/3", 1)], version=5).codes == [1, 1, 0x97]
        # re-subscribing to an existing filter is not a new subscription
        assert c.subscribe(2, [(uid + "/1", 0)], version=5).codes == [0]
    assert_logged(b, uid, ["subscri"])


def test_max_awaiting_rel(make_broker, uid):
    b = make_broker("mqtt { max_awaiting_rel = 2, max_inflight = 10 }")
    with R.RawClient(b.port, version=5) as c:
        c.connect(uid, version=5)
        for pid in (1, 2):
            c.send(R.publish(uid + "/t", b"x", qos=2, pid=pid, version=5))
            assert c.expect(R.PUBREC).rc in (0, 0x10)  # 0x10: no matching subscribers
        c.send(R.publish(uid + "/t", b"x", qos=2, pid=3, version=5))
        try:
            p = c.recv()
            assert p.rc == 0x93 and p.type in (R.PUBREC, R.DISCONNECT), p
        except R.Closed:
            raise AssertionError("closed without a reason code")
    assert_logged(b, uid, ["awaiting", "rel", "pubrel"])


def test_await_rel_timeout_forgets_the_message(make_broker, uid):
    b = make_broker("mqtt.await_rel_timeout = 1s")
    with R.RawClient(b.port, version=5) as c:
        c.connect(uid, version=5)
        c.send(R.publish(uid + "/t", b"x", qos=2, pid=9, version=5))
        assert c.expect(R.PUBREC).rc in (0, 0x10)
        time.sleep(2.2)
        c.send(R.ack(R.PUBREL, 9, version=5))
        comp = c.expect(R.PUBCOMP)
        assert (comp.pid, comp.rc) == (9, 0x92)


def test_max_connections_per_listener(make_broker, uid):
    b = make_broker('listeners.tcp.default { bind = "127.0.0.1:0", max_connections = 2 }')
    a = R.RawClient(b.port)
    assert a.connect(uid + "-a").rc == 0
    c2 = R.RawClient(b.port)
    assert c2.connect(uid + "-b").rc == 0
    with R.RawClient(b.port) as c3:
        try:
            c3.send(R.connect(uid + "-c"))
            seen = c3.until_closed()
        except OSError:
            seen = []
        assert all(p.type != R.CONNACK or p.rc != 0 for p in seen), seen
    assert_logged(b, "", ["max_connections", "connection limit", "too many"])
    a.close()
    time.sleep(0.3)
    with R.RawClient(b.port) as c4:
        assert c4.connect(uid + "-d").rc == 0
    c2.close()


def test_idle_connection_without_connect_is_closed(make_broker, client, uid):
    b = make_broker("mqtt.idle_timeout = 1s")
    silent = R.RawClient(b.port)
    slow = R.RawClient(b.port)
    slow.send(R.connect(uid)[:5])  # a CONNECT that never completes
    start = time.monotonic()
    silent.until_closed(timeout=4)
    slow.until_closed(timeout=4)
    took = time.monotonic() - start
    assert 0.8 <= took <= 3.0, took
    # a connected client is not subject to the idle timeout
    c = client(b.port, uid + "-ok", keepalive=60)
    time.sleep(1.5)
    c.publish(uid + "/x", b"1", qos=1)


def test_idle_timeout_default_keeps_a_slow_connect_alive_for_a_while(mod_broker, uid):
    with R.RawClient(mod_broker.port) as c:
        time.sleep(1.2)
        assert c.connect(uid).rc == 0


def test_will_above_limits_refused_at_connect(make_broker, uid):
    b = make_broker("mqtt { max_qos_allowed = 1, retain_available = false }")
    with R.RawClient(b.port, version=5) as c:
        c.send(R.connect(uid + "-q", version=5, will={"topic": uid + "/w", "payload": b"x", "qos": 2}))
        assert [(p.type, p.rc) for p in c.until_closed()] == [(R.CONNACK, 0x9B)]
    with R.RawClient(b.port, version=5) as c:
        c.send(R.connect(uid + "-r", version=5, will={"topic": uid + "/w", "payload": b"x", "retain": True}))
        assert [(p.type, p.rc) for p in c.until_closed()] == [(R.CONNACK, 0x9A)]


def test_limits_close_311_connections(make_broker, client, uid):
    b = make_broker("mqtt { max_qos_allowed = 1, retain_available = false }")
    watch = client(b.port, uid + "-w")
    watch.subscribe(uid + "/#", 1)
    for name, pkt in (("q", R.publish(uid + "/q", b"x", qos=2, pid=1)),
                      ("r", R.publish(uid + "/r", b"x", qos=0, retain=True))):
        with R.RawClient(b.port) as c:
            assert c.connect("%s-%s" % (uid, name)).rc == 0
            c.send(pkt)
            assert c.until_closed() == []
    watch.expect_none(0.3)
