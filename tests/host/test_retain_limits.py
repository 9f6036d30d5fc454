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
        s.send(R.subscribe(1, [(flt, 0)], version=5))
        assert s.expect(R.SUBACK).codes == [0]
        got = sorted(s.expect(R.PUBLISH).payload for _ in range(n))
        s.send(R.pingreq())
        p = s.recv()
        assert p.type == R.PINGRESP, "more retained messages than expected: %r" % (p,)
        return got


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_max_retained_messages_refuses_new_topics_with_0x97(make_broker, runtime, uid):
    require_gatemq()
    b = make_broker("retainer.max_retained_messages = 5\n", runtime=runtime)
    with R.RawClient(b.port, version=5) as c:
        c.connect(uid, version=5)
        for i in range(5):
            c.send(R.publish("%s/%d" % (uid, i), b"v%d" % i, qos=1, pid=i + 1, retain=True, version=5))
            assert c.expect(R.PUBACK).rc == 0x10  # no subscribers yet; kept
        c.send(R.publish(uid + "/5", b"v5", qos=1, pid=6, retain=True, version=5))
        ack = c.expect(R.PUBACK)
        assert (ack.pid, ack.rc) == (6, 0x97)
        c.send(R.publish(uid + "/6", b"v6", qos=2, pid=7, retain=True, version=5))
        rec = c.expect(R.PUBREC)
        assert (rec.pid, rec.rc) == (7, 0x97)
        # replacing and deleting stored topics needs no room
        c.send(R.publish(uid + "/0", b"v0-new", qos=1, pid=8, retain=True, version=5))
        assert c.expect(R.PUBACK).rc < 0x80
        c.send(R.publish(uid + "/4", b"", qos=1, pid=9, retain=True, version=5))
        assert c.expect(R.PUBACK).rc < 0x80
        c.send(R.publish(uid + "/7", b"v7", qos=1, pid=10, retain=True, version=5))
        assert c.expect(R.PUBACK).rc < 0x80   # the deleted one made room
        c.send(R.publish(uid + "/8", b"v8", qos=1, pid=11, retain=True, version=5))
        assert c.expect(R.PUBACK).rc == 0x97
        assert c.is_open()
    assert _retained_payloads(b.port, uid + "/#", 5) == [b"v0-new", b"v1", b"v2", b"v3", b"v7"]
    b.wait_log("dropped: store full (retainer.max_retained_messages 5)")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_max_payload_size_refuses_large_retained_messages_with_0x97(make_broker, runtime, uid):
    require_gatemq()
    b = make_broker("retainer.max_payload_size = 100\n", runtime=runtime)
    with R.RawClient(b.port, version=5) as c:
        c.connect(uid, version=5)
        c.send(R.publish(uid + "/a", b"x" * 100, qos=1, pid=1, retain=True, version=5))
        assert c.expect(R.PUBACK).rc == 0x10
        c.send(R.publish(uid + "/a", b"y" * 101, qos=1, pid=2, retain=True, version=5))
        assert c.expect(R.PUBACK).rc == 0x97
        c.send(R.publish(uid + "/b", b"z" * 101, qos=2, pid=3, retain=True, version=5))
        assert c.expect(R.PUBREC).rc == 0x97
        # not retained, a large message is still an ordinary message
        c.send(R.publish(uid + "/b", b"z" * 101, qos=1, pid=4, version=5))
        assert c.expect(R.PUBACK).rc == 0x10
    assert _retained_payloads(b.port, uid + "/#", 1) == [b"x" * 100]
    b.wait_log("payload over retainer.max_payload_size (100 bytes)")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_refused_retained_messages_are_counted_and_logged_once_per_interval(make_broker, runtime, uid):
    require_gatemq()
    b = make_broker("retainer.max_retained_messages = 1\nsys_topics.sys_msg_interval = 1s\n", runtime=runtime)
    with R.RawClient(b.port, version=5) as sysc:
        sysc.connect(uid + "-sys", version=5)
        sysc.send(R.subscribe(1, [("$SYS/brokers/+/stats/retained/dropped", 0)], version=5))
        sysc.expect(R.SUBACK)
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
