# Issue 12: a burst of QoS 1 messages to a connected, acknowledging subscriber loses nothing. The
# publisher keeps thousands of messages ahead; gatemq pauses reading from it while the subscriber's
# queue is backed up (flow control) instead of dropping what it already acknowledged. Both runtimes.
import threading
import time

import paho.mqtt.client as mqtt

from clients import Client, V311
from conftest import require_gatemq
import rawmqtt

N = 50000


def _subscriber(b, cid):
    sub = Client(b.port, cid, V311, clean=True)
    sub.connect()
    assert sub.subscribe("burst/" + cid, 1) == [1]
    return sub


def _collect(sub, n, timeout=120):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.append(sub.expect(max(0.01, deadline - time.monotonic())))
    return got


def test_a_qos1_burst_from_paho_loses_nothing(make_broker):
    require_gatemq()
    b = make_broker()
    sub = _subscriber(b, "paho")
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="burst-pub", protocol=mqtt.MQTTv311)
    pub.max_inflight_messages_set(5000)      # up to 5,000 messages ahead of the subscriber
    pub.connect("127.0.0.1", b.port)
    pub.loop_start()
    try:
        infos = [pub.publish("burst/paho", b"%d" % i, qos=1) for i in range(N)]
        got = _collect(sub, N)
        assert len(got) == N, "%d of %d arrived" % (len(got), N)
        assert [int(m.payload) for m in got] == list(range(N))      # in order, once each
        for info in infos[-10:]:
            info.wait_for_publish(30)
            assert info.is_published()
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.disconnect()
    assert not [x for x in b.log_lines if "queue full" in x]


def test_a_qos1_burst_from_a_raw_socket_loses_nothing(make_broker):
    require_gatemq()
    b = make_broker()
    sub = _subscriber(b, "raw")
    r = rawmqtt.RawClient(b.port, version=4, timeout=60)
    r.connect("burst-raw")
    acks = []

    def read_acks():
        try:
            while len(acks) < N:
                acks.append(r.expect(rawmqtt.PUBACK, timeout=60).pid)
        except Exception as e:  # reported by the assertion below
            acks.append(e)
    t = threading.Thread(target=read_acks, daemon=True)
    t.start()
    chunk = bytearray()
    for i in range(N):
        chunk += rawmqtt.publish("burst/raw", b"%d" % i, qos=1, pid=i % 65535 + 1)
        if len(chunk) > 256 * 1024:
            r.send(bytes(chunk))             # blocks while the broker does not read: TCP backpressure
            chunk = bytearray()
    r.send(bytes(chunk))
    got = _collect(sub, N)
    t.join(60)
    assert len(got) == N, "%d of %d arrived" % (len(got), N)
    assert [int(m.payload) for m in got] == list(range(N))
    assert len(acks) == N and all(isinstance(a, int) for a in acks)
    r.close()
    sub.disconnect()
