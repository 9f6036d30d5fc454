# Topics: wildcards, $ topics, validation of names and filters, shared subscriptions,
# overlapping subscriptions.
import collections

import pytest

import rawmqtt as R
from clients import V311, V5, props


def _received(c, timeout=0.6):
    out = []
    try:
        while True:
            out.append(c.expect(timeout).topic)
    except AssertionError:
        return out


def _matched(client, port, uid, flt, topics):
    """The topics (under uid) of those published that a subscriber to flt (under uid) got, sorted."""
    sub = client(port, uid + "-s")
    sub.subscribe(uid + flt, 0)
    pub = client(port, uid + "-p")
    for t in topics:
        pub.publish(uid + t, b"x", qos=1)
    return sorted(_received(sub))


def test_single_level_wildcard(mod_broker, client, uid):
    got = _matched(client, mod_broker.port, uid, "/+/c", ("/b/c", "/b/d", "/b/x/c", "//c", "/c"))
    assert got == sorted([uid + "/b/c", uid + "//c"])


def test_multi_level_wildcard_includes_the_parent(mod_broker, client, uid):
    got = _matched(client, mod_broker.port, uid, "/a/#", ("/a", "/a/b", "/a/b/c", "/b", "/ab"))
    assert got == sorted([uid + "/a", uid + "/a/b", uid + "/a/b/c"])


def test_wildcards_in_first_level_do_not_match_dollar_topics(make_broker, client, uid):
    b = make_broker("sys_topics.sys_msg_interval = 1s")
    hash_sub = client(b.port, uid + "-hash")
    hash_sub.subscribe("#", 0)
    plus_sub = client(b.port, uid + "-plus")
    plus_sub.subscribe("+/#", 0)
    sys_sub = client(b.port, uid + "-sys")
    sys_sub.subscribe("$SYS/#", 0)
    client(b.port, uid + "-trigger")  # a connection: gatemq publishes a $SYS event for it
    m = sys_sub.expect(timeout=3)
    assert m.topic.startswith("$SYS/")
    sys_sub.expect(timeout=3)
    for c in (hash_sub, plus_sub):
        assert [t for t in _received(c, 0.3) if t.startswith("$")] == []


@pytest.mark.parametrize("bad", ["a/#/b", "a+/b", "a/b#", "", "#/", "a/+b"])
def test_invalid_topic_filters_are_not_granted(mod_broker, client, uid, bad):
    with R.RawClient(mod_broker.port, version=5) as c:
        assert c.connect(uid, version=5).rc == 0
        c.send(R.subscribe(3, [(bad, 1)], version=5))
        try:
            p = c.recv()
        except R.Closed:
            p = None
        if p is not None and p.type == R.SUBACK:
            assert p.pid == 3 and p.codes[0] in (0x8F, 0x80, 0x82), p
        else:
            # or the broker treats it as malformed and ends this connection only
            assert p is None or (p.type == R.DISCONNECT and p.rc in (0x81, 0x82, 0x8F)), p
    other = client(mod_broker.port, uid + "-o")
    other.subscribe(uid + "/alive")
    other.publish(uid + "/alive", b"1")
    assert other.expect().payload == b"1"


@pytest.mark.parametrize("bad", ["a/+/b", "a/#", "+", "#"])
@pytest.mark.parametrize("version", [4, 5])
def test_wildcards_in_topic_names_end_the_connection(mod_broker, client, uid, bad, version):
    watcher = client(mod_broker.port, uid + "-w")
    watcher.subscribe("%s/#" % uid, 0)
    with R.RawClient(mod_broker.port, version=version) as c:
        assert c.connect(uid, version=version).rc == 0
        c.send(R.publish(uid + "/" + bad, b"x", qos=1, pid=1, version=version))
        seen = c.until_closed()
        assert all(p.type == R.DISCONNECT for p in seen), seen
        if version == 5:
            assert [p.rc for p in seen] in ([], [0x90], [0x81], [0x82]), seen
    watcher.expect_none(0.3)


def test_shared_subscription_round_robin(mod_broker, client, uid):
    members = [client(mod_broker.port, "%s-m%d" % (uid, i)) for i in range(3)]
    for m in members:
        assert m.subscribe("$share/g1/%s/s/+" % uid, 1) == [1]
    other_group = client(mod_broker.port, uid + "-g2")
    other_group.subscribe("$share/g2/%s/s/+" % uid, 1)
    plain = client(mod_broker.port, uid + "-plain")
    plain.subscribe(uid + "/s/+", 1)
    pub = client(mod_broker.port, uid + "-p")
    for i in range(9):
        pub.publish("%s/s/%d" % (uid, i), b"%d" % i, qos=1)
    counts = [len(_received(m, 0.5)) for m in members]
    assert counts == [3, 3, 3], counts
    assert len(_received(other_group, 0.3)) == 9
    got = [m.topic for m in plain.expect_n(9)]
    assert got == ["%s/s/%d" % (uid, i) for i in range(9)]


