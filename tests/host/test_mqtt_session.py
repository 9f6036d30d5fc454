# Sessions: Clean Session / Clean Start, Session Expiry Interval, the bounded offline queue and
# its logged drop policy, mqueue_store_qos0, Message Expiry Interval for queued and retained messages.
import time

from clients import V311, V5, props


def _persistent(client, port, cid, version=V5, expiry=60, **kw):
    if version == V5:
        return client(port, cid, V5, clean=False, connect_props=props("CONNECT", SessionExpiryInterval=expiry), **kw)
    return client(port, cid, version, clean=False, **kw)


def _clean_connect_forgets(client, port, uid, first, version):
    """first subscribes and leaves; a clean connect under its id has no session and gets nothing."""
    first.subscribe(uid + "/t", 1)
    first.disconnect()
    c2 = client(port, uid, version, clean=True)
    assert c2.session_present is False
    client(port, uid + "-p").publish(uid + "/t", b"x", qos=1)
    c2.expect_none(0.5)


def test_clean_session_discards_subscriptions_311(mod_broker, client, uid):
    c = client(mod_broker.port, uid, V311, clean=True)
    _clean_connect_forgets(client, mod_broker.port, uid, c, V311)


def test_persistent_session_queues_while_offline_311(mod_broker, client, uid):
    c = _persistent(client, mod_broker.port, uid, V311)
    c.subscribe(uid + "/t", 1)
    c.disconnect()
    pub = client(mod_broker.port, uid + "-p")
    for i in range(3):
        pub.publish(uid + "/t", b"%d" % i, qos=1)
    c2 = _persistent(client, mod_broker.port, uid, V311)
    assert c2.session_present is True
    assert [m.payload for m in c2.expect_n(3)] == [b"0", b"1", b"2"]


def test_clean_start_1_discards_an_existing_session_v5(mod_broker, client, uid):
    c = _persistent(client, mod_broker.port, uid)
    _clean_connect_forgets(client, mod_broker.port, uid, c, V5)


def test_session_expiry_interval(mod_broker, client, uid):
    short = _persistent(client, mod_broker.port, uid + "-short", expiry=1)
    short.subscribe(uid + "/t", 1)
    longer = _persistent(client, mod_broker.port, uid + "-long", expiry=30)
    longer.subscribe(uid + "/t", 1)
    short.disconnect()
    longer.disconnect()
    time.sleep(2.0)
    assert _persistent(client, mod_broker.port, uid + "-short", expiry=1).session_present is False
    assert _persistent(client, mod_broker.port, uid + "-long", expiry=30).session_present is True


def test_session_expiry_zero_ends_the_session_on_disconnect_v5(mod_broker, client, uid):
    c = client(mod_broker.port, uid, V5, clean=False)  # no Session Expiry Interval: 0
    c.subscribe(uid + "/t", 1)
    c.disconnect()
    assert client(mod_broker.port, uid, V5, clean=False).session_present is False


def test_disconnect_can_shorten_session_expiry(mod_broker, client, uid):
    c = _persistent(client, mod_broker.port, uid, expiry=60)
    c.subscribe(uid + "/t", 1)
    c.disconnect(reasoncode=0, properties=props("DISCONNECT", SessionExpiryInterval=0))
    assert _persistent(client, mod_broker.port, uid).session_present is False


def test_configured_session_expiry_applies_to_311_persistent_sessions(make_broker, client, uid):
    b = make_broker("mqtt.session_expiry_interval = 1s")
    c = _persistent(client, b.port, uid, V311)
    c.subscribe(uid + "/t", 1)
    c.disconnect()
    time.sleep(2.0)
    assert _persistent(client, b.port, uid, V311).session_present is False


def test_offline_queue_is_bounded_and_drops_are_logged(make_broker, client, uid):
    b = make_broker("mqtt.max_mqueue_len = 3")
    c = _persistent(client, b.port, uid)
    c.subscribe(uid + "/t", 1)
    c.disconnect()
    pub = client(b.port, uid + "-p")
    for i in range(6):
        pub.publish(uid + "/t", b"%d" % i, qos=1)
    b.wait_log_all(["drop", uid], timeout=3)
    c2 = _persistent(client, b.port, uid)
    got = [m.payload for m in c2.expect_n(3)]
    c2.expect_none(0.5)
    assert set(got) <= {b"%d" % i for i in range(6)} and len(set(got)) == 3


