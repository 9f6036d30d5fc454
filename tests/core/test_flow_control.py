# Issue 12: nothing acknowledged is dropped under a burst. While a connected subscriber's queue
# is past its high-water mark the publisher feeding it is not read from (its packets wait), and
# it resumes as the queue drains; a subscriber that stops reading holds nobody for longer than
# mqtt.flow_control_timeout. Driven by the fake-clock harness.
from gatemq import codec
from _harness import Harness


def _burst(n, version=4, first=1):
    out = bytearray()
    for i in range(first, first + n):
        out += codec.encode_publish(b"burst", b"%d" % i, 1, False, False, (i % 65535) + 1, b"", version)
    return bytes(out)


def _ack_all(s):
    got = s.publishes()
    for p in got:
        s.conn.feed(codec.encode_ack(codec.PUBACK, p.pid, 0, None, s.version))
    s.h.pump()
    return got


def test_a_burst_to_an_acknowledging_subscriber_loses_nothing():
    h = Harness()
    s = h.subscriber([("burst", 1)], "sub", 4)
    p = h.connected("pub", 4)
    p.send(_burst(2000))                      # one read holding 2,000 QoS 1 messages
    sess = h.broker.sessions["sub"]
    assert p.conn.paused and len(sess.queue) <= h.broker.mqtt["max_mqueue_len"]
    got = []
    for _ in range(1000):
        more = _ack_all(s)
        if not more:
            break
        got += more
    assert [int(m.payload) for m in got] == list(range(1, 2001))
    assert h.broker.stats["messages.dropped"] == 0
    assert not p.conn.paused
    assert len([x for x in p.take() if x.ptype == codec.PUBACK]) == 2000


def test_a_subscriber_that_stops_reading_holds_the_publisher_only_so_long():
    h = Harness("mqtt.flow_control_timeout = 5s\nmqtt.max_mqueue_len = 100")
    stuck = h.subscriber([("burst", 1)], "stuck", 4)
    other = h.subscriber([("burst", 0)], "other", 4)
    p = h.connected("pub", 4)
    p.send(_burst(500))
    assert p.conn.paused
    h.advance(6)                              # past flow_control_timeout: queue-and-drop again
    assert not p.conn.paused
    assert "flow_control_timeout" in h.text()
    assert len(other.publishes()) == 500      # the other subscriber got every message
    st = h.broker.snapshot()
    assert st["delivery.dropped.queue_full"] > 0 and st["messages.dropped"] > 0
    # the stuck one is marked slow: it does not hold the publisher again until it drains
    p.send(_burst(200, first=501))
    assert not p.conn.paused and len(other.publishes()) == 200


def test_a_publisher_subscribed_to_itself_is_not_held():
    h = Harness()
    c = h.subscriber([("burst", 1)], "self", 4)
    c.send(_burst(1000))
    assert not c.conn.paused


def test_a_subscribe_with_many_filters_is_handled_in_steps_and_others_go_on():
    # One SUBSCRIBE of 3 steps' worth of exact filters against retained messages: each round
    # (tick) handles one step; meanwhile other clients are served, the subscriber's next packet
    # waits behind its SUBACK, and the SUBACK and the retained messages come once it is done.
    from gatemq.connection import SUBSCRIBE_STEP
    h = Harness("mqtt.max_subscriptions = infinity\nmqtt.max_inflight = 65535\nmqtt.max_mqueue_len = infinity\n")
    pub = h.connected("pub", 5)
    for i in (0, SUBSCRIBE_STEP + 1, 3 * SUBSCRIBE_STEP - 1):
        pub.publish("dev/%d/status" % i, b"r%d" % i, 1, True, i + 1)
    pub.take()
    sub = h.connected("sub", 5)
    n = 3 * SUBSCRIBE_STEP
    data = codec.encode_subscribe(9, [("dev/%d/status" % i, 1) for i in range(n)], None, 5)
    sub.conn.feed(data + codec.PINGREQ_BYTES)
    h.pump()
    steps = 1
    assert sub.got == [] and sub.conn.paused
    other = h.connected("other", 5)         # the broker is not frozen meanwhile
    other.send(codec.PINGREQ_BYTES)
    assert other.expect(codec.PINGRESP)
    while True:
        d = h.broker.tick()
        h.pump()
        steps += 1
        if sub.conn.sub_rest is None:
            break
        assert d == 0                       # steps left: the port comes back at once
    assert steps == 3
    assert [p.ptype for p in sub.got][:2] == [codec.SUBACK, codec.PUBLISH]
    ack = sub.expect(codec.SUBACK)
    assert ack.pid == 9 and ack.codes == [1] * n
    assert [p.payload for p in sub.publishes()] == [b"r0", b"r%d" % (SUBSCRIBE_STEP + 1),
                                                    b"r%d" % (3 * SUBSCRIBE_STEP - 1)]   # in filter order
    assert sub.expect(codec.PINGRESP) and not sub.conn.paused     # the packet after it, now
    assert len(sub.conn.session.subs) == n


def test_a_client_that_leaves_during_a_stepped_subscribe_is_dropped_from_the_steps():
    from gatemq.connection import SUBSCRIBE_STEP
    h = Harness("mqtt.max_subscriptions = infinity\n")
    sub = h.connected("sub", 5)
    sub.conn.feed(codec.encode_subscribe(1, [("t/%d" % i, 0) for i in range(2 * SUBSCRIBE_STEP)], None, 5))
    h.pump()
    assert h.broker.subscribing == [sub.conn]
    sub.drop()
    h.broker.tick()
    assert h.broker.subscribing == [] and sub.got == []


def test_the_retained_messages_of_a_stepped_subscribe_follow_its_suback_in_steps():
    from gatemq.connection import SUBSCRIBE_STEP
    h = Harness("mqtt.max_subscriptions = infinity\nmqtt.max_mqueue_len = infinity\n")
    pub = h.connected("pub", 5)
    n = 2 * SUBSCRIBE_STEP + 1
    for i in range(n):
        pub.publish("r/%d" % i, b"%d" % i, 0, True)
    sub = h.connected("sub", 5)
    sub.conn.feed(codec.encode_subscribe(3, [("r/%d" % i, 0) for i in range(n)], None, 5))
    h.pump()
    rounds = [len(sub.publishes())]
    while sub.conn.sub_rest is not None:
        h.broker.tick()
        h.pump()
        rounds.append(len(sub.publishes()))
    # filters in 3 steps (the SUBACK at the third), then the retained messages a step at a time
    assert rounds == [0, 0, SUBSCRIBE_STEP, SUBSCRIBE_STEP, 1], rounds
    assert sub.expect(codec.SUBACK).codes == [0] * n
