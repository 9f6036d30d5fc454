# Overload: a client that reads slower than it is sent to (the port marks its connection
# congested, the deliveries wait in the session queue, bounded by max_mqueue_len, and go out once
# it drains), and a connection flood past max_connections (refused, logged at a bounded rate).
from gatemq import codec
from _harness import Harness


def _setup(text):
    h = Harness(text)
    s = h.subscriber([("b/#", 1)], "slow")
    p = h.connected("pub")
    return h, s, p


def test_congested_qos0_waits_in_the_bounded_queue_and_flows_after_drain():
    h, s, p = _setup("mqtt.max_mqueue_len = 3")
    s.conn.set_congested(True)
    for i in range(10):
        p.publish("b/0", b"%d" % i, 0)
    assert s.publishes() == []                      # nothing handed to the port meanwhile
    assert len(h.broker.sessions["slow"].queue) == 3
    assert any("queue full" in m for _, m in h.logs)
    s.conn.set_congested(False)
    h.pump()
    assert [g.payload for g in s.publishes()] == [b"7", b"8", b"9"]
    p.publish("b/0", b"live", 0)                    # not congested: straight through again
    assert [g.payload for g in s.publishes()] == [b"live"]


def test_congested_qos1_is_queued_not_sent_and_pumped_within_the_window():
    h, s, p = _setup("mqtt.max_inflight = 2")
    s.conn.set_congested(True)
    for i in range(4):
        p.publish("b/1", b"%d" % i, 1, pid=i + 1)
    assert s.publishes() == []
    sess = h.broker.sessions["slow"]
    assert not sess.inflight and len(sess.queue) == 4
    # An acknowledgement while congested does not push more out either.
    s.conn.set_congested(False)
    h.pump()
    got = s.publishes()
    assert [g.payload for g in got] == [b"0", b"1"] and len(sess.inflight) == 2
    s.conn.set_congested(True)
    s.ack(codec.PUBACK, got[0].pid)
    assert s.publishes() == []
    s.conn.set_congested(False)
    h.pump()
    assert [g.payload for g in s.publishes()] == [b"2"]


def test_refusals_past_max_connections_are_logged_at_a_bounded_rate():
    h = Harness('listeners.tcp.default { bind = "127.0.0.1:0", max_connections = 1 }')
    assert h.client().conn is not None
    for _ in range(50):
        assert h.client().conn is None
    lines = [m for _, m in h.logs if "max_connections (1) reached" in m]
    assert len(lines) == 1
    h.advance(11)
    assert h.client().conn is None
    lines = [m for _, m in h.logs if "max_connections (1) reached" in m]
    assert len(lines) == 2 and "49 more refused" in lines[1]