def _back_after_qos0_and_qos1(make_broker, client, uid, store_qos0):
    """A persistent subscriber, away while a QoS 0 and a QoS 1 message come, comes back."""
    b = make_broker("mqtt.mqueue_store_qos0 = %s" % store_qos0)
    c = _persistent(client, b.port, uid)
    c.subscribe(uid + "/t", 1)
    c.disconnect()
    client(b.port, uid + "-p").publish(uid + "/t", b"zero", qos=0)
    client(b.port, uid + "-p2").publish(uid + "/t", b"one", qos=1)
    return _persistent(client, b.port, uid)


def test_qos0_queued_offline_when_mqueue_store_qos0(make_broker, client, uid):
    c2 = _back_after_qos0_and_qos1(make_broker, client, uid, "true")
    got = sorted((m.payload, m.qos) for m in c2.expect_n(2))
    assert got == [(b"one", 1), (b"zero", 0)]


def test_qos0_not_queued_offline_without_mqueue_store_qos0(make_broker, client, uid):
    c2 = _back_after_qos0_and_qos1(make_broker, client, uid, "false")
    assert c2.expect().payload == b"one"
    c2.expect_none(0.5)


def test_message_expiry_for_queued_messages(mod_broker, client, uid):
    c = _persistent(client, mod_broker.port, uid)
    c.subscribe(uid + "/t", 1)
    c.disconnect()
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/t", b"short", qos=1, properties=props(MessageExpiryInterval=1))
    pub.publish(uid + "/t", b"long", qos=1, properties=props(MessageExpiryInterval=30))
    time.sleep(2.1)
    c2 = _persistent(client, mod_broker.port, uid)
    m = c2.expect()
    assert m.payload == b"long"
    # the remaining interval is forwarded, not the original one
    assert 1 <= m.properties.MessageExpiryInterval <= 28
    c2.expect_none(0.4)


def test_message_expiry_for_retained_messages(mod_broker, client, uid):
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/gone", b"g", qos=1, retain=True, properties=props(MessageExpiryInterval=1))
    pub.publish(uid + "/kept", b"k", qos=1, retain=True, properties=props(MessageExpiryInterval=30))
    time.sleep(2.1)
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/+", 1)
    m = sub.expect()
    assert m.topic == uid + "/kept"
    assert 1 <= m.properties.MessageExpiryInterval <= 28
    sub.expect_none(0.4)


def test_message_expiry_forwarded_on_live_delivery(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/t", 1)
    client(mod_broker.port, uid + "-p").publish(uid + "/t", b"x", qos=1, properties=props(MessageExpiryInterval=50))
    assert 48 <= sub.expect().properties.MessageExpiryInterval <= 50


def test_resumed_session_keeps_its_subscriptions(mod_broker, client, uid):
    c = _persistent(client, mod_broker.port, uid)
    assert c.session_present is False
    c.subscribe(uid + "/keep", 1)
    c.disconnect()
    c2 = _persistent(client, mod_broker.port, uid)
    assert c2.session_present is True
    client(mod_broker.port, uid + "-p").publish(uid + "/keep", b"live", qos=1)
    assert c2.expect().payload == b"live"


def test_queued_qos2_message_delivered_on_resume(mod_broker, client, uid):
    c = _persistent(client, mod_broker.port, uid, V311)
    c.subscribe(uid + "/t", 2)
    c.disconnect()
    client(mod_broker.port, uid + "-p").publish(uid + "/t", b"two", qos=2)
    c2 = _persistent(client, mod_broker.port, uid, V311)
    m = c2.expect()
    assert (m.payload, m.qos) == (b"two", 2)


def test_clean_start_takeover_of_a_connected_session_is_not_present(mod_broker, client, uid):
    old = _persistent(client, mod_broker.port, uid)
    old.subscribe(uid + "/t", 1)
    new = client(mod_broker.port, uid, V5, clean=True)
    assert new.session_present is False
    assert old.wait_disconnected() == 0x8E
    client(mod_broker.port, uid + "-p").publish(uid + "/t", b"x", qos=1)
    new.expect_none(0.4)


def test_disconnect_setting_expiry_after_connect_with_zero_is_a_protocol_error(mod_broker, uid):
    import rawmqtt as R
    with R.RawClient(mod_broker.port, version=5) as c:
        assert c.connect(uid, version=5).rc == 0  # Session Expiry Interval absent: 0
        c.send(R.disconnect(0, {"session_expiry": 60}, version=5))
        seen = c.until_closed()
        assert [(p.type, p.rc) for p in seen] == [(R.DISCONNECT, 0x82)], seen