def test_shared_subscription_topic_in_v311(mod_broker, client, uid):
    a = client(mod_broker.port, uid + "-a", V311)
    b = client(mod_broker.port, uid + "-b", V311)
    for c in (a, b):
        c.subscribe("$share/grp/%s/t" % uid, 1)
    pub = client(mod_broker.port, uid + "-p", V311)
    for i in range(4):
        pub.publish(uid + "/t", b"%d" % i, qos=1)
    got_a, got_b = _received(a, 0.5), _received(b, 0.3)
    assert (len(got_a), len(got_b)) == (2, 2)
    assert all(t == uid + "/t" for t in got_a + got_b)


def test_overlapping_subscriptions_one_copy_at_highest_qos_with_all_ids(mod_broker, client, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        assert c.connect(uid, version=5).rc == 0
        c.subscribe(1, [(uid + "/a/#", 0)], props={"subscription_id": 11}, version=5)
        c.subscribe(2, [(uid + "/+/b", 2)], props={"subscription_id": 22}, version=5)
        c.subscribe(3, [(uid + "/a/b", 1)], version=5)
        pub = client(mod_broker.port, uid + "-p")
        pub.publish(uid + "/a/b", b"one", qos=2)
        p = c.expect(R.PUBLISH)
        assert (p.payload, p.qos) == (b"one", 2)
        assert sorted(p.props.get("subscription_id", [])) == [11, 22], p
        c.send(R.ack(R.PUBREC, p.pid, version=5))
        c.expect(R.PUBREL)
        c.send(R.ack(R.PUBCOMP, p.pid, version=5))
        with pytest.raises(TimeoutError):
            c.recv(0.4)
        # a topic matching one subscription carries only its identifier
        pub.publish(uid + "/a/c", b"two", qos=0)
        p = c.expect(R.PUBLISH)
        assert p.props.get("subscription_id") == [11] and p.qos == 0


def test_overlapping_subscriptions_311_one_copy(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s", V311)
    sub.subscribe_many([(uid + "/#", 1), (uid + "/x", 0), ("%s/+" % uid, 2)])
    pub = client(mod_broker.port, uid + "-p", V311)
    pub.publish(uid + "/x", b"1", qos=2)
    m = sub.expect()
    assert m.qos == 2
    sub.expect_none(0.4)


def test_subscription_identifier_via_paho(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/#", 1, properties=props("SUBSCRIBE", SubscriptionIdentifier=77))
    sub.publish(uid + "/k", b"v", qos=1)
    m = sub.expect()
    assert m.properties.SubscriptionIdentifier == [77]


def test_unsubscribe_stops_delivery(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/u", 1)
    sub.unsubscribe(uid + "/u")
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/u", b"x", qos=1)
    sub.expect_none(0.4)


def test_shared_group_keeps_delivering_when_a_member_leaves(mod_broker, client, uid):
    a = client(mod_broker.port, uid + "-a")
    b = client(mod_broker.port, uid + "-b")
    for c in (a, b):
        c.subscribe("$share/g/%s/t" % uid, 1)
    b.disconnect()
    pub = client(mod_broker.port, uid + "-p")
    for i in range(4):
        pub.publish(uid + "/t", b"%d" % i, qos=1)
    assert [m.payload for m in a.expect_n(4)] == [b"0", b"1", b"2", b"3"]


def test_no_local_on_a_shared_subscription_is_a_protocol_error(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        c.connect(uid, version=5)
        c.send(R.subscribe(1, [("$share/g/%s/t" % uid, 0x05)], version=5))  # QoS 1 + No Local
        try:
            p = c.recv()
        except R.Closed:
            p = None
        assert p is not None, "closed without a reason code"
        if p.type == R.SUBACK:
            assert p.codes[0] >= 0x80, p
        else:
            assert p.type == R.DISCONNECT and p.rc == 0x82, p


def test_unsuback_reason_codes_v5(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        c.connect(uid, version=5)
        c.subscribe(1, [(uid + "/a", 0)], version=5)
        c.send(R.unsubscribe(2, [uid + "/a", uid + "/never"], version=5))
        u = c.expect(R.UNSUBACK)
        assert (u.pid, u.codes) == (2, [0x00, 0x11])


def test_subscription_identifier_zero_is_a_protocol_error(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        c.connect(uid, version=5)
        c.send(R.subscribe(1, [(uid + "/a", 0)], props={"subscription_id": 0}, version=5))
        seen = c.until_closed()
        assert [(p.type, p.rc) for p in seen] in ([(R.DISCONNECT, 0x82)], [(R.DISCONNECT, 0x81)]), seen


@pytest.mark.parametrize("bad", ["a/#/b", "a+"])
def test_invalid_topic_filter_refused_v311(mod_broker, uid, bad):
    with R.RawClient(mod_broker.port) as c:
        c.connect(uid)
        c.send(R.subscribe(4, [(uid + "/ok", 1), (bad, 1)]))
        try:
            p = c.recv()
        except R.Closed:
            return  # 3.1.1 allows closing on a malformed SUBSCRIBE
        assert p.type == R.SUBACK and p.codes == [1, 0x80], p
