# PUBLISH at QoS 0, 1 and 2: the exact flows, duplicate detection, packet-id reuse, delivered QoS,
# the inflight window (Receive Maximum) and redelivery with DUP to a resumed session.
import pytest

import rawmqtt as R
from clients import V311, V5


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", [V311, V5])
def test_publish_delivered_at_each_qos(mod_broker, client, uid, qos, version):
    sub = client(mod_broker.port, uid + "-s", version)
    sub.subscribe(uid + "/q", 2)
    pub = client(mod_broker.port, uid + "-p", version)
    pub.publish(uid + "/q", b"payload-%d" % qos, qos=qos)
    m = sub.expect()
    assert (m.topic, m.payload, m.qos) == (uid + "/q", b"payload-%d" % qos, qos)
    sub.expect_none(0.2)


@pytest.mark.parametrize("granted,published,delivered", [(1, 2, 1), (0, 2, 0), (2, 1, 1), (0, 1, 0), (2, 0, 0)])
def test_delivered_qos_is_the_lower_of_message_and_granted(mod_broker, client, uid, granted, published, delivered):
    sub = client(mod_broker.port, uid + "-s")
    assert sub.subscribe(uid + "/m", granted) == [granted]
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/m", b"x", qos=published)
    assert sub.expect().qos == delivered


def _publish_qos2(c, topic, payload, pid, dup=False):
    """An MQTT 5 QoS 2 PUBLISH and the PUBREC it gets, returned."""
    return c.publish(topic, payload, 2, pid, dup=dup, version=5)


def _release(c, pid):
    """An MQTT 5 PUBREL and the PUBCOMP it gets, returned."""
    c.send(R.ack(R.PUBREL, pid, version=5))
    return c.expect(R.PUBCOMP)


