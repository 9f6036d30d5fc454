# The retainer limits (EMQX's retainer.max_retained_messages and max_payload_size) on both ports,
# over real sockets: a retained message past a limit is refused with 0x97 to an MQTT 5 publisher
# (PUBACK / PUBREC), counted and logged once per interval, and what is stored stays served.
# (One client publishing 4 KB retained messages to new topics grew the broker to 2.4 GB in 10 s.)
import pytest

import rawmqtt as R
from conftest import require_gatemq

RUNTIMES = ["cpython", "micropython"]


def _retained_payloads(port, flt, n):
    """The payloads of the retained messages a new subscriber to flt gets (n expected)."""
    with R.RawClient(port, version=5) as s:
        s.connect("retain-reader", version=5)
        assert s.subscribe(1, [(flt, 0)], version=5).codes == [0]
        got = sorted(s.expect(R.PUBLISH).payload for _ in range(n))
        s.send(R.pingreq())
        p = s.recv()
        assert p.type == R.PINGRESP, "more retained messages than expected: %r" % (p,)
        return got


def _broker_and_client(make_broker, runtime, conf, client_id):
    """A gatemq broker of runtime with conf, and an MQTT 5 RawClient connected to it as client_id."""
    require_gatemq()
    b = make_broker(conf, runtime=runtime)
    c = R.RawClient(b.port, version=5)
    c.connect(client_id, version=5)
    return b, c


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_max_retained_messages_refuses_new_topics_with_0x97(make_broker, runtime, uid):
    b, c = _broker_and_client(make_broker, runtime, "retainer.max_retained_messages = 5\n", uid)
    with c:
        for i in range(5):
            # no subscribers yet; kept
            assert c.publish("%s/%d" % (uid, i), b"v%d" % i, 1, i + 1, retain=True, version=5).rc == 0x10
        ack = c.publish(uid + "/5", b"v5", 1, 6, retain=True, version=5)
        assert (ack.pid, ack.rc) == (6, 0x97)
        rec = c.publish(uid + "/6", b"v6", 2, 7, retain=True, version=5)
        assert (rec.pid, rec.rc) == (7, 0x97)
        # replacing and deleting stored topics needs no room
        assert c.publish(uid + "/0", b"v0-new", 1, 8, retain=True, version=5).rc < 0x80
        assert c.publish(uid + "/4", b"", 1, 9, retain=True, version=5).rc < 0x80
        assert c.publish(uid + "/7", b"v7", 1, 10, retain=True, version=5).rc < 0x80   # the deleted one made room
        assert c.publish(uid + "/8", b"v8", 1, 11, retain=True, version=5).rc == 0x97
        assert c.is_open()
    assert _retained_payloads(b.port, uid + "/#", 5) == [b"v0-new", b"v1", b"v2", b"v3", b"v7"]
    b.wait_log("dropped: store full (retainer.max_retained_messages 5)")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_max_payload_size_refuses_large_retained_messages_with_0x97(make_broker, runtime, uid):
    b, c = _broker_and_client(make_broker, runtime, "retainer.max_payload_size = 100\n", uid)
    with c:
        assert c.publish(uid + "/a", b"x" * 100, 1, 1, retain=True, version=5).rc == 0x10
        assert c.publish(uid + "/a", b"y" * 101, 1, 2, retain=True, version=5).rc == 0x97
        assert c.publish(uid + "/b", b"z" * 101, 2, 3, retain=True, version=5).rc == 0x97
        # not retained, a large message is still an ordinary message
        assert c.publish(uid + "/b", b"z" * 101, 1, 4, version=5).rc == 0x10
    assert _retained_payloads(b.port, uid + "/#", 1) == [b"x" * 100]
    b.wait_log("payload over retainer.max_payload_size (100 bytes)")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_refused_retained_messages_are_counted_and_logged_once_per_interval(make_broker, runtime, uid):
    conf = "retainer.max_retained_messages = 1\nsys_topics.sys_msg_interval = 1s\n"
    b, sysc = _broker_and_client(make_broker, runtime, conf, uid + "-sys")
    with sysc:
        sysc.subscribe(1, [("$SYS/brokers/+/stats/retained/dropped", 0)], version=5)
        with R.RawClient(b.port, version=4) as c:   # MQTT 3.1.1: nothing to tell; still counted
            c.connect(uid, version=4)
            for i in range(50):
                c.send(R.publish("%s/%d" % (uid, i), b"v", qos=1, pid=i + 1, retain=True))
            for i in range(50):
                c.expect(R.PUBACK)
        deadline = 10
        while True:
            p = sysc.expect(R.PUBLISH, timeout=deadline)
            if p.payload == b"49":
                break
    lines = [x for x in b.log_lines if "dropped: store full" in x]
    assert len(lines) == 1, lines
    # the stored one is still served
    assert _retained_payloads(b.port, uid + "/#", 1) == [b"v"]
