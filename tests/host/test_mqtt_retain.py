# Retained messages: store, replace, delete; Retain Handling 0/1/2, Retain As Published, No Local.
import rawmqtt as R
from clients import V311


def _topics(c, timeout=0.5):
    out = []
    try:
        while True:
            m = c.expect(timeout)
            out.append((m.topic, m.payload, m.retain))
    except AssertionError:
        return out


def test_retained_message_stored_for_new_subscribers(mod_broker, client, uid):
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/r", b"kept", qos=1, retain=True)
    sub = client(mod_broker.port, uid + "-s", V311)
    sub.subscribe(uid + "/r", 1)
    m = sub.expect()
    assert (m.topic, m.payload, m.retain, m.qos) == (uid + "/r", b"kept", True, 1)


def test_retained_message_replaced(mod_broker, client, uid):
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/r", b"first", qos=1, retain=True)
    pub.publish(uid + "/r", b"second", qos=1, retain=True)
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/r", 1)
    assert _topics(sub) == [(uid + "/r", b"second", True)]


def test_retained_message_deleted_by_empty_payload(mod_broker, client, uid):
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/r", b"temp", qos=1, retain=True)
    live = client(mod_broker.port, uid + "-live")
    live.subscribe(uid + "/r", 1)
    assert live.expect().payload == b"temp"
    pub.publish(uid + "/r", b"", qos=1, retain=True)
    assert live.expect().payload == b""  # the delete is delivered to current subscribers
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/r", 1)
    sub.expect_none(0.5)


def test_wildcard_subscription_gets_every_matching_retained_message(mod_broker, client, uid):
    pub = client(mod_broker.port, uid + "-p")
    for t in ("a", "a/b", "c/b"):
        pub.publish("%s/%s" % (uid, t), t.encode(), qos=1, retain=True)
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/+/b", 0)
    got = sorted(_topics(sub))
    assert got == [(uid + "/a/b", b"a/b", True), (uid + "/c/b", b"c/b", True)]


def test_retained_delivered_at_granted_qos(mod_broker, client, uid):
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/q", b"two", qos=2, retain=True)
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/q", 1)
    assert sub.expect().qos == 1


def test_live_messages_have_retain_flag_cleared_without_rap(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/l", 1, retain_as_published=False)
    old = client(mod_broker.port, uid + "-old", V311)
    old.subscribe(uid + "/l", 1)
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/l", b"x", qos=1, retain=True)
    assert sub.expect().retain is False
    assert old.expect().retain is False


def test_retain_as_published_keeps_the_flag(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/l", 1, retain_as_published=True)
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/l", b"x", qos=1, retain=True)
    pub.publish(uid + "/l", b"y", qos=1, retain=False)
    assert [(m.payload, m.retain) for m in sub.expect_n(2)] == [(b"x", True), (b"y", False)]


def _subscribed_twice(client, port, uid, retain_handling):
    """A retained message, a subscriber that gets it, then subscribes again: that subscriber."""
    client(port, uid + "-p").publish(uid + "/h", b"r", qos=1, retain=True)
    sub = client(port, uid + "-s")
    sub.subscribe(uid + "/h", 1, retain_handling=retain_handling)
    assert sub.expect().payload == b"r"
    sub.subscribe(uid + "/h", 1, retain_handling=retain_handling)
    return sub


def test_retain_handling_0_sends_on_every_subscribe(mod_broker, client, uid):
    sub = _subscribed_twice(client, mod_broker.port, uid, 0)
    assert sub.expect().payload == b"r"


def test_retain_handling_1_sends_only_for_a_new_subscription(mod_broker, client, uid):
    _subscribed_twice(client, mod_broker.port, uid, 1).expect_none(0.5)


def test_retain_handling_2_never_sends(mod_broker, client, uid):
    client(mod_broker.port, uid + "-p").publish(uid + "/h", b"r", qos=1, retain=True)
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/h", 1, retain_handling=2)
    sub.expect_none(0.5)
    # but live messages still flow
    client(mod_broker.port, uid + "-p2").publish(uid + "/h", b"live", qos=1)
    assert sub.expect().payload == b"live"


def test_no_local(mod_broker, client, uid):
    me = client(mod_broker.port, uid + "-me")
    me.subscribe(uid + "/n", 1, no_local=True)
    me.publish(uid + "/n", b"mine", qos=1)
    other = client(mod_broker.port, uid + "-other")
    other.publish(uid + "/n", b"theirs", qos=1)
    assert me.expect().payload == b"theirs"
    me.expect_none(0.3)


def test_without_no_local_own_messages_come_back(mod_broker, client, uid):
    me = client(mod_broker.port, uid + "-me")
    me.subscribe(uid + "/n", 1, no_local=False)
    me.publish(uid + "/n", b"mine", qos=1)
    assert me.expect().payload == b"mine"


def test_retained_flag_set_on_raw_retained_delivery(mod_broker, client, uid):
    client(mod_broker.port, uid + "-p").publish(uid + "/raw", b"z", qos=1, retain=True)
    with R.RawClient(mod_broker.port) as c:
        assert c.connect(uid).rc == 0
        c.subscribe(1, [(uid + "/raw", 0)])
        p = c.expect(R.PUBLISH)
        assert (p.retain, p.payload, p.qos) == (True, b"z", 0)  # granted QoS 0