def test_inbound_qos2_flow_with_duplicate_detection_and_id_reuse(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/two", 2)
    with R.RawClient(mod_broker.port, version=5) as c:
        assert c.connect(uid, version=5).rc == 0
        rec = _publish_qos2(c, uid + "/two", b"once", 7)
        assert (rec.pid, rec.rc) == (7, 0)
        # the client resends (DUP) before PUBREL: PUBREC again, but only one delivery
        assert _publish_qos2(c, uid + "/two", b"once", 7, dup=True).pid == 7
        comp = _release(c, 7)
        assert (comp.pid, comp.rc) == (7, 0)
        assert sub.expect().payload == b"once"
        sub.expect_none(0.4)
        # the packet id is free again: a new message with id 7 is a new message
        assert _publish_qos2(c, uid + "/two", b"again", 7).pid == 7
        assert _release(c, 7).pid == 7
        assert sub.expect().payload == b"again"


def test_pubrel_for_unknown_id_gets_pubcomp_not_found_v5(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        assert c.connect(uid, version=5).rc == 0
        comp = _release(c, 999)
        # 0x92 Packet Identifier not found (a client resending PUBREL after a reconnect)
        assert comp.pid == 999 and comp.rc in (0, 0x92)


def test_outbound_qos2_flow(mod_broker, client, uid):
    c, _ = R.subscribed(mod_broker.port, uid, uid + "/out", 2)
    with c:
        pub = client(mod_broker.port, uid + "-p")
        pub.publish(uid + "/out", b"m1", qos=2)
        p = c.expect(R.PUBLISH)
        assert (p.qos, p.payload, p.dup) == (2, b"m1", False) and p.pid
        c.send(R.ack(R.PUBREC, p.pid))
        rel = c.expect(R.PUBREL)
        assert rel.pid == p.pid and rel.flags == 2
        c.send(R.ack(R.PUBCOMP, p.pid))
        pub.publish(uid + "/out", b"m2", qos=2)
        p2 = c.expect(R.PUBLISH)
        assert p2.payload == b"m2" and p2.qos == 2


def test_qos1_puback_carries_the_packet_id(mod_broker, uid):
    with R.RawClient(mod_broker.port) as c:
        assert c.connect(uid).rc == 0
        for pid in (1, 65535, 300):
            c.send(R.publish(uid + "/a", b"x", qos=1, pid=pid))
            assert c.expect(R.PUBACK).pid == pid


def test_receive_maximum_announced_and_exceeding_it_gets_0x93(make_broker, client, uid):
    b = make_broker("mqtt.max_inflight = 2")
    with R.RawClient(b.port, version=5) as c:
        ack = c.connect(uid, version=5)
        assert ack.props.get("receive_maximum") == 2, ack
        # QoS 2 messages stay in the window until PUBCOMP: the third one exceeds it
        c.send(b"".join(R.publish(uid + "/rm", b"x", qos=2, pid=i, version=5) for i in (1, 2, 3)))
        seen = c.until_closed()
        assert [p.pid for p in seen if p.type == R.PUBREC] == [1, 2], seen
        assert [p.rc for p in seen if p.type == R.DISCONNECT] == [0x93], seen
    b.wait_log_about(uid, ["receive maximum", "inflight", "0x93"])
    # the broker keeps serving others
    other = client(b.port, uid + "-o")
    other.subscribe(uid + "/ok")
    other.publish(uid + "/ok", b"fine")
    assert other.expect().payload == b"fine"


def test_broker_respects_the_clients_receive_maximum(mod_broker, client, uid):
    with R.subscribed(mod_broker.port, uid, uid + "/w", version=5, props={"receive_maximum": 2})[0] as c:
        pub = client(mod_broker.port, uid + "-p")
        for i in range(5):
            pub.publish(uid + "/w", b"%d" % i, qos=1)
        first = [c.expect(R.PUBLISH), c.expect(R.PUBLISH)]
        assert [p.payload for p in first] == [b"0", b"1"]
        with pytest.raises(TimeoutError):
            c.recv(0.5)
        c.send(R.ack(R.PUBACK, first[0].pid))
        assert c.expect(R.PUBLISH).payload == b"2"
        with pytest.raises(TimeoutError):
            c.recv(0.3)


def test_inflight_window_for_311_clients_is_max_inflight(make_broker, client, uid):
    b = make_broker("mqtt.max_inflight = 2")
    with R.subscribed(b.port, uid, uid + "/w")[0] as c:
        pub = client(b.port, uid + "-p")
        for i in range(4):
            pub.publish(uid + "/w", b"%d" % i, qos=1)
        first = [c.expect(R.PUBLISH), c.expect(R.PUBLISH)]
        with pytest.raises(TimeoutError):
            c.recv(0.5)
        for p in first:
            c.send(R.ack(R.PUBACK, p.pid))
        assert [c.expect(R.PUBLISH).payload for _ in range(2)] == [b"2", b"3"]


@pytest.mark.parametrize("version", [4, 5])
def test_unacked_qos1_redelivered_with_dup_on_resume(mod_broker, client, uid, version):
    props = {"session_expiry": 60} if version == 5 else None
    c, _ = R.subscribed(mod_broker.port, uid, uid + "/r", version=version, clean=False, props=props)
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/r", b"keep", qos=1)
    first = c.expect(R.PUBLISH)
    assert not first.dup
    c.close()  # no PUBACK
    with R.RawClient(mod_broker.port, version=version) as c2:
        ack = c2.connect(uid, version=version, clean=False, props=props)
        assert ack.rc == 0 and ack.session_present
        again = c2.expect(R.PUBLISH)
        assert (again.payload, again.pid, again.dup, again.qos) == (b"keep", first.pid, True, 1)
        c2.send(R.ack(R.PUBACK, again.pid, version=version))
        c2.send(R.disconnect(version=version))


def test_qos2_pubrel_resent_on_resume(mod_broker, client, uid):
    c, _ = R.subscribed(mod_broker.port, uid, uid + "/r2", 2, clean=False)
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/r2", b"two", qos=2)
    p = c.expect(R.PUBLISH)
    c.send(R.ack(R.PUBREC, p.pid))
    assert c.expect(R.PUBREL).pid == p.pid
    c.close()  # no PUBCOMP
    with R.RawClient(mod_broker.port) as c2:
        ack = c2.connect(uid, clean=False)
        assert ack.session_present
        rel = c2.expect(R.PUBREL)
        assert rel.pid == p.pid
        c2.send(R.ack(R.PUBCOMP, p.pid))
        with pytest.raises(TimeoutError):
            c2.recv(0.3)  # the message itself is not sent again


def test_many_qos1_messages_arrive_complete_and_in_order(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s", connect_props=None)
    sub.subscribe(uid + "/seq", 1)
    pub = client(mod_broker.port, uid + "-p")
    infos = [pub.publish(uid + "/seq", b"%d" % i, qos=1, wait=False) for i in range(500)]
    for info in infos:
        info.wait_for_publish(10)
    got = [int(m.payload) for m in sub.expect_n(500, timeout=20)]
    assert got == list(range(500))


def test_fan_out_to_many_subscribers(mod_broker, client, uid):
    subs = [client(mod_broker.port, "%s-%d" % (uid, i)) for i in range(30)]
    for s in subs:
        s.subscribe(uid + "/fan", 1)
    client(mod_broker.port, uid + "-p").publish(uid + "/fan", b"all", qos=1)
    for s in subs:
        assert s.expect().payload == b"all"


def test_large_payload_passes_intact(mod_broker, client, uid):
    body = bytes(range(256)) * 2048  # 512 KB, under the default max_packet_size of 1MB
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/big", 1)
    client(mod_broker.port, uid + "-p").publish(uid + "/big", body, qos=1, timeout=20)
    assert sub.expect(20).payload == body


def test_resubscribe_replaces_the_granted_qos(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/q", 2)
    sub.subscribe(uid + "/q", 0)
    client(mod_broker.port, uid + "-p").publish(uid + "/q", b"x", qos=2)
    m = sub.expect()
    assert m.qos == 0
    sub.expect_none(0.3)


def test_keepalive_zero_means_no_timeout(mod_broker, uid):
    with R.RawClient(mod_broker.port) as c:
        assert c.connect(uid, keepalive=0).rc == 0
        import time
        time.sleep(2)
        assert c.is_open()


def test_resume_redelivers_unacked_in_order_before_queued(mod_broker, client, uid):
    c, _ = R.subscribed(mod_broker.port, uid, uid + "/o", clean=False)
    pub = client(mod_broker.port, uid + "-p")
    for i in range(3):
        pub.publish(uid + "/o", b"%d" % i, qos=1)
    first = [c.expect(R.PUBLISH) for _ in range(3)]
    assert len({p.pid for p in first}) == 3, "packet ids reused while unacknowledged"
    mark = mod_broker.mark()
    c.close()
    # Published before the broker saw the close, 3 would go out on the dead socket and rightly
    # come back with DUP; the test is about messages queued while the client is away.
    mod_broker.wait_log_about(uid, ["disconnected", "closed its connection"], start=mark)
    for i in range(3, 5):
        pub.publish(uid + "/o", b"%d" % i, qos=1)
    with R.RawClient(mod_broker.port) as c2:
        assert c2.connect(uid, clean=False).session_present
        got = []
        for _ in range(5):
            p = c2.expect(R.PUBLISH)
            got.append((p.payload, p.dup))
            c2.send(R.ack(R.PUBACK, p.pid))
        assert got == [(b"0", True), (b"1", True), (b"2", True), (b"3", False), (b"4", False)]


def test_inbound_qos2_state_survives_a_reconnect(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/x", 2)
    props5 = {"session_expiry": 60}
    c = R.RawClient(mod_broker.port, version=5)
    assert c.connect(uid, version=5, clean=False, props=props5).rc == 0
    assert _publish_qos2(c, uid + "/x", b"exactly-once", 5).pid == 5
    c.close()
    with R.RawClient(mod_broker.port, version=5) as c2:
        assert c2.connect(uid, version=5, clean=False, props=props5).session_present
        # the client resends the PUBLISH with DUP, then PUBREL: still one delivery
        assert _publish_qos2(c2, uid + "/x", b"exactly-once", 5, dup=True).pid == 5
        comp = _release(c2, 5)
        assert (comp.pid, comp.rc) == (5, 0)
    assert sub.expect().payload == b"exactly-once"
    sub.expect_none(0.4)


def test_outbound_packet_ids_unique_among_inflight(mod_broker, client, uid):
    with R.subscribed(mod_broker.port, uid, uid + "/u", 2, version=5, props={"receive_maximum": 50})[0] as c:
        pub = client(mod_broker.port, uid + "-p")
        for i in range(30):
            pub.publish(uid + "/u", b"%d" % i, qos=1 + i % 2, wait=False)
        got = [c.expect(R.PUBLISH) for _ in range(30)]
        assert sorted(int(p.payload) for p in got) == list(range(30))
        assert len({p.pid for p in got}) == 30
        assert all(p.pid != 0 for p in got)


def test_utf8_topics_and_payloads_round_trip(mod_broker, client, uid):
    topic = uid + "/données/温度/🌡"
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/données/+/#", 1)
    client(mod_broker.port, uid + "-p").publish(topic, "23 °C".encode(), qos=1)
    m = sub.expect()
    assert (m.topic, m.payload.decode()) == (topic, "23 °C")
